"""The merchant's private key: created or imported, kept in the OS keyring or a
password-encrypted keystore file, and used through a signer that hides it.
"""

from merchant_app.wallet.keyring_store import (
    SERVICE_NAME,
    BackendInfo,
    KeyringStore,
    describe_backend,
    resolve_backend,
)
from merchant_app.wallet.keys import generate_private_key, parse_private_key
from merchant_app.wallet.keystore import (
    DEFAULT_SCRYPT_N,
    MIN_PASSWORD_LENGTH,
    KeystoreFileStore,
    decrypt_keystore,
    encrypt_account,
)
from merchant_app.wallet.wallet import (
    MEMORY_STORAGE,
    KeyStorage,
    ProfileWallet,
    Wallet,
)

__all__ = [
    "DEFAULT_SCRYPT_N",
    "MEMORY_STORAGE",
    "MIN_PASSWORD_LENGTH",
    "SERVICE_NAME",
    "BackendInfo",
    "KeyStorage",
    "KeyringStore",
    "KeystoreFileStore",
    "ProfileWallet",
    "Wallet",
    "decrypt_keystore",
    "describe_backend",
    "encrypt_account",
    "generate_private_key",
    "parse_private_key",
    "resolve_backend",
]
