"""Shared pytest configuration.

Fixtures that start real services live in ``tests/fixtures/`` and are loaded
here as plugins, so every test module can use them.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from merchant_app.store import native_rows

pytest_plugins = [
    "tests.fixtures.chain",
    "tests.fixtures.ipfs",
    "tests.fixtures.keyring",
    "tests.fixtures.ui",
]

# Qt tests never open a real window; pytest-qt reads this before QApplication.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Return the folder of real e-commerce event files, or skip the test."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real event files not found: {SHARED_DATA} does not exist")
    return SHARED_DATA


@pytest.fixture(params=["native", "python"])
def import_route(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Run the test with each way an import loads rows into SQLite.

    "native" reads them through merchant_rows (native_rows.py), "python"
    binds them from Python, as on a machine without the C module.
    """
    route = str(request.param)
    if route == "python":
        monkeypatch.setattr(native_rows, "usable", lambda connection: False)
        return route
    if not native_rows.install():
        pytest.skip("merchant_rows is not available here (see native_rows.py)")
    probe = sqlite3.connect(":memory:")
    try:
        assert native_rows.usable(probe), "merchant_rows is installed but missing"
    finally:
        probe.close()
    return route
