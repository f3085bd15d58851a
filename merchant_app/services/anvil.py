"""Start and stop a local anvil chain, the app's built-in default network.

anvil runs on 127.0.0.1 with ``--state FILE --state-interval 1``: it loads the
chain from the file at start and writes it back every second, so the chain
survives a restart or a crash of the app. A node whose RPC already responds on
the configured port is reused and left running at stop.

The pre-funded development accounts come from anvil's well-known test
mnemonic. Their keys are derived in memory, checked against the node's
``eth_accounts``, and never written anywhere.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import requests
from eth_account import Account
from eth_account.signers.local import LocalAccount

from merchant_app.errors import ServiceError
from merchant_app.services.ports import LOOPBACK_HOST, find_free_port
from merchant_app.services.tools import find_tool

logger = logging.getLogger(__name__)

DEFAULT_CHAIN_ID = 31337
# The mnemonic anvil uses when started without --mnemonic (foundry's default).
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
ANVIL_DERIVATION_PATH = "m/44'/60'/0'/0/{index}"
_PORT_ATTEMPTS = 3


class _EarlyExitError(Exception):
    """anvil exited before its RPC responded, usually because its port was taken."""


class AnvilChain:
    """A local anvil node with a persistent state file.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        state_file: Path,
        *,
        port: int | None = None,
        chain_id: int = DEFAULT_CHAIN_ID,
        accounts: int = 10,
        no_mining: bool = False,
        startup_timeout: float = 20.0,
        stop_timeout: float = 10.0,
        log_file: Path | None = None,
    ) -> None:
        self.state_file = Path(state_file)
        self.port = port
        self.chain_id = chain_id
        self.accounts = accounts
        self.no_mining = no_mining
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.log_file = log_file or self.state_file.with_suffix(".log")
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._dev_accounts: list[LocalAccount] | None = None

    # -- lifecycle -----------------------------------------------------

    @property
    def rpc_url(self) -> str:
        if self.port is None:
            raise ServiceError("anvil has no port yet; call start() first")
        return f"http://{LOOPBACK_HOST}:{self.port}"

    @property
    def owns_process(self) -> bool:
        """True when this object started the node and stops it at :meth:`stop`."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> AnvilChain:
        """Start anvil, or reuse a node that already responds on ``port``.

        Raises:
            ToolNotFoundError: when the anvil binary is not installed.
            ServiceError: when anvil exits early or does not respond in time,
                or when the reused node serves another chain id.
        """
        if self._process is not None:
            return self
        if self.port is not None and self._responds():
            self._check_reused_chain_id()
            logger.info(
                "reusing anvil at %s (chain id %d)", self.rpc_url, self.chain_id
            )
            return self

        binary = find_tool("anvil")
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        pick_port = self.port is None
        # A port picked here can be taken by another process before anvil
        # binds it; anvil then exits at once, and a new port is tried.
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if pick_port:
                self.port = find_free_port()
            self._spawn(binary)
            try:
                self._wait_until_healthy()
            except _EarlyExitError as exc:
                self.stop()
                if not pick_port or attempt == _PORT_ATTEMPTS:
                    raise ServiceError(
                        str(exc),
                        user_message="The local blockchain could not be started.",
                    ) from exc
                logger.warning("anvil exited at start on port %s; retrying", self.port)
            except ServiceError:
                self.stop()
                raise
            else:
                return self
        raise AssertionError("unreachable")

    def _spawn(self, binary: Path) -> None:
        self._log_handle = self.log_file.open("ab")
        self._process = subprocess.Popen(
            self._command(binary),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            # Its own session keeps a Ctrl-C in the app's terminal from
            # killing the chain while the app's rounds still use it.
            start_new_session=True,
        )
        logger.info(
            "started anvil pid %d on %s with state %s",
            self._process.pid,
            self.rpc_url,
            self.state_file,
        )

    def stop(self) -> None:
        """Stop the node this object started (SIGTERM, then SIGKILL).

        A reused node is left running. anvil writes its state file on a clean
        stop, so SIGKILL is the last resort after ``stop_timeout`` seconds.
        """
        process = self._process
        if process is None:
            return
        self._process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "anvil pid %d ignored SIGTERM for %.0f s; sending SIGKILL",
                    process.pid,
                    self.stop_timeout,
                )
                process.kill()
                process.wait()
        logger.info(
            "stopped anvil pid %d (exit code %s)", process.pid, process.returncode
        )
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> AnvilChain:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- accounts ------------------------------------------------------

    def dev_accounts(self) -> list[LocalAccount]:
        """Return the node's pre-funded accounts with their keys, in node order.

        The keys are derived from anvil's default mnemonic and kept only for
        the accounts the node lists in ``eth_accounts``. A node started with
        another mnemonic yields an empty list.
        """
        if self._dev_accounts is not None:
            return self._dev_accounts
        node_addresses = [address.lower() for address in self._rpc("eth_accounts", [])]
        derived = _derive_dev_accounts(len(node_addresses))
        accounts = [
            account for account in derived if account.address.lower() in node_addresses
        ]
        if len(accounts) < len(node_addresses):
            logger.warning(
                "anvil at %s lists %d accounts, %d match the default mnemonic",
                self.rpc_url,
                len(node_addresses),
                len(accounts),
            )
        self._dev_accounts = accounts
        return accounts

    # -- internals -----------------------------------------------------

    def _command(self, binary: Path) -> list[str]:
        command = [
            str(binary),
            "--host",
            LOOPBACK_HOST,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--accounts",
            str(self.accounts),
            "--state",
            str(self.state_file),
            "--state-interval",
            "1",
        ]
        if self.no_mining:
            command.append("--no-mining")
        return command

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            exit_code = self._process.poll()
            if exit_code is not None:
                raise _EarlyExitError(
                    f"anvil exited with code {exit_code} during start on port "
                    f"{self.port}; see {self.log_file}"
                )
            if self._responds():
                return
            time.sleep(0.1)
        raise ServiceError(
            f"anvil did not respond to eth_chainId on {self.rpc_url} within "
            f"{self.startup_timeout:.0f} s; see {self.log_file}",
            user_message="The local blockchain did not start in time.",
        )

    def _responds(self) -> bool:
        try:
            self._rpc("eth_chainId", [], timeout=1.0)
        except ServiceError:
            return False
        return True

    def _check_reused_chain_id(self) -> None:
        served = int(self._rpc("eth_chainId", []), 16)
        if served != self.chain_id:
            raise ServiceError(
                f"the node at {self.rpc_url} serves chain id {served}, not "
                f"{self.chain_id}; stop it or configure another port",
                user_message="Another blockchain node is using the configured port.",
            )

    def _rpc(self, method: str, params: list[Any], *, timeout: float = 5.0) -> Any:
        payload = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        try:
            response = requests.post(self.rpc_url, json=payload, timeout=timeout)
            response.raise_for_status()
            body = response.json()
        except (requests.RequestException, ValueError) as exc:
            raise ServiceError(
                f"anvil {method} on {self.rpc_url} failed: {exc}"
            ) from exc
        if "error" in body:
            raise ServiceError(f"anvil {method} returned an error: {body['error']}")
        return body["result"]


def _derive_dev_accounts(count: int) -> list[LocalAccount]:
    """Derive the first ``count`` accounts of anvil's default mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(
            ANVIL_MNEMONIC, account_path=ANVIL_DERIVATION_PATH.format(index=index)
        )
        for index in range(count)
    ]


def process_is_running(pid: int) -> bool:
    """Return True when a process with ``pid`` exists (used by tests and the CLI)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
