"""The Kubo node that a profile starts when its settings name no Kubo API URL.

The node's repository is the profile's ``ipfs/`` folder. When the profile
folder contains ``ipfs-swarm.key`` (the consortium's key, in the libp2p
``swarm.key`` format), the node joins that private network. Without it, the
node gets a new random key at every start, so it forms a private network of
its own and no other node can connect to it. In both cases it listens on
free loopback ports only and has no bootstrap peers (see
:mod:`merchant_app.services.kubo_config`); peers meet by the addresses the
members publish on the contract.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from merchant_app.errors import ConfigError
from merchant_app.services.kubo import KuboNode
from merchant_app.services.kubo_config import (
    SWARM_KEY_HEADER,
    SWARM_KEY_SIZE,
    generate_swarm_key,
)

logger = logging.getLogger(__name__)

IPFS_FOLDER = "ipfs"
SWARM_KEY_FILE = "ipfs-swarm.key"


@dataclass(frozen=True)
class LocalNodeStatus:
    """The running local node as the window shows and uses it.

    ``pid`` is None when a daemon that was already running was reused, which
    closing the window leaves running. ``private_network`` is True when the
    node uses the consortium's swarm key from ``ipfs-swarm.key``.
    """

    api_url: str
    peer_id: str
    peer_address: str
    pid: int | None
    private_network: bool


def read_swarm_key(path: Path) -> bytes:
    """Read a swarm key file in the libp2p PSK v1 base16 format.

    Raises:
        ConfigError: when the file cannot be read or is not in that format.
    """
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read the swarm key file {path}: {exc}",
            user_message="The consortium's swarm key file cannot be read.",
        ) from exc
    header_lines = SWARM_KEY_HEADER.splitlines()
    lines = [line.strip() for line in text.strip().splitlines()]
    key_hex = lines[-1] if len(lines) == len(header_lines) + 1 else ""
    try:
        key = bytes.fromhex(key_hex)
    except ValueError:
        key = b""
    if lines[: len(header_lines)] != header_lines or len(key) != SWARM_KEY_SIZE:
        raise ConfigError(
            f"invalid swarm key file {path}: expected the lines "
            f"{' and '.join(header_lines)} followed by {SWARM_KEY_SIZE * 2} "
            f"hexadecimal digits; copy the consortium's swarm.key file unchanged",
            user_message=(
                f"The swarm key file {path.name} is invalid. Copy the "
                "consortium's swarm.key file into the profile folder unchanged."
            ),
        )
    return key


class ProfileNode:
    """Starts and stops the local Kubo node of one profile folder.

    :meth:`start` blocks until the daemon's API responds, so callers run it
    in a worker thread. A lock serialises it with :meth:`stop`.
    """

    def __init__(self, profile_folder: Path) -> None:
        self.profile_folder = profile_folder
        self._node: KuboNode | None = None
        self._private_network = False
        self._lock = threading.Lock()

    @property
    def repo_path(self) -> Path:
        """Folder of the node's Kubo repository."""
        return self.profile_folder / IPFS_FOLDER

    @property
    def swarm_key_path(self) -> Path:
        """File of the consortium's swarm key, used when it exists."""
        return self.profile_folder / SWARM_KEY_FILE

    def start(self) -> LocalNodeStatus:
        """Start the node, or reuse a daemon that already serves its repository.

        Raises:
            ToolNotFoundError: the ``ipfs`` program is missing.
            ConfigError: the swarm key file is invalid.
            ServiceError: the repository is locked or the daemon did not start.
        """
        with self._lock:
            if self._node is None:
                self._node = KuboNode(self.repo_path, swarm_key=self._swarm_key())
            self._node.start()
            return LocalNodeStatus(
                api_url=self._node.api_url,
                peer_id=self._node.peer_id,
                peer_address=self._node.peer_multiaddr,
                pid=self._node.pid,
                private_network=self._private_network,
            )

    def stop(self) -> None:
        """Stop the daemon if :meth:`start` started it; leave a reused one running."""
        with self._lock:
            if self._node is not None:
                self._node.stop()
                self._node = None

    def _swarm_key(self) -> bytes:
        if self.swarm_key_path.is_file():
            key = read_swarm_key(self.swarm_key_path)
            self._private_network = True
            logger.info(
                "local node of %s uses the consortium's swarm key", self.repo_path
            )
            return key
        self._private_network = False
        logger.info(
            "local node of %s has no %s; it gets a random swarm key and joins no "
            "network",
            self.repo_path,
            SWARM_KEY_FILE,
        )
        return generate_swarm_key()
