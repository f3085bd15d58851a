"""Configuration a Kubo repository gets before the app starts its daemon.

Every node the app starts joins the consortium's private network. It has
the consortium's pre-shared swarm key, listens on TCP only (libp2p private
networks do not support QUIC, WebTransport or WebRTC), and contacts no peer,
router or service that the merchant did not configure. Peers meet by direct
``swarm connect`` to the addresses the members publish. The keys and values
below were read from ``ipfs config show`` and ``docs/config.md`` of Kubo
v0.43.1.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from merchant_app.errors import ConfigError, ServiceError
from merchant_app.services.ports import LOOPBACK_HOST, find_free_port, is_port_free

SWARM_KEY_SIZE = 32
SWARM_KEY_HEADER = "/key/swarm/psk/1.0.0/\n/base16/\n"

_TCP_MULTIADDR = re.compile(r"^/(ip4|ip6|dns|dns4|dns6)/([^/]+)/tcp/(\d+)$")

# Settings that keep a node inside the private network. Each entry is a
# path of keys in the config JSON and its value.
ISOLATION_SETTINGS: tuple[tuple[tuple[str, ...], Any], ...] = (
    (("Bootstrap",), []),
    (("Discovery", "MDNS", "Enabled"), False),
    # AutoConf fetches bootstrap peers and routers from a public URL.
    (("AutoConf", "Enabled"), False),
    (("AutoTLS", "Enabled"), False),
    (("DNS", "Resolvers"), {}),
    # "none" disables the Amino DHT and HTTP routers: content moves by
    # Bitswap between peers that are connected directly.
    (("Routing", "Type"), "none"),
    (("Routing", "DelegatedRouters"), []),
    (("Ipns", "DelegatedPublishers"), []),
    # With routing off, no router exists to receive provider records.
    (("Provide", "Enabled"), False),
    (("HTTPRetrieval", "Enabled"), False),
    (("AutoNAT", "ServiceMode"), "disabled"),
    (("Swarm", "DisableNatPortMap"), True),
    (("Swarm", "EnableHolePunching"), False),
    (("Swarm", "RelayClient", "Enabled"), False),
    (("Swarm", "RelayService", "Enabled"), False),
    (("Swarm", "Transports", "Network", "TCP"), True),
    # Kubo shares the TCP listener with WebSocket, which private networks
    # reject with an error at start.
    (("Swarm", "Transports", "Network", "Websocket"), False),
    (("Swarm", "Transports", "Network", "QUIC"), False),
    (("Swarm", "Transports", "Network", "WebTransport"), False),
    (("Swarm", "Transports", "Network", "WebRTCDirect"), False),
    (("Swarm", "Transports", "Network", "Relay"), False),
    (("Plugins", "Plugins", "telemetry", "Config", "Mode"), "off"),
)


@dataclass(frozen=True)
class KuboAddresses:
    """Listen addresses of a Kubo node, as multiaddrs."""

    api: str
    gateway: str
    swarm: tuple[str, ...]

    @property
    def api_url(self) -> str:
        """HTTP URL of the RPC API, for example ``http://127.0.0.1:5001``."""
        return multiaddr_to_url(self.api)

    @property
    def gateway_url(self) -> str:
        """HTTP URL of the gateway."""
        return multiaddr_to_url(self.gateway)


def loopback_addresses(previous: KuboAddresses | None = None) -> KuboAddresses:
    """Return loopback TCP addresses for the built-in default node.

    A port from ``previous`` is kept when it is free, so the node's peer
    address stays the same across restarts when it can. Other ports are new
    free ports.
    """
    old_ports = _previous_ports(previous)
    ports: list[int] = []
    for old_port in old_ports:
        if old_port is not None and old_port not in ports and is_port_free(old_port):
            ports.append(old_port)
        else:
            ports.append(_new_port(exclude=ports))
    api_port, gateway_port, swarm_port = ports
    return KuboAddresses(
        api=f"/ip4/{LOOPBACK_HOST}/tcp/{api_port}",
        gateway=f"/ip4/{LOOPBACK_HOST}/tcp/{gateway_port}",
        swarm=(f"/ip4/{LOOPBACK_HOST}/tcp/{swarm_port}",),
    )


