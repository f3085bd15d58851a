"""Turn failed Kubo RPC responses into the app's :class:`IpfsError` family.

Kubo's RPC API responds to a failed command with HTTP 500 and a JSON body
``{"Message": ..., "Code": ..., "Type": "error"}``. It has no error codes
beyond that, so a few cases are recognised by the text of ``Message``.
"""

from __future__ import annotations

import json

import requests

from merchant_app.errors import (
    IpfsError,
    IpfsNotFoundError,
    IpfsResponseError,
    IpfsTimeoutError,
    IpfsWrongPortError,
)

# Kubo's message when the request's ``timeout`` option (a Go context
# deadline) expires before the command finishes.
DEADLINE_EXCEEDED = "context deadline exceeded"

# Only the start of an error body is read: a wrong server may send megabytes.
_MAX_ERROR_BODY = 64 * 1024

_GATEWAY_EXPOSED_HEADERS = ("x-ipfs-roots", "ipfs-uri", "x-ipfs-path")


def looks_like_gateway(response: requests.Response) -> bool:
    """Return True when ``response`` to a POST ``/api/v0/...`` came from a gateway.

    A Kubo gateway (v0.43.1 checked) responds to such a request with 404 or 405
    and CORS headers that expose ``X-Ipfs-Roots`` and allow only GET, HEAD and
    OPTIONS. The RPC API itself responds to an unknown command with a bare 404
    and sends ``Allow: OPTIONS, POST`` with a 405.
    """
    if response.status_code not in (404, 405):
        return False

    exposed = response.headers.get("Access-Control-Expose-Headers", "").lower()
    if any(name in exposed for name in _GATEWAY_EXPOSED_HEADERS):
        return True

    method_headers = (
        response.headers.get("Access-Control-Allow-Methods", ""),
        response.headers.get("Allow", ""),
    )
    methods = {
        method.strip().upper()
        for header in method_headers
        for method in header.split(",")
        if method.strip()
    }
    return "GET" in methods and "POST" not in methods


def read_error_message(response: requests.Response) -> str:
    """Return Kubo's ``Message`` from an error body, else the start of the body."""
    body = response.raw.read(_MAX_ERROR_BODY, decode_content=True) or b""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:500] or f"HTTP {response.status_code} with an empty body"
    if isinstance(payload, dict) and isinstance(payload.get("Message"), str):
        return str(payload["Message"])
    return text[:500]


def error_for_response(
    response: requests.Response,
    *,
    command: str,
    url: str,
    api_url: str,
    cid: str | None = None,
    timeout: float | None = None,
) -> IpfsError:
    """Build the exception for a non-200 ``response`` to the RPC ``command``.

    ``cid`` names the content a fetching command (``cat``, ``pin/add``) asked
    for, so a Kubo-side deadline becomes :class:`IpfsNotFoundError`.
    ``timeout`` is the deadline passed to Kubo, in seconds.
    """
    status = response.status_code
    if looks_like_gateway(response):
        return IpfsWrongPortError(
            f"{api_url} is a Kubo gateway, not its RPC API: POST {url} returned "
            f"HTTP {status} with gateway headers. Use the RPC API address "
            f"(Addresses.API in the node's config, port 5001 by default)"
        )

    message = read_error_message(response)
    if status in (404, 405):
        return IpfsResponseError(
            f"POST {url} returned HTTP {status} ({message}): the server at "
            f"{api_url} does not serve the Kubo RPC command {command!r}. Check "
            f"that the address is a Kubo RPC API and that Kubo is v0.43 or newer"
        )
    if status in (401, 403):
        return IpfsResponseError(
            f"POST {url} returned HTTP {status} ({message}): the Kubo RPC API at "
            f"{api_url} rejected the request. Configure API access for this app "
            f"(API.Authorizations in the node's config)"
        )
    if DEADLINE_EXCEEDED in message and cid is not None:
        waited = f" within {timeout:g} s" if timeout is not None else ""
        return IpfsNotFoundError(
            f"{cid} was not found{waited} by the node at {api_url}: no connected "
            f"peer sent it. Connect to a peer that has it (swarm connect) and "
            f"try again"
        )
    if DEADLINE_EXCEEDED in message:
        return IpfsTimeoutError(
            f"Kubo RPC command {command!r} at {api_url} timed out on the node "
            f"({message}). Try again, or raise the timeout"
        )
    return IpfsResponseError(
        f"Kubo RPC command {command!r} at {api_url} failed with HTTP {status}: "
        f"{message}"
    )
