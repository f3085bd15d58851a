"""Run a local Kubo daemon with its own repository.

:class:`KuboNode` creates the repository when it is missing, writes the
consortium's swarm key and the private-network settings of
:mod:`merchant_app.services.kubo_config`, starts ``ipfs daemon`` and waits
until its RPC API responds. A daemon that already serves the repository at
the configured address is reused, not started twice.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from merchant_app.errors import (
    ConfigError,
    IpfsError,
    ServiceError,
    ToolNotFoundError,
)
from merchant_app.ipfs.client import KuboClient, NodeIdentity
from merchant_app.services.kubo_config import (
    KuboAddresses,
    apply_node_settings,
    format_swarm_key,
    loopback_addresses,
    multiaddr_to_url,
    read_addresses,
    read_config,
    write_config,
    write_swarm_key,
)
from merchant_app.services.repo_lock import inspect_repo_lock
from merchant_app.services.tools import find_tool

logger = logging.getLogger(__name__)

DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 20.0
DAEMON_LOG_NAME = "daemon.log"

_PROBE_TIMEOUT = 2.0
_POLL_INTERVAL = 0.1
_INIT_TIMEOUT = 120.0
# Retries with new ports when another process took a picked port first.
_PORT_ATTEMPTS = 3


class _PortInUseError(ServiceError):
    """The daemon exited because one of its listen ports was taken."""


class KuboNode:
    """A Kubo daemon serving the repository at ``repo_path`` (its ``IPFS_PATH``).

    With ``addresses`` left out, the node is the built-in default: RPC API,
    gateway and swarm on free loopback ports, reused across restarts while
    they stay free. Given ``addresses`` are applied as they are.
    ``swarm_key`` is the consortium's 32-byte pre-shared key.
    """

    def __init__(
        self,
        repo_path: Path | str,
        *,
        swarm_key: bytes,
        addresses: KuboAddresses | None = None,
        ipfs_binary: Path | str | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    ) -> None:
        self.repo_path = Path(repo_path).resolve()
        format_swarm_key(swarm_key)  # raises ConfigError for a malformed key
        if addresses is not None:
            multiaddr_to_url(addresses.api)  # raises ConfigError when invalid
            if addresses.api.endswith("/tcp/0"):
                raise ConfigError(
                    f"invalid Kubo API address {addresses.api!r}: the app needs a "
                    f"fixed port to reach the node, not port 0"
                )
        self._swarm_key = swarm_key
        self._configured_addresses = addresses
        self._ipfs_binary = Path(ipfs_binary) if ipfs_binary is not None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self._log_offset = 0
        self._api_url: str | None = None
        self._identity: NodeIdentity | None = None

    # State

    @property
    def is_running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        return self._identity is not None

    @property
    def owns_process(self) -> bool:
        """True when this object started the daemon and :meth:`stop` ends it."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """PID of the daemon this object started, else None."""
        return self._process.pid if self._process is not None else None

    @property
    def api_url(self) -> str:
        """HTTP URL of the running node's RPC API."""
        if self._api_url is None:
            raise ServiceError(f"the Kubo node of {self.repo_path} is not running")
        return self._api_url

    @property
    def gateway_url(self) -> str:
        """HTTP URL of the node's gateway, from the repository's config."""
        addresses = read_addresses(read_config(self.repo_path))
        if addresses is None:
            raise ServiceError(f"the Kubo config in {self.repo_path} has no gateway")
        return multiaddr_to_url(addresses.gateway)

    @property
    def peer_id(self) -> str:
        """Peer id of the running node."""
        return self._require_identity().peer_id

    @property
    def peer_multiaddr(self) -> str:
        """TCP address other nodes dial, as ``/ip4/HOST/tcp/PORT/p2p/PEERID``."""
        identity = self._require_identity()
        for address in identity.addresses:
            if "/tcp/" in address and "/p2p-circuit" not in address:
                if "/p2p/" in address:
                    return address
                return f"{address}/p2p/{identity.peer_id}"
        raise ServiceError(
            f"the Kubo node {identity.peer_id} announces no TCP address; check "
            f"Addresses.Swarm in {self.repo_path / 'config'}"
        )

    @property
    def daemon_log_path(self) -> Path:
        """File that receives the daemon's output when this object starts it."""
        return self.repo_path / DAEMON_LOG_NAME

    def client(self, *, timeout: float | None = None) -> KuboClient:
        """Return a new client of the running node's RPC API."""
        if timeout is None:
            return KuboClient(self.api_url)
        return KuboClient(self.api_url, timeout=timeout)

    def _require_identity(self) -> NodeIdentity:
        if self._identity is None:
            raise ServiceError(f"the Kubo node of {self.repo_path} is not running")
        return self._identity

    def __enter__(self) -> KuboNode:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Start

    def start(self) -> None:
        """Start the daemon, or reuse one that already serves this repository.

        Raises:
            ToolNotFoundError: the ``ipfs`` binary is missing.
            ServiceError: the repository is locked by a process whose API does
                not respond, another node responds at the configured address, or
                the daemon failed to start in time.
        """
        if self.is_running:
            return
        binary = self._resolve_binary()
        self._ensure_repo(binary)
        config = read_config(self.repo_path)
        expected_peer_id = str(config.get("Identity", {}).get("PeerID", ""))

        if self._adopt_running_daemon(config, expected_peer_id):
            return
        self._check_repo_lock(config)

        for attempt in range(1, _PORT_ATTEMPTS + 1):
            addresses = self._configured_addresses or loopback_addresses(
                read_addresses(config)
            )
            apply_node_settings(config, addresses)
            write_config(self.repo_path, config)
            if write_swarm_key(self.repo_path, self._swarm_key):
                logger.info("wrote the swarm key of %s", self.repo_path)
            try:
                self._launch(binary, addresses, expected_peer_id)
                return
            except _PortInUseError:
                if self._configured_addresses is not None or attempt == _PORT_ATTEMPTS:
                    raise
                logger.warning(
                    "a port of %s was taken before the daemon bound it; retrying "
                    "with new ports (attempt %d of %d)",
                    addresses,
                    attempt + 1,
                    _PORT_ATTEMPTS,
                )

    def _resolve_binary(self) -> Path:
        if self._ipfs_binary is None:
            return find_tool("ipfs")
        if self._ipfs_binary.is_file() and os.access(self._ipfs_binary, os.X_OK):
            return self._ipfs_binary
        raise ToolNotFoundError(
            f"the ipfs program {self._ipfs_binary} does not exist or is not "
            f"executable; run scripts/setup.sh to install Kubo"
        )

    def _ensure_repo(self, binary: Path) -> None:
        if (self.repo_path / "config").is_file():
            return
        self.repo_path.mkdir(parents=True, exist_ok=True)
        logger.info("initializing a Kubo repository in %s", self.repo_path)
        # The "test" profile starts from loopback addresses and no public
        # peers; apply_node_settings sets every field the app relies on.
        try:
            result = subprocess.run(
                [str(binary), "init", "--profile=test"],
                env=self._daemon_environment(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_INIT_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(
                f"'ipfs init' in {self.repo_path} did not finish within "
                f"{_INIT_TIMEOUT:g} s"
            ) from exc
        if result.returncode != 0:
            output = (result.stderr or result.stdout).decode(errors="replace")
            raise ServiceError(
                f"'ipfs init' in {self.repo_path} failed with exit code "
                f"{result.returncode}: {output.strip()}"
            )

    def _adopt_running_daemon(self, config: dict[str, object], peer_id: str) -> bool:
        """Reuse a running daemon of this repository; return True when one responds."""
        configured = self._configured_addresses or read_addresses(config)
        candidates: list[str] = []
        if configured is not None and not configured.api.endswith("/tcp/0"):
            candidates.append(configured.api_url)
        if self._configured_addresses is None:
            # The daemon writes its actual API address to the file "api".
            running_api = _read_api_file(self.repo_path)
            if running_api is not None and running_api not in candidates:
                candidates.append(running_api)

        for api_url in candidates:
            identity = _probe(api_url)
            if identity is None:
                continue
            if identity.peer_id != peer_id:
                raise ServiceError(
                    f"another Kubo node (peer {identity.peer_id}) responds at "
                    f"{api_url}, not the node of {self.repo_path} (peer {peer_id}); "
                    f"stop that node or configure another API address"
                )
            self._api_url = api_url
            self._identity = identity
            logger.info(
                "reusing the running Kubo node %s at %s (repository %s)",
                identity.peer_id,
                api_url,
                self.repo_path,
            )
            return True
        return False

    def _check_repo_lock(self, config: dict[str, object]) -> None:
        lock = inspect_repo_lock(self.repo_path)
        if not lock.locked:
            return
        holder = f"process {lock.holder_pid}" if lock.holder_pid else "another process"
        addresses = self._configured_addresses or read_addresses(config)
        api = addresses.api_url if addresses is not None else "its API address"
        raise ServiceError(
            f"the Kubo repository {self.repo_path} is locked by {holder}, and no "
            f"node of this repository responds at {api}. Wait for that process to "
            f"finish, or stop it; the lock file is left alone",
            user_message=(
                "The IPFS data folder is in use by another program that does not "
                "respond. Close that program and try again."
            ),
        )

    def _launch(self, binary: Path, addresses: KuboAddresses, peer_id: str) -> None:
        log_file = self.daemon_log_path.open("ab")
        log_file.write(f"--- starting ipfs daemon at {time.ctime()}\n".encode())
        log_file.flush()
        self._log_offset = log_file.tell()
        try:
            process = subprocess.Popen(
                [str(binary), "daemon", "--enable-gc=false"],
                env=self._daemon_environment(),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                # Its own session keeps a Ctrl-C in the app's terminal from
                # killing the daemon before stop() shuts it down cleanly.
                start_new_session=True,
            )
        except OSError as exc:
            log_file.close()
            raise ServiceError(f"cannot run {binary} daemon: {exc}") from exc
        self._process = process
        self._log_file = log_file
        try:
            identity = self._wait_until_ready(process, addresses.api_url, peer_id)
        except BaseException:
            self._terminate(process, wait_first=False)
            self._close_log()
            self._process = None
            raise
        self._api_url = addresses.api_url
        self._identity = identity
        logger.info(
            "started Kubo node %s, API %s, pid %d (repository %s)",
            identity.peer_id,
            addresses.api_url,
            process.pid,
            self.repo_path,
        )

    def _wait_until_ready(
        self, process: subprocess.Popen[bytes], api_url: str, peer_id: str
    ) -> NodeIdentity:
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            return_code = process.poll()
            if return_code is not None:
                raise self._exit_error(return_code)
            identity = _probe(api_url)
            if identity is not None and identity.peer_id == peer_id:
                return identity
            time.sleep(_POLL_INTERVAL)
        raise ServiceError(
            f"the Kubo daemon of {self.repo_path} (pid {process.pid}) did not respond "
            f"at {api_url} within {self.start_timeout:g} s; see {self.daemon_log_path}"
        )

    def _exit_error(self, return_code: int) -> ServiceError:
        tail = _tail(self.daemon_log_path, start=self._log_offset)
        message = (
            f"the Kubo daemon of {self.repo_path} exited with code {return_code} "
            f"while starting. Last output:\n{tail}"
        )
        if "address already in use" in tail:
            return _PortInUseError(message)
        return ServiceError(message)

    def _daemon_environment(self) -> dict[str, str]:
        environment = dict(os.environ)
        environment["IPFS_PATH"] = str(self.repo_path)
        environment["IPFS_TELEMETRY"] = "off"
        # Kubo refuses to start without swarm.key, so a missing key can never
        # put the node on the public network.
        environment["LIBP2P_FORCE_PNET"] = "1"
        return environment

    # Stop

    def stop(self) -> None:
        """Stop the daemon this object started; leave a reused daemon running.

        Asks the daemon to shut down over the RPC API, then sends SIGTERM, and
        SIGKILL as the last resort, waiting ``stop_timeout`` seconds each.
        """
        if not self.is_running:
            return
        identity = self._require_identity()
        api_url = self.api_url
        process = self._process
        self._identity = None
        self._api_url = None
        if process is None:
            logger.info(
                "left the reused Kubo node %s at %s running", identity.peer_id, api_url
            )
            return

        self._request_shutdown(api_url)
        self._terminate(process, wait_first=True)
        self._close_log()
        self._process = None
        logger.info(
            "stopped Kubo node %s, API %s, pid %d (exit code %s)",
            identity.peer_id,
            api_url,
            process.pid,
            process.returncode,
        )

    def _request_shutdown(self, api_url: str) -> None:
        try:
            with KuboClient(api_url, timeout=_PROBE_TIMEOUT) as client:
                client.shutdown()
        except IpfsError as exc:
            # The daemon may close the connection before it responds.
            logger.info("shutdown request to %s ended with: %s", api_url, exc)

    def _terminate(self, process: subprocess.Popen[bytes], *, wait_first: bool) -> None:
        """End ``process``: wait for it to exit, then SIGTERM, then SIGKILL.

        Each step waits up to ``stop_timeout`` seconds. ``wait_first`` gives a
        daemon that was asked to shut down time to do so before any signal.
        """
        steps: list[tuple[str, Callable[[], None] | None]] = [
            ("SIGTERM", process.terminate),
            ("SIGKILL", process.kill),
        ]
        if wait_first:
            steps.insert(0, ("", None))
        for signal_name, send_signal in steps:
            if process.poll() is not None:
                return
            if send_signal is not None:
                logger.warning(
                    "Kubo daemon pid %d is still running; sending %s",
                    process.pid,
                    signal_name,
                )
                send_signal()
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                continue
            return
        logger.error("Kubo daemon pid %d did not exit after SIGKILL", process.pid)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def _probe(api_url: str) -> NodeIdentity | None:
    """Return the identity of the node responding at ``api_url``, else None."""
    try:
        with KuboClient(api_url, timeout=_PROBE_TIMEOUT) as client:
            return client.id()
    except IpfsError as exc:
        logger.debug("no Kubo RPC API responds at %s: %s", api_url, exc)
        return None


def _read_api_file(repo_path: Path) -> str | None:
    try:
        multiaddr = (repo_path / "api").read_text(encoding="ascii").strip()
    except OSError:
        return None
    try:
        return multiaddr_to_url(multiaddr)
    except ConfigError:
        return None


def _tail(path: Path, *, start: int, max_bytes: int = 4000) -> str:
    """Return up to the last ``max_bytes`` of ``path`` written after ``start``."""
    try:
        with path.open("rb") as log_file:
            log_file.seek(0, os.SEEK_END)
            log_file.seek(max(start, log_file.tell() - max_bytes))
            return log_file.read().decode(errors="replace").strip()
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
