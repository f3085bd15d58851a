"""Tests of the hold-one-out protocol, the CSV loader and ``merchant-app evaluate``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merchant_app.cli import main
from merchant_app.errors import InputDataError
from merchant_app.recommender.dataset import load_events_csv, load_merchant_folder
from merchant_app.recommender.evaluation import (
    evaluate_local,
    hold_out_pairs,
    rank_held_out,
    split_hold_one_out,
)
from tests.recommender_support import SEED_SHOPS_FOLDER, clustered_events, write_csv


def _events(rows: list[tuple[int, int, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "event_type"])
    return frame.astype({"user_id": np.int64, "product_id": np.int64})


# Merchant "a": customer 1 has products [10, 11] and customer 2 only product
# 10, so customer 2 is not eligible. Customer 3 has [10, 12, 13]. Its product
# 10 comes only from a remove_from_cart event, which still counts.
SHOP_A = _events(
    [
        (3, 13, "purchase"),
        (1, 11, "view"),
        (1, 10, "cart"),
        (2, 10, "view"),
        (3, 12, "view"),
        (1, 11, "view"),
        (2, 10, "view"),
        (3, 10, "remove_from_cart"),
    ]
)
# Merchant "b": customer 3 has [12, 15], customer 4 has [16, 17], customer 2
# only product 14.
SHOP_B = _events(
    [
        (4, 17, "view"),
        (3, 15, "view"),
        (2, 14, "view"),
        (3, 12, "cart"),
        (4, 16, "view"),
    ]
)


def test_hold_out_pairs_matches_hand_computed_draws() -> None:
    # default_rng(42) draws integers(2) -> 0 then integers(3) -> 2 for "a",
    # and integers(2) -> 0 then integers(2) -> 1 for "b" (a fresh generator).
    first_draws = np.random.default_rng(42)
    assert int(first_draws.integers(2)) == 0
    assert int(first_draws.integers(3)) == 2

    held_a = hold_out_pairs(SHOP_A)
    held_b = hold_out_pairs(SHOP_B)

    assert held_a.to_dict("list") == {"user_id": [1, 3], "product_id": [10, 13]}
    assert held_b.to_dict("list") == {"user_id": [3, 4], "product_id": [12, 17]}


def test_hold_out_pairs_equals_rng_choice_reading() -> None:
    events = clustered_events(seed=5, customers=40)
    rng = np.random.default_rng(42)
    expected = []
    for customer in sorted(events["user_id"].unique()):
        products = np.sort(
            events.loc[events["user_id"] == customer, "product_id"].unique()
        )
        if len(products) >= 2:
            expected.append((int(customer), int(rng.choice(products))))

    held_out = hold_out_pairs(events)

    assert (
        list(zip(held_out["user_id"], held_out["product_id"], strict=True)) == expected
    )


def test_split_removes_held_out_pairs_from_every_merchant() -> None:
    split = split_hold_one_out({"a": SHOP_A, "b": SHOP_B})

    # (3, 12) is held out at "b" and must also leave "a"'s training events.
    train_a = set(split.train["a"][["user_id", "product_id"]].itertuples(index=False))
    train_b = set(split.train["b"][["user_id", "product_id"]].itertuples(index=False))
    assert train_a == {(1, 11), (2, 10), (3, 10)}
    assert train_b == {(2, 14), (3, 15), (4, 16)}
    assert len(split.train["a"]) == 5
    assert split.catalog.tolist() == [10, 11, 12, 13, 14, 15, 16, 17]


class _FixedModel:
    """A model with fixed scores for every customer."""

    def __init__(self, item_ids: list[int], scores: list[float]) -> None:
        self.item_ids = np.array(item_ids, dtype=np.int64)
        self._scores = np.array(scores)

    def score(self, customer_ids: np.ndarray) -> np.ndarray:
        return np.tile(self._scores, (len(customer_ids), 1))


def test_rank_held_out_ties_and_exclusions() -> None:
    model = _FixedModel([1, 2, 3, 4], [0.5, 0.9, 0.5, 0.1])
    training = _events([(7, 2, "view")])
    catalog = np.array([1, 2, 3, 4, 5], dtype=np.int64)

    ranks = rank_held_out(
        model,
        customers=np.array([7, 7, 8]),
        targets=np.array([3, 1, 3]),
        training=training,
        catalog=catalog,
    )

    # Customer 7 trained on 2, so 3 ranks after 1 (tie, lower id); customer 8
    # also has 2 (0.9) above.
    assert ranks.tolist() == [1, 0, 2]


def test_rank_held_out_unscorable_target_is_a_miss() -> None:
    model = _FixedModel([1, 2], [0.5, 0.9])
    catalog = np.array([1, 2, 3], dtype=np.int64)

    ranks = rank_held_out(
        model,
        customers=np.array([7]),
        targets=np.array([3]),
        training=_events([(7, 1, "view")]),
        catalog=catalog,
    )

    assert ranks.tolist() == [3]


def test_evaluate_local_scores_hits_and_ndcg() -> None:
    split = split_hold_one_out({"a": SHOP_A, "b": SHOP_B})
    # Scores favour 13 then 17: "a" targets are 10 and 13, "b" targets 12, 17.
    model = _FixedModel([10, 12, 13, 17], [0.1, 0.2, 0.9, 0.8])

    result = evaluate_local(split, lambda events: model)

    by_name = {merchant.name: merchant for merchant in result.merchants}
    assert by_name["a"].hr10 == 1.0
    # a: customer 1 ranks 10 at 3 (13, 17, 12 above); customer 3 ranks 13 at 0.
    expected_a = (1 / math.log2(5) + 1.0) / 2
    assert by_name["a"].ndcg10 == pytest.approx(expected_a)
    assert result.average_hr10 == pytest.approx(
        (by_name["a"].hr10 + by_name["b"].hr10) / 2
    )


def test_load_events_csv_reads_19_digit_ids_exactly(tmp_path: Path) -> None:
    path = tmp_path / "full.csv"
    path.write_text(
        "event_time,event_type,product_id,category_id,category_code,brand,price,"
        "user_id,user_session\n"
        "2019-10-01 00:00:00 UTC,view,9223372036854775807,2103807459595387724,,"
        "shiseido,35.79,1234567890123456789,72d76fde-8bb3-4e00-8c23-a032dfed738c\n"
    )

    events = load_events_csv(path)

    assert events["product_id"].tolist() == [9223372036854775807]
    assert events["user_id"].tolist() == [1234567890123456789]
    assert events["category_code"].tolist() == [None]
    assert events["brand"].tolist() == ["shiseido"]


def test_load_events_csv_rejects_bad_id_with_line(tmp_path: Path) -> None:
    path = tmp_path / "slim.csv"
    path.write_text(
        "user_id,product_id,category_code,brand,price,event_type\n"
        "1,2,,,1.0,view\n"
        "1,2.5,,,1.0,view\n"
    )

    with pytest.raises(InputDataError, match=r"line 3, column product_id.*'2\.5'"):
        load_events_csv(path)


def test_load_events_csv_rejects_unknown_header(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("customer,item\n1,2\n")

    with pytest.raises(InputDataError, match="unexpected header"):
        load_events_csv(path)


def test_evaluate_command_writes_json_shape(tmp_path: Path, capsys) -> None:
    data = tmp_path / "shops"
    data.mkdir()
    write_csv(clustered_events(seed=1, customers=50), str(data / "shop_b.csv"))
    write_csv(
        clustered_events(seed=2, customers=50, first_customer=30),
        str(data / "shop_a.csv"),
    )
    output = tmp_path / "scores.json"

    code = main(
        ["evaluate", "--data", str(data), "--mode", "central", "--json", str(output)]
    )

    assert code == 0
    written = json.loads(output.read_text())
    assert [m["name"] for m in written["merchants"]] == ["shop_a", "shop_b"]
    assert set(written["merchants"][0]) == {"name", "hr10", "ndcg10"}
    assert set(written["average"]) == {"hr10", "ndcg10"}
    assert written["average"]["hr10"] == pytest.approx(
        np.mean([m["hr10"] for m in written["merchants"]])
    )
    assert "shop_a" in capsys.readouterr().out


@pytest.mark.slow
def test_evaluate_local_on_seed_shops_beats_popularity(shared_data: Path) -> None:
    from merchant_app.recommender.als import AlsConfig, train_als
    from merchant_app.recommender.dataset import build_interactions, interaction_weights

    merchants = load_merchant_folder(shared_data / SEED_SHOPS_FOLDER)
    split = split_hold_one_out(merchants)

    def popularity(events: pd.DataFrame) -> _FixedModel:
        totals = interaction_weights(events).groupby("product_id")["weight"].sum()
        return _FixedModel(totals.index.tolist(), totals.tolist())

    def als(events: pd.DataFrame):
        return train_als(build_interactions(events), AlsConfig(iterations=3))

    popular = evaluate_local(split, popularity)
    factor = evaluate_local(split, als)

    assert sum(len(test) for test in split.test.values()) > 4000
    assert factor.average_hr10 > popular.average_hr10 + 0.02
