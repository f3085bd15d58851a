"""Tests of ``merchant-app simulate``: a tiny run with real services, the
report shape, and the checks the runner applies."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from merchant_app.cli import main
from merchant_app.errors import InputDataError, ModelError, ToolNotFoundError
from merchant_app.federation.round_state import RoundStep
from merchant_app.services.tools import find_tool
from merchant_app.simulation.report import format_round_table
from merchant_app.simulation.runner import (
    SimulatedMerchant,
    SimulationOptions,
    check_same_aggregate,
)

SHOP_ROWS = 300
SHOPS = ("shop_0", "shop_1", "shop_2")
PHASES = {step.value for step in RoundStep if step != RoundStep.DONE}


@pytest.fixture(scope="module")
def small_shops(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """Write the first rows of each seed shop to a folder and return it."""
    folder = tmp_path_factory.mktemp("shops")
    for name in SHOPS:
        source = shared_data / "seed-shops" / f"{name}.csv"
        lines = source.read_text().splitlines()[: SHOP_ROWS + 1]
        (folder / f"{name}.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def anvil_binary() -> Path:
    """Return the anvil binary, or skip the test when it is not installed."""
    try:
        return find_tool("anvil")
    except ToolNotFoundError as exc:
        pytest.skip(f"anvil is not installed: {exc}")


def _processes_using(folder: Path) -> list[int]:
    """Return the ids of running processes whose command line or environment
    names ``folder`` (anvil gets its state file as an argument, Kubo its
    repository as ``IPFS_PATH``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in text:
            found.append(int(entry.name))
    return found


def test_simulate_writes_report_shape(
    small_shops: Path,
    tmp_path: Path,
    ipfs_binary: Path,
    anvil_binary: Path,
    capsys: pytest.CaptureFixture[str],
):
    report_path = tmp_path / "report.json"
    workdir = tmp_path / "work"

    code = main(
        [
            "simulate",
            "--data",
            str(small_shops),
            "--rounds",
            "2",
            "--report",
            str(report_path),
            "--workdir",
            str(workdir),
            "--dimension",
            "8",
        ]
    )

    report = json.loads(report_path.read_text())
    printed = capsys.readouterr().out
    assert code == 0
    assert [entry["round"] for entry in report["rounds"]] == [1, 2]
    for entry in report["rounds"]:
        merchants = entry["merchants"]
        assert [merchant["name"] for merchant in merchants] == list(SHOPS)
        assert len({merchant["address"] for merchant in merchants}) == 3
        assert len({merchant["aggregate_cid"] for merchant in merchants}) == 1
        for merchant in merchants:
            assert 0.0 <= merchant["hr10"] <= 1.0
            assert 0.0 <= merchant["ndcg10"] <= merchant["hr10"]
            assert merchant["bytes_uploaded"] > 0
            assert merchant["gas_used"] > 0
            assert set(merchant["seconds"]) == PHASES
            assert merchant["final_cid"] == merchant["aggregate_cid"]
    for kind in ("local", "central"):
        assert [score["name"] for score in report["baselines"][kind]] == list(SHOPS)
    assert "Round 2" in printed
    assert _processes_using(workdir) == []


def test_simulate_rejects_single_merchant(tmp_path: Path, small_shops: Path):
    data = tmp_path / "one"
    data.mkdir()
    (data / "shop_0.csv").write_text((small_shops / "shop_0.csv").read_text())

    code = main(["simulate", "--data", str(data), "--report", str(tmp_path / "r.json")])

    assert code == 1
    assert not (tmp_path / "r.json").exists()


def test_simulation_options_reject_zero_rounds(tmp_path: Path):
    with pytest.raises(InputDataError, match="--rounds"):
        SimulationOptions(data=tmp_path, rounds=0, report=tmp_path / "r.json")


def test_check_same_aggregate_rejects_disagreement():
    merchants = [
        cast(SimulatedMerchant, SimpleNamespace(name=name)) for name in ("a", "b")
    ]
    outcomes: list[Any] = [
        SimpleNamespace(round_id=4, aggregate_cid="bafkone"),
        SimpleNamespace(round_id=4, aggregate_cid="bafktwo"),
    ]

    with pytest.raises(ModelError, match="round 4") as info:
        check_same_aggregate(merchants, outcomes)

    assert "bafkone" in str(info.value)
    assert "bafktwo" in str(info.value)


def test_round_table_lists_merchants_and_mean():
    entry = {
        "round": 3,
        "merchants": [
            {
                "name": "shop_0",
                "hr10": 0.2,
                "ndcg10": 0.1,
                "bytes_uploaded": 2048,
                "gas_used": 90_000,
                "seconds": {"train": 1.0, "submit": 0.5},
                "aggregate_cid": "bafkagg",
            },
            {
                "name": "shop_1",
                "hr10": 0.1,
                "ndcg10": 0.05,
                "bytes_uploaded": 1024,
                "gas_used": 80_000,
                "seconds": {"train": 2.0},
                "aggregate_cid": "bafkagg",
            },
        ],
    }

    lines = format_round_table(entry).splitlines()

    assert lines[0] == "Round 3"
    assert lines[2].split() == ["shop_0", "0.2000", "0.1000", "2.0", "90000", "1.5"]
    assert lines[4].split() == ["mean", "0.1500", "0.0750"]
    assert lines[5] == "aggregate bafkagg"
