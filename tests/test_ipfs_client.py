"""Tests of KuboClient against real Kubo daemons."""

from __future__ import annotations

import os
import random
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from merchant_app.errors import (
    ConfigError,
    ContentTooLargeError,
    IpfsNotFoundError,
    IpfsResponseError,
    IpfsTimeoutError,
    IpfsUnreachableError,
    IpfsWrongPortError,
)
from merchant_app.ipfs import ADD_PARAMETERS, KuboClient
from merchant_app.services.kubo import KuboNode
from merchant_app.services.ports import find_free_port
from tests.fixtures.ipfs import KuboNodeFactory, paused

CHUNK_SIZE = 262_144
MEBIBYTE = 1024 * 1024


def seeded_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def cli_cid(ipfs_binary: Path, node: KuboNode, path: Path) -> str:
    """Return the CID the ``ipfs add`` command line computes for ``path``."""
    result = subprocess.run(
        [
            str(ipfs_binary),
            "add",
            "--cid-version=1",
            "--raw-leaves",
            "--hash=sha2-256",
            "--chunker=size-262144",
            "-Q",
            "--only-hash",
            str(path),
        ],
        env={**os.environ, "IPFS_PATH": str(node.repo_path)},
        capture_output=True,
        check=True,
        timeout=120,
    )
    return result.stdout.decode().strip()


