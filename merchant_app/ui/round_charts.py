"""pyqtgraph charts of the round screens: live training loss, metrics per round.

NOTE: PySide6 6.12.0 on Python 3.11 crashes a live pyqtgraph plot after a
few seconds (a reference-count bug); 6.11.3, the pinned version, does not.
"""

from __future__ import annotations

import os

# pyqtgraph picks the first Qt binding it finds; the app uses PySide6 only.
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import pyqtgraph as pg  # noqa: E402 (the binding must be chosen first)
from PySide6.QtWidgets import QVBoxLayout, QWidget  # noqa: E402

from merchant_app.federation.round_state import RoundStep  # noqa: E402

ACCENT_COLOR = "#0b6e4f"
SECONDARY_COLOR = "#c2410c"
ROUND_STEPS: list[RoundStep] = [step for step in RoundStep if step != RoundStep.DONE]


def _styled_plot(parent: QWidget | None) -> pg.PlotWidget:
    plot = pg.PlotWidget(parent=parent, background="w")
    plot.showGrid(x=True, y=True, alpha=0.25)
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(pg.mkPen("#829ab1"))
        axis.setTextPen(pg.mkPen("#334e68"))
        # Scores and step counts read better unscaled than as "x0.001".
        axis.enableAutoSIPrefix(False)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    return plot


class TrainingLossPlot(QWidget):
    """The training loss of the current round, drawn while the customers are solved.

    The x axis is the share of the merchant's customers solved against the
    round's shared model, the y axis the training objective per customer.
    The curve falls from the loss with no customer fitted to the loss of the
    trained update.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _styled_plot(self)
        self.plot.setLabel("bottom", "share of your customers done (%)")
        self.plot.setLabel("left", "training loss")
        self.plot.setXRange(0, 100, padding=0.02)
        self.curve = self.plot.plot(
            [], [], pen=pg.mkPen(ACCENT_COLOR, width=2), symbolSize=4
        )
        self.percent_done: list[float] = []
        self.losses: list[float] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def clear(self) -> None:
        """Forget the points of the previous round."""
        self.percent_done.clear()
        self.losses.clear()
        self.curve.setData([], [])

    def add_point(self, customers_done: int, customers: int, loss: float) -> None:
        """Append a point and redraw; a report with no customers is ignored."""
        if customers <= 0:
            return
        if customers_done == 0:
            # A new training run (a resumed round trains again from the start).
            self.clear()
        self.percent_done.append(100.0 * customers_done / customers)
        self.losses.append(loss)
        self.curve.setData(self.percent_done, self.losses)


class MetricsPlot(QWidget):
    """HR@10 and NDCG@10 per round, one line each, with a legend."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = _styled_plot(self)
        self.plot.setLabel("bottom", "round")
        self.plot.setLabel("left", "score")
        # The lines rise with the rounds, so the lower right corner stays free.
        self.plot.addLegend(offset=(-10, -10))
        symbol = {"symbol": "o", "symbolSize": 7}
        self.hr_curve = self.plot.plot(
            [],
            [],
            name="HR@10",
            pen=pg.mkPen(ACCENT_COLOR, width=2),
            symbolBrush=ACCENT_COLOR,
            **symbol,
        )
        self.ndcg_curve = self.plot.plot(
            [],
            [],
            name="NDCG@10",
            pen=pg.mkPen(SECONDARY_COLOR, width=2),
            symbolBrush=SECONDARY_COLOR,
            **symbol,
        )
        self.rounds: list[int] = []
        self.hr10: list[float] = []
        self.ndcg10: list[float] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def show_metrics(
        self, rounds: list[int], hr10: list[float], ndcg10: list[float]
    ) -> None:
        """Replace the lines by these values."""
        self.rounds = list(rounds)
        self.hr10 = list(hr10)
        self.ndcg10 = list(ndcg10)
        self.hr_curve.setData(self.rounds, self.hr10)
        self.ndcg_curve.setData(self.rounds, self.ndcg10)
        bottom_axis = self.plot.getAxis("bottom")
        bottom_axis.setTicks([[(number, str(number)) for number in self.rounds]])
        if self.rounds:
            top = max([*self.hr10, *self.ndcg10, 0.05])
            self.plot.setYRange(0, top * 1.15, padding=0)
            self.plot.setXRange(
                min(self.rounds) - 0.5, max(self.rounds) + 0.5, padding=0
            )