def _previous_ports(previous: KuboAddresses | None) -> list[int | None]:
    if previous is None:
        return [None, None, None]
    swarm = previous.swarm[0] if previous.swarm else ""
    return [
        _loopback_port(previous.api),
        _loopback_port(previous.gateway),
        _loopback_port(swarm),
    ]


def _loopback_port(multiaddr: str) -> int | None:
    match = _TCP_MULTIADDR.match(multiaddr)
    if match is None or match.group(2) != LOOPBACK_HOST:
        return None
    port = int(match.group(3))
    return port or None


def _new_port(*, exclude: list[int]) -> int:
    while True:
        port = find_free_port()
        if port not in exclude:
            return port


def multiaddr_to_url(multiaddr: str) -> str:
    """Convert ``/ip4/HOST/tcp/PORT`` to ``http://HOST:PORT``."""
    match = _TCP_MULTIADDR.match(multiaddr.strip())
    if match is None:
        raise ConfigError(
            f"invalid HTTP listen address {multiaddr!r}: expected a multiaddr such "
            f"as /ip4/127.0.0.1/tcp/5001"
        )
    protocol, host, port = match.groups()
    if protocol == "ip6":
        host = f"[{host}]"
    return f"http://{host}:{port}"


def read_addresses(config: dict[str, Any]) -> KuboAddresses | None:
    """Return the listen addresses stored in a repository's config, if any."""
    section = config.get("Addresses") or {}
    api = _first(section.get("API"))
    gateway = _first(section.get("Gateway"))
    swarm = section.get("Swarm") or []
    if api is None or gateway is None or not isinstance(swarm, list):
        return None
    return KuboAddresses(api=api, gateway=gateway, swarm=tuple(swarm))


def _first(value: object) -> str | None:
    """Return an address field, which Kubo stores as a string or a list."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def apply_node_settings(config: dict[str, Any], addresses: KuboAddresses) -> None:
    """Set ``addresses`` and :data:`ISOLATION_SETTINGS` in ``config`` in place."""
    section = config.setdefault("Addresses", {})
    section["API"] = addresses.api
    section["Gateway"] = addresses.gateway
    section["Swarm"] = list(addresses.swarm)
    for path, value in ISOLATION_SETTINGS:
        _set_path(config, path, value)


def _set_path(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = config
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def read_config(repo_path: Path) -> dict[str, Any]:
    """Return the parsed ``config`` file of the repository at ``repo_path``."""
    config_path = repo_path / "config"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServiceError(
            f"cannot read the Kubo config {config_path}: {exc}; repair the file or "
            f"move the repository away so the app creates a new one"
        ) from exc
    if not isinstance(config, dict):
        raise ServiceError(f"the Kubo config {config_path} is not a JSON object")
    return config


def write_config(repo_path: Path, config: dict[str, Any]) -> None:
    """Replace the repository's ``config`` file atomically, owner-readable only.

    The file contains the node's private key, so it is written with mode 0600.
    """
    _write_private_file(repo_path / "config", json.dumps(config, indent=2) + "\n")


def generate_swarm_key() -> bytes:
    """Return a new random 32-byte pre-shared key for a private network."""
    return secrets.token_bytes(SWARM_KEY_SIZE)


def format_swarm_key(key: bytes) -> str:
    """Return the ``swarm.key`` file text for ``key`` (libp2p PSK v1, base16)."""
    if len(key) != SWARM_KEY_SIZE:
        raise ConfigError(
            f"invalid swarm key: expected {SWARM_KEY_SIZE} bytes, got {len(key)}; "
            f"use the consortium's key or create one with generate_swarm_key()"
        )
    return f"{SWARM_KEY_HEADER}{key.hex()}\n"


def write_swarm_key(repo_path: Path, key: bytes) -> bool:
    """Write ``key`` to ``swarm.key``; return True when the file changed."""
    text = format_swarm_key(key)
    key_path = repo_path / "swarm.key"
    if key_path.is_file() and key_path.read_text(encoding="ascii") == text:
        return False
    _write_private_file(key_path, text)
    return True


def _write_private_file(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        output.write(text)
        output.flush()
        os.fsync(output.fileno())
    os.replace(temporary, path)
