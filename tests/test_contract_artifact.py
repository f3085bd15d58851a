"""The committed contract artifacts must match a fresh compile of the sources."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from merchant_app.chain.artifact import DEFAULT_BUILD_DIR, load_artifact
from merchant_app.errors import ChainError, ToolNotFoundError
from merchant_app.services.tools import PROJECT_ROOT, find_tool

COMPILE_SCRIPT = PROJECT_ROOT / "contracts" / "compile.mjs"
ARTIFACTS = ["Consortium.json", "NaiveRegistry.json"]


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Compile the contracts into a temporary folder and return it."""
    try:
        node = find_tool("node")
    except ToolNotFoundError as exc:
        pytest.skip(
            f"node is not installed, so the contracts cannot be compiled: {exc}"
        )
    solc = PROJECT_ROOT / "tools" / "node_modules" / "solc"
    if not solc.is_dir():
        pytest.skip(f"solc-js is not installed at {solc}; run scripts/setup.sh")
    out_dir = tmp_path_factory.mktemp("contracts-build")
    subprocess.run(
        [str(node), str(COMPILE_SCRIPT), "--out-dir", str(out_dir)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out_dir


@pytest.mark.parametrize("name", ARTIFACTS)
def test_artifact_matches_source(fresh_build: Path, name: str):
    committed = (DEFAULT_BUILD_DIR / name).read_bytes()
    compiled = (fresh_build / name).read_bytes()

    assert compiled == committed, (
        f"contracts/build/{name} is stale; run `node contracts/compile.mjs`"
    )


def test_artifact_loads_with_fields():
    artifact = load_artifact("Consortium")

    assert artifact.compiler_version.startswith("0.8.28")
    assert artifact.bytecode.startswith("0x60")
    names = {entry.get("name") for entry in artifact.abi}
    assert {"submitUpdate", "UpdateSubmitted", "NotMember"} <= names


def test_artifact_override_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MERCHANT_APP_CONTRACTS", str(tmp_path))

    with pytest.raises(ChainError, match="not found"):
        load_artifact("Consortium")
