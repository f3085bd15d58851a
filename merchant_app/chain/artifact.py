"""Load the compiled contract artifacts from ``contracts/build/``.

``node contracts/compile.mjs`` writes one JSON file per contract with its ABI
and bytecode. The folder is looked up in this order: the ``MERCHANT_APP_CONTRACTS``
environment variable, then ``contracts/build`` under the project root (the
checkout this package lives in). An app packaged without the checkout sets
the variable or passes ``build_dir``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merchant_app.errors import ChainError

logger = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILD_DIR = PROJECT_ROOT / "contracts" / "build"
BUILD_DIR_ENV = "MERCHANT_APP_CONTRACTS"


@dataclass(frozen=True)
class ContractArtifact:
    """ABI and bytecode of one compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    path: Path


def build_dir(override: Path | None = None) -> Path:
    """Return the folder that contains the compiled artifacts."""
    if override is not None:
        return override
    from_env = os.environ.get(BUILD_DIR_ENV)
    if from_env:
        return Path(from_env)
    return DEFAULT_BUILD_DIR


def load_artifact(
    name: str = "Consortium", *, directory: Path | None = None
) -> ContractArtifact:
    """Load ``<name>.json`` from the artifact folder.

    Raises:
        ChainError: when the file is missing or is not a compiled artifact;
            the message names the file and the compile command.
    """
    path = build_dir(directory) / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ChainError(
            f"contract artifact {path} not found; run `node contracts/compile.mjs` "
            f"or set {BUILD_DIR_ENV} to the folder that holds {name}.json",
            user_message="The compiled consortium contract is missing.",
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ChainError(f"contract artifact {path} cannot be read: {exc}") from exc

    try:
        artifact = ContractArtifact(
            name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler_version=data["compiler"]["version"],
            path=path,
        )
    except (KeyError, TypeError) as exc:
        raise ChainError(
            f"contract artifact {path} lacks the field {exc}; recompile it with "
            f"`node contracts/compile.mjs`"
        ) from exc
    logger.debug("loaded contract artifact %s from %s", name, path)
    return artifact
