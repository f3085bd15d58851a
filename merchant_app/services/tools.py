"""Locate the external programs the app runs: ``ipfs``, ``anvil`` and ``node``.

``scripts/setup.sh`` installs them into the project's ``tools/`` folder. An
environment variable overrides each location, for an installed app or a
merchant who runs their own build.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from merchant_app.errors import ToolNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOOLS_DIR = PROJECT_ROOT / "tools"

_TOOL_ENV = {
    "ipfs": "MERCHANT_APP_IPFS",
    "anvil": "MERCHANT_APP_ANVIL",
    "node": "MERCHANT_APP_NODE",
}

_TOOL_CANDIDATES = {
    "ipfs": [TOOLS_DIR / "bin" / "ipfs"],
    "anvil": [
        TOOLS_DIR
        / "node_modules"
        / "@foundry-rs"
        / "anvil-linux-amd64"
        / "bin"
        / "anvil"
    ],
    "node": [],
}


def find_tool(name: str) -> Path:
    """Return the path of the program ``name``.

    Raises:
        ToolNotFoundError: when neither its environment variable, the tools
            folder nor ``PATH`` has it. The message names the set-up command.
    """
    if name not in _TOOL_ENV:
        raise ValueError(f"unknown tool {name!r}; expected one of {sorted(_TOOL_ENV)}")

    env_var = _TOOL_ENV[name]
    override = os.environ.get(env_var)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise ToolNotFoundError(
            f"{env_var}={override!r} is not an executable file; fix the variable "
            f"or unset it and run scripts/setup.sh"
        )

    for candidate in _TOOL_CANDIDATES[name]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate

    found = shutil.which(name)
    if found:
        return Path(found)

    raise ToolNotFoundError(
        f"the program {name!r} was not found in {TOOLS_DIR} or on PATH; run "
        f"scripts/setup.sh to install it, or set {env_var} to its path"
    )
