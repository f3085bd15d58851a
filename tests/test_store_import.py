"""Import of real and generated CSV files into the event store."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest

from merchant_app.errors import Cancelled, InvalidRowError
from merchant_app.store import EventStore, ImportProgress, Layout
from merchant_app.store.export import format_time
from tests.store_support import (
    REES46_HEADER,
    REES46_ROWS,
    SLIM_HEADER,
    dump,
    read_rows,
    utc_microseconds,
    write_csv,
)


@pytest.fixture
def store(tmp_path: Path, import_route: str) -> EventStore:
    with EventStore.open(tmp_path / "merchant.sqlite") as opened:
        yield opened


@pytest.fixture(scope="module")
def rees46_file(shared_data: Path) -> Path:
    path = shared_data / "rees46-raw" / "2019-Oct-head17k.csv"
    if not path.is_file():
        pytest.skip(f"real REES46 file not found: {path}")
    return path


@pytest.fixture(scope="module")
def slim_file(shared_data: Path) -> Path:
    path = shared_data / "seed-shops" / "shop_0.csv"
    if not path.is_file():
        pytest.skip(f"seed shop file not found: {path}")
    return path


def _unique_in_order(rows: list[list[str]]) -> list[list[str]]:
    seen: set[tuple[str, ...]] = set()
    unique = []
    for row in rows:
        if tuple(row) not in seen:
            seen.add(tuple(row))
            unique.append(row)
    return unique


def _stored_rows(store: EventStore) -> list[tuple[object, ...]]:
    return store.connection.execute(
        "SELECT event_time, event_type, product_id, category_id, category_code, "
        "brand, price, user_id, user_session FROM events ORDER BY id"
    ).fetchall()


def test_import_rees46_counts_match_file(store: EventStore, rees46_file: Path) -> None:
    rows = read_rows(rees46_file)
    unique = _unique_in_order(rows)

    report = store.import_csv(rees46_file)

    assert report.layout is Layout.REES46
    assert report.rows_read == len(rows)
    assert report.rows_added == len(unique)
    assert report.duplicates == len(rows) - len(unique)
    assert report.rejected_count == 0
    counts = store.counts()
    assert counts.events == len(unique)
    assert counts.customers == len({row[7] for row in rows})
    assert counts.products == len({row[2] for row in rows})
    stored_types = Counter(
        dict(
            store.connection.execute(
                "SELECT event_type, count(*) FROM events GROUP BY event_type"
            ).fetchall()
        )
    )
    assert stored_types == Counter(row[1] for row in unique)


def test_import_rees46_file_has_known_shape(rees46_file: Path) -> None:
    # The file's documented statistics, counted here with the csv module.
    rows = read_rows(rees46_file)
    types = Counter(row[1] for row in rows)

    assert len(rows) == 17_434
    assert len(rows) - len(_unique_in_order(rows)) == 5
    assert len({row[7] for row in rows}) == 4_504
    assert len({row[2] for row in rows}) == 6_493
    assert (types["view"], types["cart"], types["purchase"]) == (17_055, 165, 214)
    assert sum(row[5] == "" for row in rows) == 2_477
    assert sum(row[4] == "" for row in rows) == 5_746


def test_import_rees46_stores_exact_values(
    store: EventStore, rees46_file: Path
) -> None:
    unique = _unique_in_order(read_rows(rees46_file))

    store.import_csv(rees46_file)
    stored = _stored_rows(store)

    assert len(stored) == len(unique)
    for text_row, row in zip(unique, stored, strict=True):
        time, kind, product, category, code, brand, price, user, session = row
        assert time == utc_microseconds(text_row[0])
        assert format_time(time) == text_row[0]
        assert kind == text_row[1]
        assert str(product) == text_row[2]
        assert str(category) == text_row[3]
        assert code == (text_row[4] or None)
        assert brand == (text_row[5] or None)
        assert price == float(text_row[6])
        assert str(user) == text_row[7]
        assert session == text_row[8]


def test_import_rees46_empty_fields_are_null(
    store: EventStore, rees46_file: Path
) -> None:
    unique = _unique_in_order(read_rows(rees46_file))

    store.import_csv(rees46_file)
    null_brand, null_code, text_nan = store.connection.execute(
        "SELECT sum(brand IS NULL), sum(category_code IS NULL), "
        "sum(brand IN ('', 'nan') OR category_code IN ('', 'nan')) FROM events"
    ).fetchone()

    assert null_brand == sum(row[5] == "" for row in unique)
    assert null_code == sum(row[4] == "" for row in unique)
    assert text_nan == 0


def test_import_rees46_category_ids_have_19_digits(
    store: EventStore, rees46_file: Path
) -> None:
    store.import_csv(rees46_file)
    types = store.connection.execute(
        "SELECT DISTINCT typeof(category_id), length(category_id) FROM events"
    ).fetchall()

    assert types == [("integer", 19)]


def test_import_same_file_twice_adds_nothing(
    store: EventStore, rees46_file: Path
) -> None:
    first = store.import_csv(rees46_file)
    before = dump(store)

    second = store.import_csv(rees46_file)

    assert not first.already_imported
    assert second.already_imported
    assert second.rows_added == 0
    assert second.import_id == first.import_id
    assert dump(store) == before


def test_import_rows_already_stored_are_duplicates(
    store: EventStore, tmp_path: Path
) -> None:
    first = write_csv(tmp_path, "a.csv", [REES46_HEADER, REES46_ROWS[0]])
    # Other bytes (a BOM and a second row), so not the same file content.
    second = write_csv(tmp_path, "b.csv", [REES46_HEADER, *REES46_ROWS], bom=True)

    store.import_csv(first)
    report = store.import_csv(second)

    assert report.rows_read == 2
    assert report.rows_added == 1
    assert report.duplicates == 1
    assert store.count_events() == 2


def test_import_slim_keeps_identical_rows(store: EventStore, slim_file: Path) -> None:
    rows = read_rows(slim_file)
    identical = len(rows) - len(_unique_in_order(rows))

    report = store.import_csv(slim_file)

    assert identical > 0
    assert report.layout is Layout.SLIM
    assert report.rows_added == len(rows)
    assert report.duplicates == 0
    assert store.count_events() == len(rows)
    times, sessions, hashes = store.connection.execute(
        "SELECT count(event_time), count(user_session), count(row_hash) FROM events"
    ).fetchone()
    assert (times, sessions, hashes) == (0, 0, 0)


def test_import_slim_counts_match_file(store: EventStore, slim_file: Path) -> None:
    rows = read_rows(slim_file)

    store.import_csv(slim_file)
    counts = store.counts()

    assert counts.customers == len({row[0] for row in rows})
    assert counts.products == len({row[1] for row in rows})


def test_import_bom_file(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "bom.csv", [REES46_HEADER, *REES46_ROWS], bom=True)

    report = store.import_csv(path)

    assert report.layout is Layout.REES46
    assert report.rows_added == 2


def test_import_quoted_fields_with_commas(store: EventStore, tmp_path: Path) -> None:
    lines = [
        SLIM_HEADER,
        '7,8,"kids,toys","Acme, Inc.",12.50,view',
        '"9","10",,"say ""hi""",1,purchase',
    ]
    path = write_csv(tmp_path, "quoted.csv", lines)

    store.import_csv(path)
    rows = store.connection.execute(
        "SELECT user_id, product_id, category_code, brand, price FROM events "
        "ORDER BY id"
    ).fetchall()

    assert rows == [
        (7, 8, "kids,toys", "Acme, Inc.", 12.5),
        (9, 10, None, 'say "hi"', 1.0),
    ]


