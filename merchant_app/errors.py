"""Exceptions of the merchant app.

Every error the app raises on purpose derives from :class:`AppError`. Each
external system has its own family, so callers can catch what they can
handle. An error carries two texts: ``str(exc)`` is the technical message for
logs and engineers, and :attr:`AppError.user_message` is a short sentence a
merchant can act on. Adapters convert third-party exceptions once, at the
boundary, chained with ``raise ... from exc``.
"""

from __future__ import annotations


class AppError(Exception):
    """Root of every error the merchant app raises on purpose."""

    default_user_message = "Something went wrong. The log file has the details."

    def __init__(self, message: str, *, user_message: str | None = None) -> None:
        super().__init__(message)
        self.user_message = user_message or self.default_user_message


class Cancelled(AppError):
    """Raised when the user or a shutdown cancels long work.

    Cancel paths end with this exception; the GUI shows nothing for it.
    """

    default_user_message = "Cancelled."


class ConfigError(AppError):
    """A setting or command-line value is invalid or missing."""

    default_user_message = "A setting is invalid. Check the settings and try again."


class ServiceError(AppError):
    """A local service (Kubo daemon, anvil chain) failed to start or stop."""

    default_user_message = "A local service could not be started."


class ToolNotFoundError(ServiceError):
    """A binary the app runs (ipfs, anvil, node) is not installed."""

    default_user_message = (
        "A required program is missing. Run scripts/setup.sh to install it."
    )


class IpfsError(AppError):
    """Talking to the IPFS (Kubo) node failed."""

    default_user_message = "The IPFS node did not respond as expected."


class IpfsUnreachableError(IpfsError):
    """No Kubo RPC API responds at the configured address."""

    default_user_message = (
        "The IPFS node cannot be reached. Check that it is running and that the "
        "API address in the settings is right."
    )


class IpfsTimeoutError(IpfsError):
    """A Kubo request did not finish within its timeout."""

    default_user_message = "The IPFS node took too long to respond."


class IpfsNotFoundError(IpfsError):
    """Content with the requested CID could not be found in time."""

    default_user_message = "A file could not be found on the IPFS network."


class IpfsResponseError(IpfsError):
    """Kubo responded with an error or a body the client cannot parse."""


class IpfsWrongPortError(IpfsUnreachableError):
    """The address given is a Kubo gateway, not its RPC API."""

    default_user_message = (
        "That address is the IPFS gateway, not its API. Use the API address "
        "(port 5001 by default)."
    )


class ContentTooLargeError(IpfsError):
    """Fetched content is larger than the caller allows."""

    default_user_message = "A file on IPFS is larger than the allowed size."


class ChainError(AppError):
    """Talking to the Ethereum node or the contract failed."""

    default_user_message = "The blockchain node did not respond as expected."


class ChainUnreachableError(ChainError):
    """No JSON-RPC endpoint responds at the configured URL."""

    default_user_message = (
        "The blockchain node cannot be reached. Check the RPC URL in the settings."
    )


class WrongChainError(ChainError):
    """The RPC endpoint serves another chain than the one configured."""

    default_user_message = (
        "The blockchain node serves a different network than the one configured."
    )


class TransactionRevertedError(ChainError):
    """The contract rejected a call or transaction.

    ``reason`` is the decoded custom error or revert string, ``tx_hash`` the
    transaction's hash when one was sent.
    """

    default_user_message = "The consortium contract rejected the request."

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        tx_hash: str | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.reason = reason
        self.tx_hash = tx_hash


class ReceiptTimeoutError(ChainError):
    """A sent transaction was not mined in time; ``tx_hash`` lets the wait resume."""

    default_user_message = "The transaction was sent but is not confirmed yet."

    def __init__(
        self, message: str, *, tx_hash: str, user_message: str | None = None
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.tx_hash = tx_hash


class WalletError(AppError):
    """The merchant's key could not be created, read, stored or exported."""

    default_user_message = "The wallet could not be opened."


class KeyringUnavailableError(WalletError):
    """No usable OS keyring backend exists on this computer."""

    default_user_message = (
        "No system keyring is available on this computer. Use a "
        "password-protected keystore file instead."
    )


class KeyringLockedError(WalletError):
    """The keyring exists but is locked, or the user refused to unlock it."""

    default_user_message = "The system keyring is locked. Unlock it and try again."


class KeyNotFoundError(WalletError):
    """No key is stored for this profile."""

    default_user_message = "No wallet key is stored for this profile."


class KeyExistsError(WalletError):
    """A key is already stored; the app never replaces one silently."""

    default_user_message = (
        "This profile already has a wallet key. Export it before replacing it."
    )


class InputDataError(AppError):
    """Data from the merchant (a CSV file, an edited row) is invalid."""

    default_user_message = "The data is invalid."


class ModelError(AppError):
    """A model file or update is invalid, or training failed."""

    default_user_message = "The model could not be used."


class WrongPasswordError(WalletError):
    """A keystore's password is wrong, or its encrypted key is damaged.

    Keystore files (Web3 Secret Storage v3) carry a MAC over the encrypted key,
    and a MAC mismatch cannot tell a wrong password from a corrupted file.
    """

    default_user_message = "The password is wrong. Check it and try again."


class InvalidRowError(InputDataError):
    """A row of a CSV file or an edited event has an invalid value.

    ``line`` is the 1-based line in the file (None for an edited row),
    ``column`` the column name and ``value`` the text as given. Each is None
    where the error is not about one field.
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
        user_message: str | None = None,
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.line = line
        self.column = column
        self.value = value


class InvalidModelFileError(ModelError):
    """A model or update file fetched from IPFS failed validation.

    ``reason`` is a short code naming the failed rule (for example ``"shape"``,
    ``"not_psd"`` or ``"round"``), so callers and logs can group failures. The
    message names the value.
    """

    default_user_message = (
        "A file shared by another merchant is invalid and was left out."
    )

    def __init__(
        self, message: str, *, reason: str, user_message: str | None = None
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.reason = reason


class InvalidUpdateError(InvalidModelFileError):
    """A merchant's update file failed validation and is excluded from the round."""


class InvalidSettingError(ConfigError):
    """A profile setting has an invalid value; ``field`` names the setting."""

    def __init__(
        self, message: str, *, field: str, user_message: str | None = None
    ) -> None:
        super().__init__(message, user_message=user_message)
        self.field = field


class StoreError(AppError):
    """The merchant's SQLite database could not be read or written."""

    default_user_message = (
        "The app's data file could not be read or written. Check the free disk "
        "space and that no other program has the file open."
    )
