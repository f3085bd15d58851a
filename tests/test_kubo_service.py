"""Tests of KuboNode against real Kubo daemons."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from merchant_app.errors import (
    ConfigError,
    IpfsResponseError,
    IpfsTimeoutError,
    ServiceError,
    ToolNotFoundError,
)
from merchant_app.services.kubo import KuboNode
from merchant_app.services.kubo_config import (
    SWARM_KEY_HEADER,
    KuboAddresses,
    generate_swarm_key,
)
from merchant_app.services.ports import find_free_port
from tests.fixtures.ipfs import KuboNodeFactory, paused, process_exists

PEER_MULTIADDR = re.compile(r"^/ip4/127\.0\.0\.1/tcp/(\d+)/p2p/(12D3Koo\w+)$")

# The identity CID of empty content: a gateway serves it without any block.
EMPTY_IDENTITY_CID = "bafkqaaa"


def distinct_free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = find_free_port()
        if port not in ports:
            ports.append(port)
    return ports


def read_config(node: KuboNode) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((node.repo_path / "config").read_text())
    return config


def test_kubo_node_start_reports_repo_peer_id(
    kubo_node_factory: KuboNodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="merchant_app.services.kubo")

    node = kubo_node_factory(1)[0]

    config = read_config(node)
    assert node.is_running
    assert node.owns_process
    assert node.peer_id == config["Identity"]["PeerID"]
    with node.client() as client:
        assert client.id().peer_id == node.peer_id
        assert client.version() == "0.43.1"
    assert node.api_url.startswith("http://127.0.0.1:")
    started = [r.getMessage() for r in caplog.records if "started Kubo" in r.message]
    assert len(started) == 1
    assert node.peer_id in started[0]
    assert node.api_url in started[0]


def test_kubo_node_config_keeps_node_private(kubo_node: KuboNode) -> None:
    config = read_config(kubo_node)
    addresses = config["Addresses"]
    assert isinstance(addresses, dict)
    assert addresses["API"].startswith("/ip4/127.0.0.1/tcp/")
    assert addresses["Gateway"].startswith("/ip4/127.0.0.1/tcp/")
    assert len(addresses["Swarm"]) == 1
    assert re.fullmatch(r"/ip4/127\.0\.0\.1/tcp/\d+", addresses["Swarm"][0])
    assert config["Bootstrap"] == []
    assert config["Discovery"] == {"MDNS": {"Enabled": False}}
    assert config["AutoConf"]["Enabled"] is False
    assert config["AutoTLS"]["Enabled"] is False
    assert config["Routing"]["Type"] == "none"
    assert config["Routing"]["DelegatedRouters"] == []
    transports = config["Swarm"]["Transports"]["Network"]
    assert transports["TCP"] is True
    for transport in ("QUIC", "WebTransport", "WebRTCDirect", "Websocket"):
        assert transports[transport] is False, transport
    assert config["Provide"]["Enabled"] is False
    assert config["HTTPRetrieval"]["Enabled"] is False
    assert config["Swarm"]["RelayClient"]["Enabled"] is False
    telemetry = config["Plugins"]["Plugins"]["telemetry"]
    assert telemetry["Config"]["Mode"] == "off"


def test_kubo_node_joins_private_network(
    kubo_node: KuboNode, consortium_swarm_key: bytes
) -> None:
    key_text = (kubo_node.repo_path / "swarm.key").read_text()
    assert key_text == SWARM_KEY_HEADER + consortium_swarm_key.hex() + "\n"
    log_text = kubo_node.daemon_log_path.read_text()
    assert "Swarm is limited to private network" in log_text
    with kubo_node.client() as client:
        listen_addresses = client.id().addresses
    assert listen_addresses
    for address in listen_addresses:
        assert address.startswith("/ip4/127.0.0.1/tcp/"), address


def test_kubo_node_peer_multiaddr_names_swarm_port(kubo_node: KuboNode) -> None:
    match = PEER_MULTIADDR.match(kubo_node.peer_multiaddr)

    assert match is not None, kubo_node.peer_multiaddr
    swarm = read_config(kubo_node)["Addresses"]["Swarm"][0]
    assert swarm == f"/ip4/127.0.0.1/tcp/{match.group(1)}"
    assert match.group(2) == kubo_node.peer_id


def test_two_nodes_connect_and_list_each_other(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    first, second = kubo_node_factory(2)

    with first.client() as client_one, second.client() as client_two:
        client_two.swarm_connect(first.peer_multiaddr)
        peers_of_first = {peer.peer_id for peer in client_one.swarm_peers()}
        peers_of_second = {peer.peer_id for peer in client_two.swarm_peers()}

    assert second.peer_id in peers_of_first
    assert first.peer_id in peers_of_second


def test_nodes_with_other_swarm_key_cannot_connect(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    member = kubo_node_factory(1)[0]
    outsider = kubo_node_factory(1, swarm_key=generate_swarm_key())[0]

    with outsider.client() as client:
        # The mismatched handshake either stalls until the dial deadline or is
        # reset by the member, depending on timing.
        with pytest.raises((IpfsTimeoutError, IpfsResponseError), match="swarm key"):
            client.swarm_connect(member.peer_multiaddr, timeout=3)
        assert client.swarm_peers() == []


def test_kubo_node_reuses_running_node(
    kubo_node: KuboNode,
    consortium_swarm_key: bytes,
    ipfs_binary: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="merchant_app.services.kubo")
    first_pid = kubo_node.pid
    assert first_pid is not None

    second = KuboNode(
        kubo_node.repo_path, swarm_key=consortium_swarm_key, ipfs_binary=ipfs_binary
    )
    second.start()

    assert second.is_running
    assert not second.owns_process
    assert second.pid is None
    assert second.api_url == kubo_node.api_url
    assert second.peer_id == kubo_node.peer_id
    assert any("reusing" in record.message for record in caplog.records)
    assert not any("started Kubo" in record.message for record in caplog.records)

    second.stop()

    assert process_exists(first_pid)
    with kubo_node.client() as client:
        assert client.id().peer_id == kubo_node.peer_id


def test_kubo_node_restart_keeps_free_ports(kubo_node: KuboNode) -> None:
    api_url = kubo_node.api_url
    peer_multiaddr = kubo_node.peer_multiaddr

    kubo_node.stop()
    kubo_node.start()

    assert kubo_node.api_url == api_url
    assert kubo_node.peer_multiaddr == peer_multiaddr


def test_kubo_node_stop_leaves_no_process(kubo_node: KuboNode) -> None:
    pid = kubo_node.pid
    assert pid is not None

    kubo_node.stop()

    assert not process_exists(pid)
    assert not kubo_node.is_running
    assert not (kubo_node.repo_path / "repo.lock").exists()
    with pytest.raises(ServiceError, match="not running"):
        _ = kubo_node.api_url


def test_kubo_node_stop_kills_hung_daemon(
    kubo_node_factory: KuboNodeFactory, caplog: pytest.LogCaptureFixture
) -> None:
    node = kubo_node_factory(1, stop_timeout=1.0)[0]
    pid = node.pid
    assert pid is not None

    # A stopped process ignores the shutdown request and SIGTERM; SIGKILL ends it.
    os.kill(pid, signal.SIGSTOP)
    node.stop()

    assert not process_exists(pid)
    assert any("SIGKILL" in record.message for record in caplog.records)


def test_kubo_node_starts_over_stale_lock(kubo_node: KuboNode) -> None:
    pid = kubo_node.pid
    assert pid is not None
    peer_id = kubo_node.peer_id
    # A killed daemon leaves its lock file and its "api" file behind.
    os.kill(pid, signal.SIGKILL)
    kubo_node.stop()
    assert not process_exists(pid)
    assert (kubo_node.repo_path / "repo.lock").exists()
    assert (kubo_node.repo_path / "api").exists()

    kubo_node.start()

    assert kubo_node.owns_process
    assert kubo_node.pid != pid
    assert kubo_node.peer_id == peer_id


def test_kubo_node_live_lock_of_hung_daemon_raises(
    kubo_node: KuboNode, consortium_swarm_key: bytes, ipfs_binary: Path
) -> None:
    pid = kubo_node.pid
    assert pid is not None
    second = KuboNode(
        kubo_node.repo_path, swarm_key=consortium_swarm_key, ipfs_binary=ipfs_binary
    )

    with paused(pid):
        with pytest.raises(ServiceError, match="is locked by") as error:
            second.start()

    assert f"process {pid}" in str(error.value)
    assert str(kubo_node.repo_path) in str(error.value)
    assert (kubo_node.repo_path / "repo.lock").exists()
    assert process_exists(pid)
    assert not second.is_running


def test_kubo_node_live_lock_of_other_process_raises(
    kubo_node: KuboNode, consortium_swarm_key: bytes, ipfs_binary: Path
) -> None:
    repo_path = kubo_node.repo_path
    kubo_node.stop()
    # Holds the repository lock the way Kubo does: an fcntl write lock.
    holder_script = textwrap.dedent(
        """
        import fcntl, os, sys
        fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        print("locked", flush=True)
        sys.stdin.read()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_script, str(repo_path / "repo.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"locked\n"
        node = KuboNode(
            repo_path, swarm_key=consortium_swarm_key, ipfs_binary=ipfs_binary
        )
        with pytest.raises(ServiceError, match=f"locked by process {holder.pid}"):
            node.start()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=10)

    assert (repo_path / "repo.lock").exists()