def test_import_columns_in_any_order(store: EventStore, tmp_path: Path) -> None:
    lines = ["event_type,price,brand,category_code,product_id,user_id,extra", ""]
    lines = [lines[0], "cart,5,b,c.d,11,12,ignored"]
    path = write_csv(tmp_path, "reordered.csv", lines)

    report = store.import_csv(path)
    event = store.fetch_events(limit=1)[0]

    assert report.ignored_columns == ["extra"]
    assert (event.user_id, event.product_id, event.event_type) == (12, 11, "cart")
    assert (event.brand, event.category_code, event.price) == ("b", "c.d", 5.0)


def test_import_blank_lines_are_skipped(store: EventStore, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "blank.csv", [SLIM_HEADER, "1,2,,,3,view", "", "4,5,,,6,cart"]
    )

    report = store.import_csv(path)

    assert report.rows_added == 2
    assert report.blank_lines == 1


def test_import_negative_price_is_kept_and_flagged(
    store: EventStore, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path, "neg.csv", [SLIM_HEADER, "1,2,,,-3.5,view", "1,3,,,4,view"]
    )

    report = store.import_csv(path)
    flags = store.connection.execute(
        "SELECT price, negative_price FROM events ORDER BY id"
    ).fetchall()

    assert report.negative_prices == 1
    assert flags == [(-3.5, 1), (4.0, 0)]


def test_import_remove_from_cart_is_stored_not_counted(
    store: EventStore, tmp_path: Path
) -> None:
    lines = [
        SLIM_HEADER,
        "1,2,,,3,view",
        "1,2,,,3,remove_from_cart",
        "1,2,,,3,purchase",
    ]
    path = write_csv(tmp_path, "rfc.csv", lines)

    store.import_csv(path)

    assert store.count_events() == 3
    assert store.interactions() == [(1, 2, "view"), (1, 2, "purchase")]


def test_import_progress_reports_rows_and_bytes(
    store: EventStore, rees46_file: Path
) -> None:
    updates: list[ImportProgress] = []

    store.import_csv(rees46_file, progress=updates.append, chunk_rows=4_000)

    size = rees46_file.stat().st_size
    assert len(updates) == 5
    assert [u.rows_done for u in updates] == [4_000, 8_000, 12_000, 16_000, 17_434]
    assert all(u.bytes_total == size for u in updates)
    assert updates[-1].bytes_done == size
    assert updates[-1].fraction == 1.0
    assert [u.bytes_done for u in updates] == sorted(u.bytes_done for u in updates)


