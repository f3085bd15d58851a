"""Create and validate secp256k1 private keys.

Error messages here describe what is wrong with a key (its length, a
character that is not hexadecimal, its range) and never repeat the key.
"""

from __future__ import annotations

import secrets
import string

from eth_account import Account
from eth_account.signers.local import LocalAccount

from merchant_app.errors import WalletError

# Order n of the secp256k1 group (SEC 2, section 2.4.1). A private key is an
# integer k with 0 < k < n.
SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141

PRIVATE_KEY_BYTES = 32
PRIVATE_KEY_HEX_DIGITS = 2 * PRIVATE_KEY_BYTES

_INVALID_KEY_USER_MESSAGE = (
    "That is not a valid private key. Paste the 64 hexadecimal digits of the "
    "key, with or without 0x."
)


def generate_private_key() -> bytes:
    """Return 32 random bytes from ``secrets`` that form a valid private key."""
    while True:
        candidate = secrets.token_bytes(PRIVATE_KEY_BYTES)
        # The chance of a candidate outside [1, n - 1] is about 2**-128.
        if 0 < int.from_bytes(candidate, "big") < SECP256K1_ORDER:
            return candidate


def parse_private_key(text: str) -> bytes:
    """Convert a hex private key, with or without ``0x``, to its 32 bytes.

    Surrounding whitespace is ignored and both letter cases are accepted.

    Raises:
        WalletError: when the text is not 64 hexadecimal digits or the number
            is not in [1, n - 1] for the secp256k1 group order n.
    """
    digits = text.strip()
    if digits[:2] in ("0x", "0X"):
        digits = digits[2:]

    if not digits:
        raise WalletError(
            "invalid private key: the value is empty",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )
    if not all(character in string.hexdigits for character in digits):
        raise WalletError(
            "invalid private key: the value contains characters that are not "
            "hexadecimal digits (a recovery phrase is not supported)",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )
    if len(digits) != PRIVATE_KEY_HEX_DIGITS:
        raise WalletError(
            f"invalid private key: expected {PRIVATE_KEY_HEX_DIGITS} hexadecimal "
            f"digits (32 bytes), got {len(digits)}",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )

    key = bytes.fromhex(digits)
    check_private_key_range(key)
    return key


def check_private_key_range(key: bytes) -> None:
    """Raise :class:`WalletError` unless ``key`` is 32 bytes in [1, n - 1]."""
    if len(key) != PRIVATE_KEY_BYTES:
        raise WalletError(
            f"invalid private key: expected {PRIVATE_KEY_BYTES} bytes, got {len(key)}",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )
    value = int.from_bytes(key, "big")
    if value == 0:
        raise WalletError(
            "invalid private key: the key is zero",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )
    if value >= SECP256K1_ORDER:
        raise WalletError(
            "invalid private key: the key is not below the secp256k1 group order",
            user_message=_INVALID_KEY_USER_MESSAGE,
        )


def account_from_key(key: bytes) -> LocalAccount:
    """Build the signing account for a validated 32-byte private key."""
    check_private_key_range(key)
    account: LocalAccount = Account.from_key(key)
    return account


def private_key_hex(account: LocalAccount) -> str:
    """Return the account's private key as ``0x`` and 64 lowercase hex digits.

    This is the form stored in the OS keyring. Callers must never log it.
    """
    return "0x" + bytes(account.key).hex()