@contextmanager
def fake_http_server(
    status: int, body: bytes, headers: dict[str, str] | None = None
) -> Iterator[str]:
    """Send one fixed response to every POST, for faults Kubo cannot show."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_add_parameters_fix_cid_inputs() -> None:
    assert dict(ADD_PARAMETERS) == {
        "cid-version": "1",
        "raw-leaves": "true",
        "hash": "sha2-256",
        "chunker": "size-262144",
        "pin": "true",
    }


def test_client_version_and_id(kubo_node: KuboNode, kubo_client: KuboClient) -> None:
    identity = kubo_client.id()

    assert kubo_client.version() == "0.43.1"
    assert identity.peer_id == kubo_node.peer_id
    assert identity.agent_version.startswith("kubo/0.43.1")
    assert kubo_node.peer_multiaddr in identity.addresses


def test_add_file_read_on_other_node(
    kubo_node_factory: KuboNodeFactory, tmp_path: Path
) -> None:
    data = seeded_bytes(20 * MEBIBYTE, seed=20)
    source = tmp_path / "update.bin"
    source.write_bytes(data)
    publisher, reader = kubo_node_factory(2)

    with publisher.client() as client_one, reader.client(timeout=60) as client_two:
        cid = client_one.add_file(source)
        client_two.swarm_connect(publisher.peer_multiaddr)
        fetched = client_two.cat(cid, max_size=len(data))
        copy_size = client_two.cat_to_file(
            cid, tmp_path / "copy.bin", max_size=len(data)
        )

    assert cid.startswith("bafy")
    assert len(fetched) == len(data)
    assert fetched == data
    assert copy_size == len(data)
    assert (tmp_path / "copy.bin").read_bytes() == data


@pytest.mark.parametrize(
    "size",
    [1000, 3 * CHUNK_SIZE + 7],
    ids=["under-one-chunk", "multi-chunk"],
)
def test_add_file_cid_matches_command_line(
    kubo_client: KuboClient,
    kubo_node: KuboNode,
    ipfs_binary: Path,
    tmp_path: Path,
    size: int,
) -> None:
    path = tmp_path / "model.safetensors"
    path.write_bytes(seeded_bytes(size, seed=size))

    client_cid = kubo_client.add_file(path)

    assert client_cid == cli_cid(ipfs_binary, kubo_node, path)
    assert kubo_client.add_bytes(path.read_bytes()) == client_cid
    if size < CHUNK_SIZE:
        assert client_cid.startswith("bafkrei")  # one raw leaf is the whole file
    else:
        assert client_cid.startswith("bafybei")  # a dag-pb root over raw leaves


def test_add_bytes_gives_equal_cid_on_two_nodes(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    data = seeded_bytes(MEBIBYTE, seed=7)
    first, second = kubo_node_factory(2)

    with first.client() as client_one, second.client() as client_two:
        assert client_one.add_bytes(data) == client_two.add_bytes(data)


def test_add_file_missing_path_raises(kubo_client: KuboClient, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        kubo_client.add_file(tmp_path / "missing.bin")


def test_add_pins_content(kubo_client: KuboClient) -> None:
    cid = kubo_client.add_bytes(b"item factors")

    assert kubo_client.pin_ls(cid) == {cid: "recursive"}
    assert kubo_client.pin_ls()[cid] == "recursive"


def test_pin_rm_then_pin_add(kubo_client: KuboClient) -> None:
    cid = kubo_client.add_bytes(b"round 3 aggregate")

    kubo_client.pin_rm(cid)
    assert kubo_client.pin_ls(cid) == {}
    with pytest.raises(IpfsResponseError, match="not pinned"):
        kubo_client.pin_rm(cid)

    kubo_client.pin_add(cid)
    assert kubo_client.pin_ls(cid) == {cid: "recursive"}


def test_cat_at_max_size_returns_content(kubo_client: KuboClient) -> None:
    data = seeded_bytes(CHUNK_SIZE + 1, seed=1)
    cid = kubo_client.add_bytes(data)

    assert kubo_client.cat(cid, max_size=len(data)) == data


def test_cat_over_max_size_raises(kubo_client: KuboClient) -> None:
    data = seeded_bytes(CHUNK_SIZE + 1, seed=2)
    cid = kubo_client.add_bytes(data)

    with pytest.raises(ContentTooLargeError, match=cid) as error:
        kubo_client.cat(cid, max_size=len(data) - 1)
    assert f"{len(data)} bytes" in str(error.value)


def test_cat_to_file_too_large_removes_file(
    kubo_client: KuboClient, tmp_path: Path
) -> None:
    cid = kubo_client.add_bytes(seeded_bytes(1000, seed=3))
    target = tmp_path / "fetched.bin"

    with pytest.raises(ContentTooLargeError):
        kubo_client.cat_to_file(cid, target, max_size=999)
    assert not target.exists()


def test_cat_unavailable_cid_raises_not_found(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    holder, seeker = kubo_node_factory(2)
    with holder.client() as holder_client:
        cid = holder_client.add_bytes(seeded_bytes(5000, seed=4))

    with seeker.client() as client:
        with pytest.raises(IpfsNotFoundError, match=cid) as error:
            client.cat(cid, max_size=MEBIBYTE, timeout=1.0)
    assert "within 1 s" in str(error.value)
    assert "swarm connect" in str(error.value)


def test_pin_add_unavailable_cid_raises_not_found(
    kubo_node_factory: KuboNodeFactory,
) -> None:
    holder, seeker = kubo_node_factory(2)
    with holder.client() as holder_client:
        cid = holder_client.add_bytes(seeded_bytes(5000, seed=5))

    with seeker.client() as client:
        with pytest.raises(IpfsNotFoundError, match=cid):
            client.pin_add(cid, timeout=1.0)
        assert client.pin_ls(cid) == {}


def test_cat_of_invalid_cid_raises_response_error(kubo_client: KuboClient) -> None:
    with pytest.raises(IpfsResponseError, match="not-a-cid"):
        kubo_client.cat("not-a-cid", max_size=100)


def test_cat_negative_max_size_raises(kubo_client: KuboClient) -> None:
    cid = kubo_client.add_bytes(b"x")

    with pytest.raises(ValueError, match="max_size"):
        kubo_client.cat(cid, max_size=-1)


def test_client_unreachable_node_raises() -> None:
    api_url = f"http://127.0.0.1:{find_free_port()}"

    with KuboClient(api_url, timeout=5) as client:
        with pytest.raises(IpfsUnreachableError, match=api_url) as error:
            client.id()
    assert "start the IPFS node" in str(error.value)
    assert not isinstance(error.value, IpfsWrongPortError)


def test_client_hung_node_raises_timeout(kubo_node: KuboNode) -> None:
    pid = kubo_node.pid
    assert pid is not None

    with KuboClient(kubo_node.api_url, timeout=1.0) as client, paused(pid):
        with pytest.raises(IpfsTimeoutError, match=kubo_node.api_url):
            client.version()


def test_client_gateway_port_raises_wrong_port(
    kubo_node: KuboNode, tmp_path: Path
) -> None:
    large_file = tmp_path / "large.bin"
    large_file.write_bytes(seeded_bytes(8 * MEBIBYTE, seed=8))

    with KuboClient(kubo_node.gateway_url, timeout=10) as client:
        with pytest.raises(IpfsWrongPortError, match="gateway") as error:
            client.id()
        with pytest.raises(IpfsWrongPortError):
            client.add_bytes(b"update")
        # The gateway rejects the upload before reading it whole.
        with pytest.raises(IpfsWrongPortError):
            client.add_file(large_file)

    assert kubo_node.gateway_url in str(error.value)
    assert "Addresses.API" in str(error.value)
    assert isinstance(error.value, IpfsUnreachableError)


def test_client_unknown_server_404_is_not_wrong_port() -> None:
    with fake_http_server(404, b"404 page not found") as api_url:
        with KuboClient(api_url, timeout=5) as client:
            with pytest.raises(IpfsResponseError, match="does not serve") as error:
                client.id()
    assert not isinstance(error.value, IpfsWrongPortError)


def test_client_malformed_json_raises_response_error() -> None:
    with fake_http_server(200, b"<html>not json</html>") as api_url:
        with KuboClient(api_url, timeout=5) as client:
            with pytest.raises(IpfsResponseError, match="not JSON"):
                client.version()


def test_client_json_without_fields_raises_response_error() -> None:
    with fake_http_server(200, b'{"Unexpected": true}') as api_url:
        with KuboClient(api_url, timeout=5) as client:
            with pytest.raises(IpfsResponseError, match="'ID'"):
                client.id()
            with pytest.raises(IpfsResponseError, match="returned no CID"):
                client.add_bytes(b"data")


def test_client_kubo_error_message_is_kept() -> None:
    body = b'{"Message":"blockstore: block not found","Code":0,"Type":"error"}'
    with fake_http_server(500, body) as api_url:
        with KuboClient(api_url, timeout=5) as client:
            with pytest.raises(IpfsResponseError, match="block not found"):
                client.pin_rm("bafkqaaa")


@pytest.mark.parametrize("api_url", ["127.0.0.1:5001", "ftp://127.0.0.1:5001", ""])
def test_client_invalid_url_raises_config_error(api_url: str) -> None:
    with pytest.raises(ConfigError, match="invalid Kubo RPC API URL"):
        KuboClient(api_url)


def test_swarm_connect_without_peer_id_raises(kubo_client: KuboClient) -> None:
    with pytest.raises(ConfigError, match="/p2p/"):
        kubo_client.swarm_connect("/ip4/127.0.0.1/tcp/4001")


def test_swarm_connect_to_closed_port_raises(kubo_client: KuboClient) -> None:
    peer_id = kubo_client.id().peer_id
    address = f"/ip4/127.0.0.1/tcp/{find_free_port()}/p2p/{peer_id}"

    with pytest.raises(IpfsResponseError, match="swarm connect to") as error:
        kubo_client.swarm_connect(address, timeout=5)
    assert address in str(error.value)
