"""Decode revert data into a readable reason using a contract's ABI.

A revert returns ABI-encoded data: a 4-byte selector and the arguments. The
selector is either ``Error(string)`` (a ``require`` message), ``Panic(uint256)``
(an assertion or arithmetic failure) or one of the contract's custom errors.
"""

from __future__ import annotations

from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

ERROR_STRING_SELECTOR = function_signature_to_4byte_selector("Error(string)")
PANIC_SELECTOR = function_signature_to_4byte_selector("Panic(uint256)")


class RevertDecoder:
    """Map revert data to ``Name(arg=value, ...)`` strings for one ABI."""

    def __init__(self, abi: list[dict[str, Any]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for entry in abi:
            if entry.get("type") != "error":
                continue
            types = [_canonical_type(item) for item in entry["inputs"]]
            names = [item["name"] for item in entry["inputs"]]
            signature = f"{entry['name']}({','.join(types)})"
            selector = function_signature_to_4byte_selector(signature)
            self._errors[selector] = (entry["name"], types, names)

    def decode(self, data: bytes | str | None) -> str:
        """Return the reason for revert ``data``; unknown data is shown as hex."""
        raw = _to_bytes(data)
        if not raw:
            return "reverted without a reason"
        selector, payload = raw[:4], raw[4:]
        try:
            if selector == ERROR_STRING_SELECTOR:
                (message,) = abi_decode(["string"], payload)
                return str(message)
            if selector == PANIC_SELECTOR:
                (code,) = abi_decode(["uint256"], payload)
                return f"Panic(0x{code:x})"
            if selector in self._errors:
                name, types, names = self._errors[selector]
                values = abi_decode(types, payload)
                arguments = ", ".join(
                    f"{arg_name}={_format_value(value)}"
                    for arg_name, value in zip(names, values, strict=True)
                )
                return f"{name}({arguments})"
        except DecodingError:
            pass
        return f"unknown revert data 0x{raw.hex()}"


def revert_name(reason: str) -> str:
    """Return the error name of a decoded reason, such as ``NotMember``."""
    return reason.split("(", 1)[0]


def _canonical_type(item: dict[str, Any]) -> str:
    # Tuples do not occur in this project's errors; their canonical form would
    # need the component types.
    return str(item["type"])


def _to_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    text = data[2:] if data.startswith("0x") else data
    try:
        return bytes.fromhex(text)
    except ValueError:
        return b""


def _format_value(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return str(value)
