"""Convert CIDv1 strings to the (codec, digest) pair the contract stores.

Every file the app adds to IPFS gets a CIDv1 with a sha2-256 multihash, so
the contract keeps only the multicodec (0x55 raw or 0x70 dag-pb) and the
32-byte digest. This module parses the string form (multibase base32, the
``b...`` strings Kubo prints for CIDv1) into that pair and builds the string
back. The layout follows the multiformats specs: a CIDv1 is
``<multibase prefix><varint version=1><varint codec><multihash>``, and a
multihash is ``<varint hash code><varint digest length><digest>``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import NoReturn

from merchant_app.errors import ChainError, InputDataError

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
SUPPORTED_CODECS = {CODEC_RAW: "raw", CODEC_DAG_PB: "dag-pb"}

SHA2_256 = 0x12
SHA2_256_LENGTH = 32
CID_VERSION_1 = 1
BASE32_PREFIX = "b"

# A varint of a 64-bit value never needs more than 9 bytes (multiformats spec).
_MAX_VARINT_BYTES = 9


@dataclass(frozen=True)
class Cid:
    """A CIDv1 with a sha2-256 multihash, as the contract stores it."""

    codec: int
    digest: bytes

    def __post_init__(self) -> None:
        if self.codec not in SUPPORTED_CODECS:
            raise InputDataError(
                f"unsupported CID codec 0x{self.codec:x}; expected raw (0x55) or "
                f"dag-pb (0x70)",
                user_message="The content id uses a format the app does not support.",
            )
        if len(self.digest) != SHA2_256_LENGTH:
            raise InputDataError(
                f"CID digest has {len(self.digest)} bytes; sha2-256 needs "
                f"{SHA2_256_LENGTH}",
                user_message="The content id is invalid.",
            )

    @classmethod
    def parse(cls, text: str) -> Cid:
        """Parse a base32 CIDv1 string such as ``bafkrei...``.

        Raises:
            InputDataError: naming the value when it is not a base32 CIDv1
                with a sha2-256 multihash and a raw or dag-pb codec.
        """
        return parse_cid(text)

    @classmethod
    def from_chain(cls, codec: int, digest: bytes) -> Cid:
        """Build a CID from values read from the contract.

        Raises:
            ChainError: when the contract returned a codec or digest that
                cannot be a CID the app wrote.
        """
        try:
            return cls(codec=codec, digest=bytes(digest))
        except InputDataError as exc:
            raise ChainError(f"the contract returned an invalid CID: {exc}") from exc

    def encode(self) -> str:
        """Return the canonical string form: multibase base32, lower case."""
        raw = (
            _encode_varint(CID_VERSION_1)
            + _encode_varint(self.codec)
            + _encode_varint(SHA2_256)
            + _encode_varint(SHA2_256_LENGTH)
            + self.digest
        )
        body = base64.b32encode(raw).decode("ascii").rstrip("=").lower()
        return BASE32_PREFIX + body

    def __str__(self) -> str:
        return self.encode()


def parse_cid(text: str) -> Cid:
    """Parse a base32 CIDv1 string into its codec and sha2-256 digest.

    Raises:
        InputDataError: naming the value and what is wrong with it.
    """
    raw = _decode_multibase(text)

    # Steps: version, codec, then the multihash (hash code, length, digest).
    version, offset = _read_varint(raw, 0, text)
    if version != CID_VERSION_1:
        _fail(text, f"CID version {version} is not supported; expected CIDv1")
    codec, offset = _read_varint(raw, offset, text)
    if codec not in SUPPORTED_CODECS:
        _fail(text, f"codec 0x{codec:x} is not raw (0x55) or dag-pb (0x70)")
    hash_code, offset = _read_varint(raw, offset, text)
    if hash_code != SHA2_256:
        _fail(text, f"multihash code 0x{hash_code:x} is not sha2-256 (0x12)")
    length, offset = _read_varint(raw, offset, text)
    digest = raw[offset:]
    if length != SHA2_256_LENGTH or len(digest) != SHA2_256_LENGTH:
        _fail(
            text,
            f"digest length is {len(digest)} bytes (header says {length}); "
            f"sha2-256 needs {SHA2_256_LENGTH}",
        )
    return Cid(codec=codec, digest=digest)


def _decode_multibase(text: str) -> bytes:
    if not isinstance(text, str) or not text:
        _fail(str(text), "the value is empty or not text")
    if text.startswith("Qm"):
        _fail(text, "CIDv0 is not supported; add files with CIDv1 (--cid-version=1)")
    if text[0] != BASE32_PREFIX:
        _fail(
            text,
            f"multibase prefix {text[0]!r} is not base32 ('b'); the app writes "
            f"CIDv1 strings in base32",
        )
    body = text[1:]
    if body != body.lower():
        _fail(text, "base32 CIDs with the 'b' prefix are lower case")
    padding = "=" * (-len(body) % 8)
    try:
        return base64.b32decode(body.upper() + padding)
    except ValueError as exc:
        _fail(text, f"not valid base32: {exc}")


def _read_varint(data: bytes, offset: int, text: str) -> tuple[int, int]:
    """Read an unsigned LEB128 varint at ``offset``; return value and new offset."""
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        position = offset + index
        if position >= len(data):
            _fail(text, "the value ends inside a varint")
        byte = data[position]
        value |= (byte & 0x7F) << (7 * index)
        if byte & 0x80 == 0:
            if byte == 0 and index > 0:
                _fail(text, "a varint is not minimally encoded")
            return value, position + 1
    _fail(text, "a varint is longer than 9 bytes")


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _fail(text: str, problem: str) -> NoReturn:
    raise InputDataError(
        f"invalid CID {text!r}: {problem}",
        user_message=f"The content id {text!r} is invalid.",
    )
