"""``merchant-app demo``: the headless path, the window path with a real local
consortium (offscreen), and the keyring fallback; every service it started
must be gone afterwards."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from keyring.backends import SecretService, fail
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from merchant_app.cli import main
from merchant_app.demo import (
    DEMO_PROFILE,
    SAMPLE_SHOPS,
    DemoConsortium,
    DemoOptions,
    has_display,
    resolve_demo_data,
)
from merchant_app.errors import InputDataError
from merchant_app.services.anvil import process_is_running
from merchant_app.ui.demo_window import run_demo_window
from merchant_app.ui.main_window import MainWindow
from tests.ui_round_support import FAST, cut_sample

WAIT_SECONDS = 180.0


def test_demo_headless_prints_round_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["demo", "--headless", "--rounds", "1", "--data", str(SAMPLE_SHOPS)])

    output = capsys.readouterr().out
    assert code == 0
    assert "Demo data: the folder you gave: shop_0.csv" in output
    assert "Round 1" in output
    assert "HR@10" in output
    for name in ("shop_0", "shop_1", "shop_2"):
        assert name in output
    assert output.rstrip().endswith(
        "Demo finished; every service it started is stopped."
    )


def test_has_display_follows_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")

    assert not has_display()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert has_display()


def test_demo_data_rejects_folder_without_three_files(tmp_path: Path) -> None:
    (tmp_path / "only.csv").write_text("user_id,product_id\n")

    with pytest.raises(InputDataError, match="needs 3"):
        resolve_demo_data(tmp_path)


def test_demo_window_opens_and_stops_services(
    qapp: QApplication,
    tmp_path: Path,
    secret_service_backend: SecretService.Keyring,
) -> None:
    cut_sample(tmp_path / "shops")
    data = resolve_demo_data(tmp_path / "shops")
    options = DemoOptions(
        data=data, data_root=tmp_path / "profiles", rounds=1, driver_settings=FAST
    )
    seen: list[str] = []
    deadline = time.monotonic() + WAIT_SECONDS

    def close_when_ready() -> None:
        for widget in QApplication.topLevelWidgets():
            if not isinstance(widget, MainWindow) or not widget.isVisible():
                continue
            tab = widget.contribute_tab
            if tab.preview is not None or time.monotonic() > deadline:
                seen.append(widget.windowTitle())
                seen.append(widget.tabs.tabText(widget.tabs.currentIndex()))
                seen.append(tab.status_label.text())
                widget.close()
            return

    timer = QTimer()
    timer.setInterval(50)
    timer.timeout.connect(close_when_ready)
    lines: list[str] = []
    with DemoConsortium(
        options, keyring_backend=secret_service_backend, output=lines.append
    ) as demo:
        pids = demo.service_pids
        assert len(pids) == 4
        assert all(process_is_running(pid) for pid in pids)
        assert demo.key_in_keyring
        assert demo.profile is not None
        assert demo.profile.settings.contract_address == demo.contract_address
        timer.start()
        try:
            code = run_demo_window(
                demo.profile,
                keyring_backend=secret_service_backend,
                driver_settings=FAST,
            )
        finally:
            timer.stop()

    assert code == 0
    assert seen[0] == f"Merchant App: {DEMO_PROFILE}"
    assert seen[1] == "Contribute"
    assert "Round 1 is open" in seen[2]
    assert not [pid for pid in pids if process_is_running(pid)]
    assert (tmp_path / "profiles" / DEMO_PROFILE / "settings.json").exists()
    assert any("key is in the OS keyring" in line for line in lines)


def test_demo_without_keyring_uses_memory_key(tmp_path: Path) -> None:
    cut_sample(tmp_path / "shops")
    data = resolve_demo_data(tmp_path / "shops")
    options = DemoOptions(
        data=data, data_root=tmp_path / "profiles", rounds=1, driver_settings=FAST
    )
    lines: list[str] = []

    with DemoConsortium(
        options, keyring_backend=fail.Keyring(), output=lines.append
    ) as demo:
        pids = demo.service_pids
        assert demo.profile is not None
        assert demo.profile.wallet.storage == "memory"
        assert not demo.key_in_keyring
        members = demo.headless[0].driver.contract.members()
        names = {member.address: member.name for member in members}

    # The window's merchant is on chain under the profile's name, like in the
    # window; the headless merchants keep their CSV file names.
    assert names[demo.profile.wallet.address] == DEMO_PROFILE
    assert sorted(names.values()) == sorted([DEMO_PROFILE, "shop_1", "shop_2"])

    assert any("throwaway key held in memory" in line for line in lines)
    assert not (tmp_path / "profiles" / DEMO_PROFILE).exists()
    assert not [pid for pid in pids if process_is_running(pid)]
