"""Tests for ``merchant-app --self-test`` run from the source tree.

Each test runs the command in a child process, as a user would, so the Qt
application, the keyring backend that ``keyring`` picks at first use and the
environment are those of a fresh app, not of the pytest process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from merchant_app.services.ports import find_free_port
from merchant_app.store import native_rows
from tests.fixtures.keyring import SecretServiceDaemon
from tests.self_test_support import status_line

pytestmark = pytest.mark.slow

SELF_TEST_TIMEOUT_SECONDS = 120


def run_self_test(
    *options: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``merchant-app --self-test OPTIONS`` offscreen and return the result."""
    child_env = dict(os.environ if env is None else env)
    child_env["QT_QPA_PLATFORM"] = "offscreen"
    return subprocess.run(
        [sys.executable, "-m", "merchant_app.cli", "--self-test", *options],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=SELF_TEST_TIMEOUT_SECONDS,
        check=False,
    )


def env_without_keyring(tmp_path: Path) -> dict[str, str]:
    """Return the environment with D-Bus pointed at a socket that does not exist."""
    env = dict(os.environ)
    env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={tmp_path / 'no-bus'}"
    env.pop("PYTHON_KEYRING_BACKEND", None)
    return env


def test_self_test_all_checks_pass(
    anvil_chain: AnvilChain,
    kubo_node: KuboNode,
    secret_service: SecretServiceDaemon,
) -> None:
    result = run_self_test(
        "--rpc-url",
        anvil_chain.rpc_url,
        "--ipfs-api",
        kubo_node.api_url,
        "--require-keyring",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert status_line(result.stdout, "qt").startswith("OK qt:")
    assert "platform offscreen" in status_line(result.stdout, "qt")
    assert status_line(result.stdout, "torch").startswith("OK torch:")
    keyring_line = status_line(result.stdout, "keyring")
    assert keyring_line.startswith("OK keyring: Secret Service")
    assert status_line(result.stdout, "contract").startswith("OK contract:")
    assert status_line(result.stdout, "store") == (
        "OK store: 3 events imported through merchant_rows"
    )
    chain_line = status_line(result.stdout, "chain")
    assert chain_line.startswith("OK chain:")
    assert f"chain id {anvil_chain.chain_id}" in chain_line
    ipfs_line = status_line(result.stdout, "ipfs")
    assert ipfs_line.startswith("OK ipfs:")
    assert kubo_node.peer_id in ipfs_line


def test_self_test_unreachable_rpc_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{find_free_port()}"

    result = run_self_test("--rpc-url", url, env=env_without_keyring(tmp_path))

    assert result.returncode == 1, result.stdout + result.stderr
    chain_line = status_line(result.stdout, "chain")
    assert chain_line.startswith("FAILED chain:")
    assert "ConnectionError" in chain_line
    assert status_line(result.stdout, "torch").startswith("OK torch:")
    assert "1 check(s) failed" in result.stdout


def test_self_test_missing_keyring_warns(tmp_path: Path) -> None:
    result = run_self_test(env=env_without_keyring(tmp_path))

    assert result.returncode == 0, result.stdout + result.stderr
    assert status_line(result.stdout, "keyring").startswith(
        "WARNING keyring: no usable OS keyring"
    )


def test_self_test_missing_keyring_required_fails(tmp_path: Path) -> None:
    result = run_self_test("--require-keyring", env=env_without_keyring(tmp_path))

    assert result.returncode == 1, result.stdout + result.stderr
    assert status_line(result.stdout, "keyring").startswith("FAILED keyring:")


def test_self_test_missing_artifact_fails(tmp_path: Path) -> None:
    env = env_without_keyring(tmp_path)
    env["MERCHANT_APP_CONTRACTS"] = str(tmp_path)

    result = run_self_test(env=env)

    assert result.returncode == 1, result.stdout + result.stderr
    contract_line = status_line(result.stdout, "contract")
    assert contract_line.startswith("FAILED contract:")
    assert "Consortium.json" in contract_line


def test_self_test_without_native_rows_warns(tmp_path: Path) -> None:
    env = env_without_keyring(tmp_path)
    env[native_rows.DISABLE_VARIABLE] = "1"

    result = run_self_test(env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert status_line(result.stdout, "store").startswith(
        "WARNING store: 3 events imported, but merchant_rows is unavailable"
    )
