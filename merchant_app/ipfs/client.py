"""Blocking client of the Kubo RPC API (``/api/v0/...``).

Kubo's RPC API accepts POST only. Every request goes through one
``requests.Session``, so connections to the node are reused. The GUI calls
this client from an executor, never on its event loop.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import requests

from merchant_app.errors import (
    ConfigError,
    ContentTooLargeError,
    IpfsResponseError,
    IpfsTimeoutError,
    IpfsUnreachableError,
)
from merchant_app.ipfs import multipart
from merchant_app.ipfs.rpc_errors import error_for_response

logger = logging.getLogger(__name__)

# Every merchant adds content with these parameters, so equal bytes get an
# equal CID on every node: CIDv1, raw leaves, sha2-256, 256 KiB chunks.
ADD_PARAMETERS: Mapping[str, str] = MappingProxyType(
    {
        "cid-version": "1",
        "raw-leaves": "true",
        "hash": "sha2-256",
        "chunker": "size-262144",
        "pin": "true",
    }
)

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 5.0
DOWNLOAD_CHUNK_SIZE = 256 * 1024

# Extra seconds the HTTP read waits past a deadline that Kubo enforces itself,
# so Kubo's own error arrives before the client gives up.
_DEADLINE_GRACE = 5.0


@dataclass(frozen=True)
class NodeIdentity:
    """Identity of a Kubo node as ``id`` returns it."""

    peer_id: str
    addresses: tuple[str, ...]
    agent_version: str


@dataclass(frozen=True)
class SwarmPeer:
    """A peer the node has an open connection to."""

    peer_id: str
    address: str


class KuboClient:
    """Client of one Kubo node's RPC API, for example ``http://127.0.0.1:5001``."""

    def __init__(self, api_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.api_url = _normalize_api_url(api_url)
        if not timeout > 0:
            raise ConfigError(
                f"invalid Kubo RPC timeout {timeout!r}: expected a positive number "
                f"of seconds"
            )
        self.timeout = timeout
        self._session = requests.Session()

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._session.close()

    def __enter__(self) -> KuboClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KuboClient({self.api_url!r}, timeout={self.timeout!r})"

    # Node information

    def version(self) -> str:
        """Return the node's Kubo version, for example ``"0.43.1"``."""
        payload = self._post_json("version")
        return _require_str(payload, "Version", command="version", url=self.api_url)

    def id(self) -> NodeIdentity:
        """Return the node's peer id, listen addresses and agent version."""
        payload = self._post_json("id")
        addresses = payload.get("Addresses") or []
        if not isinstance(addresses, list):
            raise IpfsResponseError(
                f"Kubo RPC command 'id' at {self.api_url} returned Addresses of "
                f"type {type(addresses).__name__}, expected a list"
            )
        return NodeIdentity(
            peer_id=_require_str(payload, "ID", command="id", url=self.api_url),
            addresses=tuple(str(address) for address in addresses),
            agent_version=str(payload.get("AgentVersion", "")),
        )

    def shutdown(self) -> None:
        """Ask the node to shut its daemon down; returns once Kubo accepted it."""
        response = self._post("shutdown")
        with response:
            self._read_body(response, command="shutdown")
        logger.info("requested shutdown of the Kubo node at %s", self.api_url)

    # Adding content

    def add_bytes(self, data: bytes, *, name: str = "data") -> str:
        """Add ``data`` with :data:`ADD_PARAMETERS`, pin it and return its CID."""
        return self._add_stream(BytesIO(data), filename=name, size=len(data))

    def add_file(self, path: Path | str) -> str:
        """Add the file at ``path`` with :data:`ADD_PARAMETERS`, pin it, return its CID.

        The file is streamed in chunks, never read whole into memory.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cannot add {path} to IPFS: it is not a file")
        with path.open("rb") as stream:
            return self._add_stream(
                stream, filename=path.name, size=path.stat().st_size
            )

    def _add_stream(self, stream: BinaryIO, *, filename: str, size: int) -> str:
        boundary = multipart.new_boundary()
        body = multipart.iter_file_part(stream, filename=filename, boundary=boundary)
        started = time.monotonic()
        response = self._post(
            "add",
            params=dict(ADD_PARAMETERS),
            data=body,
            headers={"Content-Type": multipart.content_type(boundary)},
        )
        with response:
            text = self._read_body(response, command="add")
        cid = _last_added_cid(text, url=self.api_url)
        logger.info(
            "added %s (%d bytes) as %s in %.2f s",
            filename,
            size,
            cid,
            time.monotonic() - started,
        )
        return cid

    # Reading content

    def cat(self, cid: str, *, max_size: int, timeout: float | None = None) -> bytes:
        """Return the content of ``cid``, at most ``max_size`` bytes of it.

        ``timeout`` (seconds, default the client's) bounds the whole fetch:
        Kubo stops searching for the content after it.

        Raises:
            ContentTooLargeError: the content is larger than ``max_size``.
            IpfsNotFoundError: no connected node sent the content in time.
            IpfsTimeoutError: the transfer did not finish in time.
        """
        buffer = bytearray()
        for chunk in self._iter_cat(cid, max_size=max_size, timeout=timeout):
            buffer += chunk
        return bytes(buffer)

    def cat_to_file(
        self,
        cid: str,
        path: Path | str,
        *,
        max_size: int,
        timeout: float | None = None,
    ) -> int:
        """Write the content of ``cid`` to ``path`` and return its size in bytes.

        Same limits and errors as :meth:`cat`. A partial file is removed.
        """
        path = Path(path)
        written = 0
        try:
            with path.open("wb") as output:
                for chunk in self._iter_cat(cid, max_size=max_size, timeout=timeout):
                    output.write(chunk)
                    written += len(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return written

    def _iter_cat(
        self, cid: str, *, max_size: int, timeout: float | None
    ) -> Iterator[bytes]:
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0 bytes, got {max_size}")
        seconds = self._resolve_timeout(timeout)
        deadline = time.monotonic() + seconds + _DEADLINE_GRACE

        response = self._post(
            "cat", params={"arg": cid}, node_timeout=seconds, fetched_cid=cid
        )
        with response:
            declared = _declared_size(response)
            if declared is not None and declared > max_size:
                raise ContentTooLargeError(
                    f"{cid} is {declared} bytes, more than the limit of {max_size} "
                    f"bytes; it was not downloaded"
                )
            received = 0
            for chunk in self._iter_body(response, command="cat", cid=cid):
                received += len(chunk)
                if received > max_size:
                    raise ContentTooLargeError(
                        f"{cid} sent more than the limit of {max_size} bytes; the "
                        f"download was stopped"
                    )
                if time.monotonic() > deadline:
                    raise IpfsTimeoutError(
                        f"fetching {cid} from {self.api_url} took longer than "
                        f"{seconds:g} s ({received} bytes received); try again or "
                        f"raise the timeout"
                    )
                yield chunk

        # Kubo ends the stream early, with the error in an HTTP trailer that
        # requests does not expose, when its deadline expires mid-transfer.
        if declared is not None and received != declared:
            raise IpfsTimeoutError(
                f"fetching {cid} from {self.api_url} stopped after {received} of "
                f"{declared} bytes within {seconds:g} s: some blocks were not found "
                f"in time. Connect to a peer that has them and try again"
            )

    # Pins

    def pin_add(self, cid: str, *, timeout: float | None = None) -> None:
        """Pin ``cid`` recursively, fetching missing blocks within ``timeout`` s."""
        seconds = self._resolve_timeout(timeout)
        self._post_json(
            "pin/add",
            params={"arg": cid, "recursive": "true"},
            node_timeout=seconds,
            fetched_cid=cid,
        )
        logger.info("pinned %s", cid)

    def pin_rm(self, cid: str) -> None:
        """Remove the recursive pin of ``cid``; raises if it is not pinned."""
        self._post_json("pin/rm", params={"arg": cid})
        logger.info("unpinned %s", cid)

    def pin_ls(
        self, cid: str | None = None, *, pin_type: str = "recursive"
    ) -> dict[str, str]:
        """Return pinned CIDs mapped to their pin type (``recursive``, ...).

        With ``cid``, the result contains that CID alone, or nothing when it is
        not pinned with ``pin_type``.
        """
        params = {"type": pin_type}
        if cid is not None:
            params["arg"] = cid
        try:
            payload = self._post_json("pin/ls", params=params)
        except IpfsResponseError as exc:
            # NOTE: Kubo reports an unpinned CID only through this message text.
            if cid is not None and "is not pinned" in str(exc):
                return {}
            raise
        keys = payload.get("Keys") or {}
        if not isinstance(keys, dict):
            raise IpfsResponseError(
                f"Kubo RPC command 'pin/ls' at {self.api_url} returned Keys of type "
                f"{type(keys).__name__}, expected an object"
            )
        return {key: str(value.get("Type", "")) for key, value in keys.items()}

    # Peers

    def swarm_connect(self, multiaddr: str, *, timeout: float | None = None) -> None:
        """Open a connection to the peer at ``multiaddr`` (``.../p2p/PEERID``)."""
        if "/p2p/" not in multiaddr:
            raise ConfigError(
                f"invalid peer address {multiaddr!r}: expected a multiaddr ending "
                f"in /p2p/<peer id>, such as /ip4/127.0.0.1/tcp/4001/p2p/12D3Koo..."
            )
        seconds = self._resolve_timeout(timeout)
        try:
            self._post_json(
                "swarm/connect", params={"arg": multiaddr}, node_timeout=seconds
            )
        except (IpfsTimeoutError, IpfsResponseError) as exc:
            # A peer with another swarm key never completes the handshake,
            # so a dial timeout is the usual sign of a key mismatch.
            raise type(exc)(
                f"swarm connect to {multiaddr} failed: {exc}. Check the peer "
                f"address and that both nodes use the consortium's swarm key"
            ) from exc
        logger.info("connected to peer %s", multiaddr)

    def swarm_peers(self) -> list[SwarmPeer]:
        """Return the peers the node is connected to."""
        payload = self._post_json("swarm/peers")
        peers = payload.get("Peers") or []
        if not isinstance(peers, list):
            raise IpfsResponseError(
                f"Kubo RPC command 'swarm/peers' at {self.api_url} returned Peers of "
                f"type {type(peers).__name__}, expected a list"
            )
        return [
            SwarmPeer(
                peer_id=str(peer.get("Peer", "")), address=str(peer.get("Addr", ""))
            )
            for peer in peers
        ]

    # HTTP plumbing

    def _resolve_timeout(self, timeout: float | None) -> float:
        if timeout is None:
            return self.timeout
        if not timeout > 0:
            raise ValueError(
                f"timeout must be a positive number of seconds, got {timeout!r}"
            )
        return timeout

    def _post(
        self,
        command: str,
        *,
        params: Mapping[str, str] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        node_timeout: float | None = None,
        fetched_cid: str | None = None,
    ) -> requests.Response:
        """POST ``command`` and return the streamed 200 response, else raise.

        ``node_timeout`` (seconds) becomes Kubo's own ``timeout`` option, and
        the HTTP read waits a little longer so Kubo's error arrives first.
        """
        url = f"{self.api_url}/api/v0/{command}"
        query = dict(params or {})
        read_timeout = self.timeout
        if node_timeout is not None:
            query["timeout"] = _go_duration(node_timeout)
            read_timeout = node_timeout + _DEADLINE_GRACE
        try:
            response = self._session.post(
                url,
                params=query,
                data=data,
                headers=headers,
                timeout=(min(CONNECT_TIMEOUT, read_timeout), read_timeout),
                stream=True,
            )
        except requests.Timeout as exc:
            raise IpfsTimeoutError(
                f"Kubo RPC command {command!r} at {self.api_url} did not respond "
                f"within {read_timeout:g} s; check that the node is not overloaded, "
                f"or raise the timeout"
            ) from exc
        except requests.ConnectionError as exc:
            raise IpfsUnreachableError(
                f"cannot connect to the Kubo RPC API at {self.api_url} ({exc}); "
                f"start the IPFS node or fix the API address"
            ) from exc

        if response.status_code == 200:
            return response
        with response:
            raise error_for_response(
                response,
                command=command,
                url=url,
                api_url=self.api_url,
                cid=fetched_cid,
                timeout=node_timeout,
            )

    def _post_json(
        self,
        command: str,
        *,
        params: Mapping[str, str] | None = None,
        node_timeout: float | None = None,
        fetched_cid: str | None = None,
    ) -> dict[str, Any]:
        response = self._post(
            command, params=params, node_timeout=node_timeout, fetched_cid=fetched_cid
        )
        with response:
            text = self._read_body(response, command=command)
        try:
            payload = json.loads(text)
        except ValueError as exc:
            raise IpfsResponseError(
                f"Kubo RPC command {command!r} at {self.api_url} returned a body "
                f"that is not JSON: {text[:200]!r}"
            ) from exc
        if not isinstance(payload, dict):
            raise IpfsResponseError(
                f"Kubo RPC command {command!r} at {self.api_url} returned "
                f"{type(payload).__name__}, expected a JSON object"
            )
        return payload

    def _read_body(self, response: requests.Response, *, command: str) -> str:
        body = b"".join(self._iter_body(response, command=command))
        return body.decode("utf-8", errors="replace")

    def _iter_body(
        self, response: requests.Response, *, command: str, cid: str | None = None
    ) -> Iterator[bytes]:
        subject = cid or command
        try:
            yield from response.iter_content(chunk_size=DOWNLOAD_CHUNK_SIZE)
        except requests.Timeout as exc:
            raise IpfsTimeoutError(
                f"Kubo RPC command {command!r} at {self.api_url} stalled while "
                f"sending {subject}; try again or raise the timeout"
            ) from exc
        except requests.RequestException as exc:
            raise IpfsResponseError(
                f"Kubo RPC command {command!r} at {self.api_url} broke off while "
                f"sending {subject}: {exc}"
            ) from exc


def _normalize_api_url(api_url: str) -> str:
    parts = urlsplit(api_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"invalid Kubo RPC API URL {api_url!r}: expected http://HOST:PORT, "
            f"such as http://127.0.0.1:5001"
        )
    return api_url.strip().rstrip("/")


def _go_duration(seconds: float) -> str:
    """Format ``seconds`` as a Go duration for Kubo's ``timeout`` option."""
    return f"{seconds:.3f}s"


def _declared_size(response: requests.Response) -> int | None:
    value = response.headers.get("X-Content-Length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _require_str(
    payload: Mapping[str, Any], key: str, *, command: str, url: str
) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value:
        raise IpfsResponseError(
            f"Kubo RPC command {command!r} at {url} returned no {key!r} string: "
            f"{json.dumps(payload)[:200]}"
        )
    return value


def _last_added_cid(text: str, *, url: str) -> str:
    """Return the CID of the last entry in ``add``'s newline-delimited JSON."""
    cid: str | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise IpfsResponseError(
                f"Kubo RPC command 'add' at {url} returned a line that is not JSON: "
                f"{line[:200]!r}"
            ) from exc
        if isinstance(entry, dict) and isinstance(entry.get("Hash"), str):
            cid = entry["Hash"]
    if cid is None:
        raise IpfsResponseError(
            f"Kubo RPC command 'add' at {url} returned no CID: {text[:200]!r}; the "
            f"node may have failed while storing the file, check its log"
        )
    return cid
