"""The byte-level chunk parser agrees with the row validator on every value."""

from __future__ import annotations

import numpy as np
import pytest

from merchant_app.store.byte_parse import is_utf8, parse_fields, split_fields
from merchant_app.store.layouts import LAYOUT_COLUMNS, Layout
from merchant_app.store.validation import FieldError, parse_event
from tests.test_store_chunk_parse import EDGE_VALUES, VALID, parsed_verdicts

REES46 = LAYOUT_COLUMNS[Layout.REES46]

# Values that never reach the byte path: a chunk with a quote, a NUL, a
# stray carriage return or a line break is not plain and goes to pandas.
_NOT_PLAIN = ('"', "\x00", "\r", "\n", ",")


def _csv_bytes(rows: list[dict[str, str]], columns: tuple[str, ...]) -> bytes:
    lines = [",".join(row[name] for name in columns) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _byte_verdicts(
    rows: list[dict[str, str]],
    layout: Layout,
    columns: tuple[str, ...] | None = None,
) -> list[object]:
    columns = columns or LAYOUT_COLUMNS[layout]
    data = _csv_bytes(rows, columns)
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    bounds = split_fields(data, newlines, len(columns))
    assert bounds is not None
    assert is_utf8(data)

    parsed = parse_fields(
        data,
        bounds,
        positions={name: index for index, name in enumerate(columns)},
        layout=layout,
        first_line=2,
    )
    return parsed_verdicts(parsed, len(rows))


def _row_verdict(row: dict[str, str], layout: Layout) -> tuple[object, ...] | str:
    try:
        return parse_event(row, require_time=layout is Layout.REES46).as_tuple()
    except FieldError as exc:
        return exc.column


def _plain(values: list[str]) -> list[str]:
    return [v for v in values if not any(char in v for char in _NOT_PLAIN)]


@pytest.mark.parametrize("column", sorted(EDGE_VALUES))
def test_byte_parse_agrees_with_row_validator(column: str) -> None:
    values = _plain(EDGE_VALUES[column])
    rows = [{**VALID, column: value} for value in values]

    from_bytes = _byte_verdicts(rows, Layout.REES46)
    single = [_row_verdict(row, Layout.REES46) for row in rows]

    for value, verdict, expected in zip(values, from_bytes, single, strict=True):
        assert verdict == expected, f"{column}={value!r}"


@pytest.mark.parametrize("column", sorted(EDGE_VALUES))
def test_byte_parse_one_odd_value_per_chunk(column: str) -> None:
    for value in _plain(EDGE_VALUES[column]):
        rows = [VALID, {**VALID, column: value}, VALID]

        from_bytes = _byte_verdicts(rows, Layout.REES46)
        single = [_row_verdict(row, Layout.REES46) for row in rows]

        assert from_bytes == single, f"{column}={value!r}"


def test_byte_parse_random_ids_are_exact() -> None:
    rng = np.random.default_rng(11)
    lengths = rng.integers(1, 20, 3_000)
    ids = [
        str(rng.integers(0, 10, n).tolist()).strip("[]").replace(", ", "")
        for n in lengths
    ]
    ids += ["9223372036854775807", "9223372036854775808", "0000000000000000001"]
    rows = [
        {**VALID, "product_id": value, "category_id": value[::-1], "user_id": value}
        for value in ids
    ]

    from_bytes = _byte_verdicts(rows, Layout.REES46)

    assert from_bytes == [_row_verdict(row, Layout.REES46) for row in rows]


def test_byte_parse_random_prices_match_float() -> None:
    rng = np.random.default_rng(5)
    digits = [str(d) for d in rng.integers(1, 10**17, 4_000).tolist()]
    points = rng.integers(0, 17, 4_000).tolist()
    signs = rng.choice(["", "-", "+"], 4_000).tolist()
    texts = [
        f"{s}{d[:p]}.{d[p:]}" for s, d, p in zip(signs, digits, points, strict=True)
    ]
    texts += [
        "-0",
        "-0.00",
        "0.",
        ".0",
        "1.",
        "-.5",
        "123456789012345",
        "1234567890123456",
    ]
    rows = [{**VALID, "price": text} for text in texts]

    from_bytes = _byte_verdicts(rows, Layout.REES46)

    prices = [v[6] for v in from_bytes]  # type: ignore[index]
    assert prices == [float(text) for text in texts]
    # -0.0 == 0.0, so compare the signs too.
    assert [np.signbit(p) for p in prices] == [text.startswith("-") for text in texts]


def test_byte_parse_random_times_match_validator() -> None:
    rng = np.random.default_rng(3)
    seconds = rng.integers(-2_000_000_000, 8_000_000_000, 2_000)
    times = np.datetime64("1970-01-01T00:00:00") + seconds.astype("timedelta64[s]")
    texts = [str(t).replace("T", " ") + " UTC" for t in times]
    rows = [{**VALID, "event_time": text} for text in texts]

    from_bytes = _byte_verdicts(rows, Layout.REES46)

    assert [v[0] for v in from_bytes] == [int(s) * 1_000_000 for s in seconds]  # type: ignore[index]


def test_byte_parse_texts_keep_values_and_nulls() -> None:
    brands = ["", "acme", "über", "a" * 60, "acme", "", "x" * 200, "ACME", "acme "]
    rows = [{**VALID, "brand": brand, "user_session": brand} for brand in brands]

    from_bytes = _byte_verdicts(rows, Layout.REES46)

    expected = [brand or None for brand in brands]
    assert [v[5] for v in from_bytes] == expected  # type: ignore[index]
    assert [v[8] for v in from_bytes] == expected  # type: ignore[index]


def test_byte_parse_slim_layout_and_column_order() -> None:
    columns = ("price", "event_type", "user_id", "brand", "product_id", "category_code")
    row = {k: VALID[k] for k in LAYOUT_COLUMNS[Layout.SLIM]}

    verdicts = _byte_verdicts([row, row], Layout.SLIM, columns)

    assert verdicts == [_row_verdict(row, Layout.SLIM)] * 2
    assert verdicts[0][0] is None  # type: ignore[index]


@pytest.mark.parametrize(
    "data",
    [
        b'a,b,c\n1,"2",3\n',
        b"a,b,c\n\n1,2,3\n",
        b"a,b,c\n1,2\n1,2,3,4\n",
        b"a,b,c\n1,2,3,\n",
        b"a,b,c\n1,2\r3\n",
        b"a,b,c\n1,\x002,3\n",
    ],
)
def test_split_fields_leaves_other_chunks_to_pandas(data: bytes) -> None:
    body = data.split(b"\n", 1)[1]
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)

    assert split_fields(body, newlines, 3) is None


def test_split_fields_accepts_crlf_lines() -> None:
    body = b"1,22,333\r\n4,5,6\n"
    newlines = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10)

    bounds = split_fields(body, newlines, 3)

    assert bounds is not None
    fields = [
        [body[slice(*bounds.field(row, index))] for index in range(3)]
        for row in range(bounds.rows)
    ]
    assert fields == [[b"1", b"22", b"333"], [b"4", b"5", b"6"]]
