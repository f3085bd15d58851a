"""A read-only table of products: recommendations or products to promote."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from merchant_app.recommender.recommend import Promotion, Recommendation

RECOMMENDATION_HEADERS = ("Product", "Score", "Category", "Brand", "Price")
# Popular products are ranked by their summed event weight, not a model score.
POPULAR_HEADERS = ("Product", "Weight", "Category", "Brand", "Price")
PROMOTION_HEADERS = ("Product", "Demand", "Reach", "Category", "Brand", "Price")


class ProductsTable(QTableWidget):
    """Shows recommendations or promotions, one product per row."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(RECOMMENDATION_HEADERS), parent)
        self.setHorizontalHeaderLabels(RECOMMENDATION_HEADERS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )

    def show_recommendations(self, items: Sequence[Recommendation]) -> None:
        """Fill the table with ``items``, best first."""
        rows = [
            (
                str(item.product_id),
                f"{item.score:.3f}" if item.source == "model" else f"{item.score:g}",
                item.category_code or "",
                item.brand or "",
                _price(item.price),
            )
            for item in items
        ]
        popular = bool(items) and all(item.source == "popular" for item in items)
        self._fill(POPULAR_HEADERS if popular else RECOMMENDATION_HEADERS, rows)

    def show_promotions(self, items: Sequence[Promotion]) -> None:
        """Fill the table with products to promote, highest demand first."""
        rows = [
            (
                str(item.product_id),
                f"{item.demand:.1f}",
                str(item.reach),
                item.category_code or "",
                item.brand or "",
                _price(item.price),
            )
            for item in items
        ]
        self._fill(PROMOTION_HEADERS, rows)

    def column_texts(self, column: int) -> list[str]:
        """Return the texts of one column, top to bottom."""
        texts = []
        for row in range(self.rowCount()):
            item = self.item(row, column)
            texts.append("" if item is None else item.text())
        return texts

    def _fill(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        self.clearContents()
        self.setColumnCount(len(headers))
        self.setHorizontalHeaderLabels(list(headers))
        self.setRowCount(len(rows))
        # The category is the longest text, so it takes the spare width.
        header = self.horizontalHeader()
        for column, name in enumerate(headers):
            mode = (
                QHeaderView.ResizeMode.Stretch
                if name == "Category"
                else QHeaderView.ResizeMode.ResizeToContents
            )
            header.setSectionResizeMode(column, mode)
        for row, values in enumerate(rows):
            for column, text in enumerate(values):
                item = QTableWidgetItem(text)
                if headers[column] not in ("Category", "Brand"):
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.setItem(row, column, item)


def _price(price: float | None) -> str:
    return "" if price is None else f"{price:.2f}"