def test_kubo_node_missing_binary_raises_tool_not_found(
    tmp_path: Path, consortium_swarm_key: bytes
) -> None:
    node = KuboNode(
        tmp_path / "repo",
        swarm_key=consortium_swarm_key,
        ipfs_binary=tmp_path / "missing" / "ipfs",
    )

    with pytest.raises(ToolNotFoundError, match="scripts/setup.sh"):
        node.start()
    assert not (tmp_path / "repo").exists()


def test_kubo_node_bad_tool_variable_raises(
    tmp_path: Path, consortium_swarm_key: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MERCHANT_APP_IPFS", str(tmp_path / "no-ipfs"))
    node = KuboNode(tmp_path / "repo", swarm_key=consortium_swarm_key)

    with pytest.raises(ToolNotFoundError, match="scripts/setup.sh"):
        node.start()


def test_kubo_node_invalid_swarm_key_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected 32 bytes, got 5"):
        KuboNode(tmp_path / "repo", swarm_key=b"short")


def test_kubo_node_applies_configured_addresses(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    api_port, gateway_port, swarm_port = distinct_free_ports(3)
    addresses = KuboAddresses(
        api=f"/ip4/127.0.0.1/tcp/{api_port}",
        gateway=f"/ip4/127.0.0.1/tcp/{gateway_port}",
        swarm=(f"/ip4/127.0.0.1/tcp/{swarm_port}",),
    )

    node = kubo_node_factory(1, addresses=addresses)[0]

    assert node.api_url == f"http://127.0.0.1:{api_port}"
    assert node.gateway_url == f"http://127.0.0.1:{gateway_port}"
    assert node.peer_multiaddr == f"{addresses.swarm[0]}/p2p/{node.peer_id}"
    gateway_reply = requests.get(
        f"{node.gateway_url}/ipfs/{EMPTY_IDENTITY_CID}", timeout=10
    )
    assert gateway_reply.status_code == 200


def test_kubo_node_configured_port_in_use_raises(
    kubo_node_factory: KuboNodeFactory, consortium_swarm_key: bytes, ipfs_binary: Path
) -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken_port = blocker.getsockname()[1]
        api_port, gateway_port = distinct_free_ports(2)
        addresses = KuboAddresses(
            api=f"/ip4/127.0.0.1/tcp/{api_port}",
            gateway=f"/ip4/127.0.0.1/tcp/{gateway_port}",
            swarm=(f"/ip4/127.0.0.1/tcp/{taken_port}",),
        )

        with pytest.raises(ServiceError, match="address already in use"):
            kubo_node_factory(1, addresses=addresses)


def test_kubo_node_other_node_at_configured_api_raises(
    kubo_node_factory: KuboNodeFactory, consortium_swarm_key: bytes, ipfs_binary: Path
) -> None:
    running = kubo_node_factory(1)[0]
    config = read_config(running)["Addresses"]
    addresses = KuboAddresses(
        api=config["API"],
        gateway=config["Gateway"],
        swarm=tuple(config["Swarm"]),
    )
    other = KuboNode(
        running.repo_path.parent / "other",
        swarm_key=consortium_swarm_key,
        addresses=addresses,
        ipfs_binary=ipfs_binary,
    )

    with pytest.raises(
        ServiceError, match=f"another Kubo node \\(peer {running.peer_id}"
    ):
        other.start()
    assert not other.is_running