def test_import_cancel_midway_rolls_back(store: EventStore, rees46_file: Path) -> None:
    cancel = threading.Event()
    before = dump(store)

    def stop_after_first_chunk(progress: ImportProgress) -> None:
        cancel.set()

    with pytest.raises(Cancelled):
        store.import_csv(
            rees46_file,
            progress=stop_after_first_chunk,
            cancel=cancel,
            chunk_rows=2_000,
        )

    assert dump(store) == before
    assert store.import_csv(rees46_file).rows_added > 0


def test_import_cancel_callback_before_start(
    store: EventStore, rees46_file: Path
) -> None:
    before = dump(store)

    with pytest.raises(Cancelled):
        store.import_csv(rees46_file, cancel=lambda: True)

    assert dump(store) == before


def test_import_log_records_the_import(store: EventStore, rees46_file: Path) -> None:
    report = store.import_csv(rees46_file)
    logged = store.connection.execute(
        "SELECT file_name, length(sha256), layout, rows_read, rows_added, "
        "duplicates, rejected, finished_at IS NOT NULL FROM imports"
    ).fetchall()

    assert logged == [
        (
            rees46_file.name,
            64,
            "rees46",
            report.rows_read,
            report.rows_added,
            report.duplicates,
            0,
            1,
        )
    ]
    sources = store.connection.execute("SELECT DISTINCT source FROM events").fetchall()
    assert sources == [(report.import_id,)]


def test_import_fills_products_with_latest_values(
    store: EventStore, tmp_path: Path
) -> None:
    lines = [SLIM_HEADER, "1,7,a.b,,10,view", "2,7,,brandx,12,view", "3,8,,,,view"]
    path = write_csv(tmp_path, "products.csv", lines)

    store.import_csv(path)
    products = store.connection.execute(
        "SELECT product_id, category_code, brand, price FROM products ORDER BY 1"
    ).fetchall()

    assert products == [(7, "a.b", "brandx", 12.0), (8, None, None, None)]


def test_import_large_file_keeps_only_the_duplicate_index(
    store: EventStore, tmp_path: Path
) -> None:
    lines = [SLIM_HEADER] + [f"{i % 97},{i % 89},,,1.5,view" for i in range(60_000)]
    path = write_csv(tmp_path, "large.csv", lines)

    report = store.import_csv(path)
    indexes = {
        row[0]
        for row in store.connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'"
        )
    }

    assert report.rows_added == 60_000
    event_indexes = {name for name in indexes if not name.startswith("sqlite_")}
    assert event_indexes == {"events_unique_row"}


def test_import_concurrent_reader(store: EventStore, rees46_file: Path) -> None:
    seen: list[int] = []
    with EventStore.open(store.path) as reader:

        def read_while_importing(progress: ImportProgress) -> None:
            seen.append(reader.count_events())

        store.import_csv(rees46_file, progress=read_while_importing, chunk_rows=5_000)
        after = reader.count_events()

    assert seen == [0, 0, 0, 0]
    assert after == store.count_events()


def test_import_low_parameter_limit_same_rows(
    tmp_path: Path, rees46_file: Path
) -> None:
    with EventStore.open(tmp_path / "default.sqlite") as default:
        default.import_csv(rees46_file, chunk_rows=3_000)
        expected = _stored_rows(default)
    with EventStore.open(tmp_path / "limited.sqlite") as limited:
        # 25 parameters allow 2 event rows per statement instead of 500.
        limited.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 25)
        report = limited.import_csv(rees46_file, chunk_rows=3_000)

        assert report.rows_added == len(expected)
        assert _stored_rows(limited) == expected


def test_import_duplicate_negative_price_not_counted(
    store: EventStore, tmp_path: Path
) -> None:
    negative = REES46_ROWS[0].replace(",35.79,", ",-35.79,")
    other = REES46_ROWS[1].replace(",33.20,", ",-1,")
    first = write_csv(tmp_path, "a.csv", [REES46_HEADER, negative])
    second = write_csv(tmp_path, "b.csv", [REES46_HEADER, negative, other])

    store.import_csv(first)
    report = store.import_csv(second)

    assert report.rows_added == 1
    assert report.duplicates == 1
    assert report.negative_prices == 1


def test_import_failure_stops_parse_thread(store: EventStore, tmp_path: Path) -> None:
    # The invalid row is in the second chunk, so the parsing thread still has
    # chunks to read when the import fails.
    good = [f"{user},{user % 50},,,2.5,view" for user in range(20_000)]
    lines = [SLIM_HEADER, *good[:150], "1,2,,,3,like", *good[150:]]
    path = write_csv(tmp_path, "bad.csv", lines)

    with pytest.raises(InvalidRowError):
        store.import_csv(path, chunk_rows=100)

    parse_threads = [
        thread
        for thread in threading.enumerate()
        if thread.name.startswith("import-parse-")
    ]
    assert parse_threads == []
