"""Streamed ``multipart/form-data`` bodies for Kubo's ``add`` command.

``requests`` builds a multipart body in memory. These generators send a file
in fixed-size chunks instead, so adding a large file never keeps it whole in
memory. ``requests`` sends a generator body with chunked transfer encoding,
which Kubo's RPC server accepts.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import quote

UPLOAD_CHUNK_SIZE = 1024 * 1024


def new_boundary() -> str:
    """Return a random multipart boundary that cannot occur by chance in data."""
    return f"merchant-app-{secrets.token_hex(16)}"


def content_type(boundary: str) -> str:
    """Return the ``Content-Type`` header value for a body with ``boundary``."""
    return f"multipart/form-data; boundary={boundary}"


def iter_file_part(
    stream: BinaryIO,
    *,
    filename: str,
    boundary: str,
    chunk_size: int = UPLOAD_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Yield a multipart body with one part, named ``file``, holding ``stream``.

    Kubo ignores the file name when it adds a single file without a wrapping
    directory, so the name does not change the CID. It is percent-encoded
    because Kubo decodes it that way.
    """
    header = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; '
        f'filename="{quote(filename, safe="")}"\r\n'
        "Content-Type: application/octet-stream\r\n"
        "\r\n"
    )
    yield header.encode("ascii")

    while chunk := stream.read(chunk_size):
        yield chunk

    yield f"\r\n--{boundary}--\r\n".encode("ascii")
