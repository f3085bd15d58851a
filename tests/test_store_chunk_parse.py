"""The vectorised chunk parser agrees with the row validator on every value."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from merchant_app.store.chunk_parse import ParsedChunk, parse_chunk
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout
from merchant_app.store.validation import FieldError, parse_event

VALID = {
    "event_time": "2019-10-01 00:00:00 UTC",
    "event_type": "view",
    "product_id": "44600062",
    "category_id": "2103807459595387724",
    "category_code": "",
    "brand": "acme",
    "price": "35.79",
    "user_id": "541312140",
    "user_session": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
}

EDGE_VALUES = {
    "event_time": [
        "1970-01-01 00:00:00 UTC",
        "0001-01-01 00:00:00 UTC",
        "9999-12-31 23:59:59 UTC",
        "2020-02-29 12:00:00 UTC",
        "2019-02-29 12:00:00 UTC",
        "1900-02-29 12:00:00 UTC",
        "2000-02-29 12:00:00 UTC",
        "2019-04-31 00:00:00 UTC",
        "2019-00-10 00:00:00 UTC",
        "2019-10-01 24:00:00 UTC",
        "2019-10-01 23:60:00 UTC",
        "2019-10-01 23:00:60 UTC",
        "0000-01-01 00:00:00 UTC",
        "2019-10-01T00:00:00Z",
        "2019-10-01 00:00:00.5 UTC",
        "2019-10-01 00:00:00+00:00",
        "2019-10-01 00:00:00 utc",
        "2019-10-01 00:00:00 UTC ",
        " 2019-10-01 00:00:00 UTC",
        "2019-1-01 00:00:00 UTC",
        "2019-10-01 00:00:00 UTCX",
        "٢٠١٩-10-01 00:00:00 UTC",
        "2019-10-01 00:00:00 UTC\x00",
    ],
    "product_id": [
        "0",
        "007",
        "9223372036854775807",
        "9223372036854775808",
        "9999999999999999999",
        "12345678901234567890",
        "00000000000000000000001",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1_000",
        "١٢",
        "1.0",
        "",
        "5\x00",
    ],
    "category_id": ["", "0", "2232732093077520756", "x", "1e5", "12\x00", "\x00"],
    "price": [
        "",
        "0",
        "-0",
        "35.79",
        "33.20",
        "1.",
        ".5",
        "+2",
        "-3.25",
        "1e3",
        "1E-2",
        "1e999",
        "nan",
        "inf",
        "1.2.3",
        "e5",
        ".",
        "-",
        "1,5",
        " 1",
        "1_0",
        "0.1000000000000000055511151231257827",
        "٣",
        "5\x00",
        "\x00",
    ],
    "event_type": ["view", "cart", "remove_from_cart", "purchase", "View", "", "buy"],
}


def _row_verdict(row: dict[str, str], layout: Layout) -> tuple[object, ...] | str:
    try:
        return parse_event(row, require_time=layout is Layout.REES46).as_tuple()
    except FieldError as exc:
        return exc.column


def _chunk_verdicts(rows: list[dict[str, str]], layout: Layout) -> list[object]:
    columns = LAYOUT_COLUMNS[layout]
    frame = pd.DataFrame({name: [row[name] for row in rows] for name in columns})
    parsed = parse_chunk(frame.astype(object), layout=layout, first_line=2)
    return parsed_verdicts(parsed, len(rows))


def parsed_verdicts(parsed: ParsedChunk, row_count: int) -> list[object]:
    """Return per row of a chunk parsed from line 2 its rejected column or values."""
    rejected = {r.line - 2: r.column for r in parsed.rejected}
    kept_rows = iter(range(len(parsed.columns)))
    verdicts: list[object] = []
    c = parsed.columns
    for index in range(row_count):
        if index in rejected:
            verdicts.append(rejected[index])
            continue
        k = next(kept_rows)
        verdicts.append(
            (
                None if c.event_time_null[k] else int(c.event_time[k]),
                c.event_type[k],
                int(c.product_id[k]),
                None if c.category_id_null[k] else int(c.category_id[k]),
                c.category_code[k],
                c.brand[k],
                None if c.price_null[k] else float(c.price[k]),
                int(c.user_id[k]),
                c.user_session[k],
            )
        )
    return verdicts


@pytest.mark.parametrize("column", sorted(EDGE_VALUES))
def test_chunk_parse_agrees_with_row_validator(column: str) -> None:
    rows = [{**VALID, column: value} for value in EDGE_VALUES[column]]

    chunk = _chunk_verdicts(rows, Layout.REES46)
    single = [_row_verdict(row, Layout.REES46) for row in rows]

    for value, from_chunk, from_row in zip(
        EDGE_VALUES[column], chunk, single, strict=True
    ):
        assert from_chunk == from_row, f"{column}={value!r}"


def test_chunk_parse_random_times_match_datetime() -> None:
    rng = np.random.default_rng(3)
    seconds = rng.integers(-2_000_000_000, 8_000_000_000, 2_000)
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    texts = [
        (epoch + dt.timedelta(seconds=int(s))).strftime("%Y-%m-%d %H:%M:%S UTC")
        for s in seconds
    ]
    rows = [{**VALID, "event_time": text} for text in texts]

    verdicts = _chunk_verdicts(rows, Layout.REES46)

    assert [v[0] for v in verdicts] == [int(s) * 1_000_000 for s in seconds]  # type: ignore[index]


def test_chunk_parse_slim_layout_has_no_time() -> None:
    row = {k: VALID[k] for k in LAYOUT_COLUMNS[Layout.SLIM]}

    verdicts = _chunk_verdicts([row, row], Layout.SLIM)

    assert verdicts == [_row_verdict(row, Layout.SLIM)] * 2
    assert verdicts[0][0] is None  # type: ignore[index]


@pytest.mark.parametrize("column", sorted(EDGE_VALUES))
def test_chunk_parse_one_odd_value_per_chunk(column: str) -> None:
    # The whole-chunk checks of the fast paths see a single odd value among
    # plain ones, so each value takes the path a real file would give it.
    for value in EDGE_VALUES[column]:
        rows = [VALID, {**VALID, column: value}, VALID]

        chunk = _chunk_verdicts(rows, Layout.REES46)
        single = [_row_verdict(row, Layout.REES46) for row in rows]

        assert chunk == single, f"{column}={value!r}"


def test_chunk_parse_random_prices_match_float() -> None:
    rng = np.random.default_rng(5)
    digits = [str(d) for d in rng.integers(1, 10**17, 4_000).tolist()]
    points = rng.integers(0, 17, 4_000).tolist()
    exponents = rng.integers(-30, 30, 4_000).tolist()
    texts = [f"{d[:p]}.{d[p:]}" for d, p in zip(digits[:2_000], points, strict=False)]
    texts += [f"{d}e{e}" for d, e in zip(digits[2_000:], exponents, strict=False)]
    rows = [{**VALID, "price": text} for text in texts]

    verdicts = _chunk_verdicts(rows, Layout.REES46)

    assert [v[6] for v in verdicts] == [float(text) for text in texts]  # type: ignore[index]


def test_chunk_parse_largest_ids_are_exact() -> None:
    ids = ["9223372036854775807", "9223372036854775806", "1000000000000000001"]
    rows = [{**VALID, "category_id": value, "user_id": value} for value in ids]

    verdicts = _chunk_verdicts(rows, Layout.REES46)

    assert [v[3] for v in verdicts] == [int(value) for value in ids]  # type: ignore[index]
    assert [v[7] for v in verdicts] == [int(value) for value in ids]  # type: ignore[index]
