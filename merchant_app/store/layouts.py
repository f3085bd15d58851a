"""The two CSV layouts the store imports, and their detection from the header."""

from __future__ import annotations

import enum

from merchant_app.errors import InputDataError, InvalidRowError
from merchant_app.store.rows import EVENT_COLUMNS


class Layout(enum.StrEnum):
    """CSV layout of an event file."""

    # The public REES46 layout: time, session and category id included.
    REES46 = "rees46"
    # user_id,product_id,category_code,brand,price,event_type: no time, so
    # identical rows are separate events.
    SLIM = "slim"


LAYOUT_COLUMNS: dict[Layout, tuple[str, ...]] = {
    Layout.REES46: EVENT_COLUMNS,
    Layout.SLIM: (
        "user_id",
        "product_id",
        "category_code",
        "brand",
        "price",
        "event_type",
    ),
}

# Columns only the REES46 layout has: their presence picks it when a header
# matches neither layout.
_REES46_ONLY = frozenset(LAYOUT_COLUMNS[Layout.REES46]) - frozenset(
    LAYOUT_COLUMNS[Layout.SLIM]
)


def describe_layouts() -> str:
    """Return the expected headers of both layouts, for error messages."""
    return "; ".join(
        f"{layout.value}: {','.join(columns)}"
        for layout, columns in LAYOUT_COLUMNS.items()
    )


def check_delimiter(header_line: str, *, file_name: str) -> None:
    """Raise InputDataError when the header line is not comma-delimited."""
    if "," in header_line:
        return
    for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
        if delimiter in header_line:
            raise InputDataError(
                f"{file_name}: line 1 is delimited by {name}s ({delimiter!r}), "
                f"not commas: {header_line.strip()!r}. Save the file as CSV with "
                f"comma delimiters. Expected layouts: {describe_layouts()}",
                user_message=(
                    f"The file uses {name}s between columns. Save it as CSV with "
                    "commas and import it again."
                ),
            )


def detect_layout(header: list[str], *, file_name: str) -> Layout:
    """Return the layout whose columns the header contains.

    Column order does not matter and extra columns are allowed (the importer
    ignores them), but a header with any column only the REES46 layout has
    must have all of its columns. Raises InvalidRowError naming the missing
    columns when the header fits neither layout, or when a column repeats.
    """
    names = [name.strip() for name in header]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidRowError(
            f"{file_name}: line 1: column {repeated[0]!r} appears more than once. "
            f"Expected layouts: {describe_layouts()}",
            line=1,
            column=repeated[0],
            value=repeated[0],
            user_message=f"The column {repeated[0]} appears twice in the header.",
        )

    # A header with any REES46-only column means that layout, so a file that
    # lacks only, say, user_session is not taken as slim and loses its times.
    present = set(names)
    closest = Layout.REES46 if present & _REES46_ONLY else Layout.SLIM
    if present.issuperset(LAYOUT_COLUMNS[closest]):
        return closest

    missing = [name for name in LAYOUT_COLUMNS[closest] if name not in present]
    raise InvalidRowError(
        f"{file_name}: line 1: missing column(s) {', '.join(missing)} "
        f"for the {closest.value} layout; the header is {','.join(names)!r}. "
        f"Expected layouts: {describe_layouts()}",
        line=1,
        column=missing[0],
        value=None,
        user_message=(
            f"The file has no column {missing[0]}. Check that its first line "
            "is one of the supported headers."
        ),
    )
