"""Texts the window builds from values: sizes, short ids, the import summary."""

from __future__ import annotations

import pytest

from merchant_app.store import ImportMode, ImportReport
from merchant_app.ui.text import describe_size, short_id
from merchant_app.ui.transactions_tab import describe_report


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1_244_284, "1.2 MB (1,244,284 bytes)"),
        (9_948_960, "9.9 MB (9,948,960 bytes)"),
        (3_300_000_000, "3.3 GB (3,300,000,000 bytes)"),
    ],
)
def test_describe_size_units(size: int, expected: str) -> None:
    assert describe_size(size) == expected


def test_describe_size_rounded_only() -> None:
    assert describe_size(1_244_284, exact=False) == "1.2 MB"
    assert describe_size(512, exact=False) == "512 bytes"


def test_short_id_keeps_ends() -> None:
    cid = "bafkreigc7wgegxqlaqp2qbu6rnoaatlaretwv2vzvd35vz5edtcaymzsja"

    assert short_id(cid) == "bafkreigc7…ymzsja"
    assert short_id("0x1234") == "0x1234"


def test_import_summary_singular_and_plural() -> None:
    report = ImportReport(
        file_name="bad.csv",
        sha256="0" * 64,
        layout=None,
        mode=ImportMode.SKIP_BAD_ROWS,
        rows_added=1,
        duplicates=3,
        rejected_count=1,
        negative_prices=2,
    )

    text = describe_report(report)

    assert text.startswith(
        "bad.csv: 1 event added, 3 duplicates skipped, 1 invalid row skipped."
    )
    assert "2 rows with a negative price (kept and flagged)." in text
