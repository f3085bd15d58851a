"""Tests of the CID string <-> (codec, digest) conversion."""

from __future__ import annotations

import base64
import hashlib

import pytest

from merchant_app.chain.cid import CODEC_DAG_PB, CODEC_RAW, Cid, parse_cid
from merchant_app.errors import ChainError, InputDataError

# Printed by Kubo 0.43.1: `ipfs add --only-hash --cid-version=1 --raw-leaves`
# on a file holding the five bytes "hello".
KUBO_RAW_HELLO = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq"
# Printed by Kubo 0.43.1 for 600,000 zero bytes in 256 KiB chunks (a dag-pb root).
KUBO_DAG_PB_ROOT = "bafybeib7pcuusxw7atqqc4apxvkezssdjbqkkhymjpo5x7bsj5sytn2ph4"


def encode_raw_cid(payload: bytes) -> str:
    """Build a base32 CID string from raw binary CID bytes."""
    return "b" + base64.b32encode(payload).decode().rstrip("=").lower()


def test_cid_parse_kubo_raw_leaf():
    cid = parse_cid(KUBO_RAW_HELLO)

    assert cid.codec == CODEC_RAW
    assert cid.digest == hashlib.sha256(b"hello").digest()


def test_cid_parse_kubo_dag_pb():
    cid = parse_cid(KUBO_DAG_PB_ROOT)

    assert cid.codec == CODEC_DAG_PB
    assert len(cid.digest) == 32


@pytest.mark.parametrize("text", [KUBO_RAW_HELLO, KUBO_DAG_PB_ROOT])
def test_cid_round_trip(text: str):
    assert Cid.parse(text).encode() == text
    assert str(Cid.parse(text)) == text


def test_cid_encode_matches_kubo():
    cid = Cid(codec=CODEC_RAW, digest=hashlib.sha256(b"hello").digest())

    assert cid.encode() == KUBO_RAW_HELLO


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX", "CIDv0"),
        ("zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA", "multibase prefix"),
        (KUBO_RAW_HELLO.upper(), "multibase prefix"),
        ("b" + KUBO_RAW_HELLO[1:].upper(), "lower case"),
        (KUBO_RAW_HELLO[:-8], "digest length"),
        (KUBO_RAW_HELLO[:-1], "base32"),
        (KUBO_RAW_HELLO + "aaaaaaaa", "digest length"),
        ("bafkrei!!", "base32"),
        ("b", "ends inside a varint"),
    ],
)
def test_cid_parse_rejects_invalid(text: str, problem: str):
    with pytest.raises(InputDataError) as info:
        parse_cid(text)

    assert problem in str(info.value)
    assert repr(text) in str(info.value)


def test_cid_parse_rejects_other_codec():
    digest = hashlib.sha256(b"x").digest()
    dag_cbor = encode_raw_cid(bytes([0x01, 0x71, 0x12, 0x20]) + digest)

    with pytest.raises(InputDataError, match="codec 0x71"):
        parse_cid(dag_cbor)


def test_cid_parse_rejects_other_hash():
    digest = hashlib.sha256(b"x").digest()
    # 0xb220 is blake2b-256, a two-byte varint.
    blake = encode_raw_cid(bytes([0x01, 0x55, 0xA0, 0xE4, 0x02, 0x20]) + digest)

    with pytest.raises(InputDataError, match="multihash code 0xb220"):
        parse_cid(blake)


def test_cid_parse_rejects_version_zero_prefix():
    digest = hashlib.sha256(b"x").digest()
    version_two = encode_raw_cid(bytes([0x02, 0x55, 0x12, 0x20]) + digest)

    with pytest.raises(InputDataError, match="CID version 2"):
        parse_cid(version_two)


def test_cid_parse_rejects_padded_varint():
    digest = hashlib.sha256(b"x").digest()
    padded = encode_raw_cid(bytes([0x81, 0x00, 0x55, 0x12, 0x20]) + digest)

    with pytest.raises(InputDataError, match="minimally encoded"):
        parse_cid(padded)


def test_cid_rejects_bad_fields():
    with pytest.raises(InputDataError, match="codec 0x71"):
        Cid(codec=0x71, digest=bytes(32))
    with pytest.raises(InputDataError, match="31 bytes"):
        Cid(codec=CODEC_RAW, digest=bytes(31))


def test_cid_from_chain_bad_codec_is_chain_error():
    with pytest.raises(ChainError, match="invalid CID"):
        Cid.from_chain(0x99, bytes(32))
