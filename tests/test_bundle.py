"""Build the PyInstaller bundle from a clean copy and run its self-test.

The build takes a few minutes and about 3.3 GiB of disk, so these tests run
only when ``MERCHANT_APP_TEST_BUNDLE=1`` is set. The copy contains the files
``git ls-files --cached --others --exclude-standard`` lists: the tracked
files as they are in the working tree plus new files not yet committed, and
nothing git ignores (``.venv``, ``dist``, ``build``, caches). So the bundle
is built from the checkout's sources alone, with the project's ``.venv``
Python (which must have the ``bundle`` extra installed). The bundle folder
is deleted afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo import KuboNode
from tests.fixtures.keyring import SecretServiceDaemon
from tests.self_test_support import status_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_ENV = "MERCHANT_APP_TEST_BUNDLE"
BUILD_TIMEOUT_SECONDS = 1800
RUN_TIMEOUT_SECONDS = 180

pytestmark = [
    pytest.mark.bundle,
    pytest.mark.skipif(
        os.environ.get(BUNDLE_ENV) != "1",
        reason=(
            f"building the bundle takes minutes and about 3.3 GiB; set "
            f"{BUNDLE_ENV}=1 to run it"
        ),
    ),
]


def copy_checkout(destination: Path) -> None:
    """Copy the checkout's tracked and new, not ignored, files to ``destination``."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    )
    for name in listing.stdout.decode().split("\0"):
        source = PROJECT_ROOT / name
        # A tracked file deleted in the working tree is listed but absent.
        if not name or not source.is_file():
            continue
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


@pytest.fixture(scope="module")
def bundle_executable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Build the bundle from a clean copy; yield its executable, then delete it."""
    base = tmp_path_factory.mktemp("bundle")
    checkout = base / "checkout"
    copy_checkout(checkout)
    dist_dir = base / "dist"
    env = dict(os.environ, PYTHON=sys.executable)

    build = subprocess.run(
        [
            str(checkout / "scripts" / "build-bundle.sh"),
            str(dist_dir),
            str(base / "work"),
        ],
        cwd=checkout,
        env=env,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    try:
        yield dist_dir / "merchant-app" / "merchant-app"
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(BUILD_TIMEOUT_SECONDS + RUN_TIMEOUT_SECONDS)
def test_bundle_self_test_passes(
    bundle_executable: Path,
    anvil_chain: AnvilChain,
    kubo_node: KuboNode,
    secret_service: SecretServiceDaemon,
) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")

    result = subprocess.run(
        [
            str(bundle_executable),
            "--self-test",
            "--rpc-url",
            anvil_chain.rpc_url,
            "--ipfs-api",
            kubo_node.api_url,
            "--require-keyring",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "self-test (bundle): all 7 checks passed" in result.stdout
    # The C module and the SQLite library it goes through are both bundled.
    assert status_line(result.stdout, "store") == (
        "OK store: 3 events imported through merchant_rows"
    )
    assert "platform offscreen" in status_line(result.stdout, "qt")
    assert status_line(result.stdout, "torch").startswith("OK torch:")
    # keyring finds the Secret Service only through the bundled entry points.
    assert status_line(result.stdout, "keyring").startswith(
        "OK keyring: Secret Service"
    )
    contract_line = status_line(result.stdout, "contract")
    assert contract_line.startswith("OK contract:")
    assert str(bundle_executable.parent) in contract_line
    assert f"chain id {anvil_chain.chain_id}" in status_line(result.stdout, "chain")
    assert kubo_node.peer_id in status_line(result.stdout, "ipfs")
