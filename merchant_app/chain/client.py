"""A blocking JSON-RPC client that signs and sends contract transactions.

:class:`ChainClient` wraps the sync ``Web3`` HTTP client. It checks the node's
chain id before it signs anything, signs EIP-1559 transactions locally with
the merchant's key, hands out nonces from a local counter, waits for receipts
with a timeout that can be resumed, and turns reverts into
:class:`TransactionRevertedError` with the decoded custom error. Every
third-party exception is converted here, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import LogReceipt, Nonce, TxParams, Wei

from merchant_app.chain.revert import RevertDecoder
from merchant_app.errors import (
    ChainError,
    ChainUnreachableError,
    ReceiptTimeoutError,
    TransactionRevertedError,
    WrongChainError,
)

logger = logging.getLogger(__name__)

DEFAULT_LOG_CHUNK_BLOCKS = 2_000
# estimate_gas is exact for the state it ran on; the margin covers state that
# changes before the transaction is mined (another member's submission).
GAS_MARGIN_PERCENT = 25
_NONCE_ERROR_MARKERS = ("nonce too low", "nonce too high", "already known")


@dataclass(frozen=True)
class TxResult:
    """Outcome of a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    contract_address: str | None = None
    logs: list[LogReceipt] = field(default_factory=list, repr=False, compare=False)


class NonceManager:
    """Local nonce counter for one sender, safe for sends in quick succession.

    The counter is seeded from the node's pending nonce on first use and after
    :meth:`resync`. Callers hold :attr:`lock` from :meth:`next_nonce` until
    the signed transaction is sent, so nonces reach the node in order.
    """

    def __init__(self, fetch_pending_nonce: Callable[[], int]) -> None:
        self._fetch = fetch_pending_nonce
        self._next: int | None = None
        self.lock = threading.RLock()

    def next_nonce(self) -> int:
        with self.lock:
            if self._next is None:
                self._next = self._fetch()
            nonce = self._next
            self._next += 1
            return nonce

    def resync(self) -> None:
        """Forget the counter; the next nonce is read from the node again."""
        with self.lock:
            self._next = None


class ChainClient:
    """Signs, sends and reads for one account on one chain."""

    def __init__(
        self,
        rpc_url: str,
        *,
        expected_chain_id: int,
        account: LocalAccount | None = None,
        abi: list[dict[str, Any]] | None = None,
        request_timeout: float = 10.0,
        receipt_timeout: float = 120.0,
        poll_interval: float = 0.1,
        max_priority_fee_wei: int | None = None,
        log_chunk_blocks: int = DEFAULT_LOG_CHUNK_BLOCKS,
    ) -> None:
        if log_chunk_blocks < 1:
            raise ValueError(
                f"log_chunk_blocks must be at least 1, got {log_chunk_blocks}"
            )
        self.rpc_url = rpc_url
        self.expected_chain_id = expected_chain_id
        self.account = account
        self.receipt_timeout = receipt_timeout
        self.poll_interval = poll_interval
        self.max_priority_fee_wei = max_priority_fee_wei
        self.log_chunk_blocks = log_chunk_blocks
        self.decoder = RevertDecoder(abi or [])
        self.w3 = Web3(
            Web3.HTTPProvider(
                rpc_url,
                request_kwargs={"timeout": request_timeout},
                exception_retry_configuration=None,
            )
        )
        self._chain_checked = False
        self._nonces = NonceManager(self._pending_nonce)

    # -- chain identity ------------------------------------------------

    def check_chain(self) -> int:
        """Return the node's chain id after checking it is the expected one.

        Raises:
            ChainUnreachableError: when no node responds at the RPC URL.
            WrongChainError: when the node serves another chain.
        """
        with self._rpc_errors("eth_chainId"):
            served = int(self.w3.eth.chain_id)
        if served != self.expected_chain_id:
            raise WrongChainError(
                f"the node at {self.rpc_url} serves chain id {served}, expected "
                f"{self.expected_chain_id}; check the RPC URL and the chain id "
                f"in the settings"
            )
        self._chain_checked = True
        return served

    def _ensure_chain(self) -> None:
        if not self._chain_checked:
            self.check_chain()

    # -- reads ---------------------------------------------------------

    def call(self, to: str, data: bytes | str, *, sender: str | None = None) -> bytes:
        """Run ``eth_call`` and return the raw result.

        Raises:
            TransactionRevertedError: with the decoded reason when it reverts.
        """
        params: TxParams = {"to": Web3.to_checksum_address(to), "data": HexBytes(data)}
        if sender is not None:
            params["from"] = Web3.to_checksum_address(sender)
        elif self.account is not None:
            params["from"] = self.account.address
        with self._rpc_errors("eth_call"), self._revert_errors():
            return bytes(self.w3.eth.call(params))

    def block_number(self) -> int:
        with self._rpc_errors("eth_blockNumber"):
            return int(self.w3.eth.block_number)

    def get_logs(
        self,
        address: str,
        topics: list[Any],
        *,
        from_block: int = 0,
        to_block: int | None = None,
    ) -> list[LogReceipt]:
        """Read logs in chunks of ``log_chunk_blocks`` blocks, oldest first.

        ``to_block`` defaults to the latest block at the time of the call.
        """
        last = self.block_number() if to_block is None else to_block
        logs: list[LogReceipt] = []
        start = from_block
        while start <= last:
            end = min(start + self.log_chunk_blocks - 1, last)
            with self._rpc_errors("eth_getLogs"):
                chunk = self.w3.eth.get_logs(
                    {
                        "address": Web3.to_checksum_address(address),
                        "topics": topics,
                        "fromBlock": start,
                        "toBlock": end,
                    }
                )
            logs.extend(chunk)
            start = end + 1
        return logs

    # -- writes --------------------------------------------------------

    def transact(
        self,
        *,
        to: str | None,
        data: bytes | str,
        value: int = 0,
        gas: int | None = None,
        timeout: float | None = None,
    ) -> TxResult:
        """Send a transaction and wait for its receipt; see :meth:`send`."""
        tx_hash = self.send(to=to, data=data, value=value, gas=gas)
        return self.wait_for_receipt(tx_hash, timeout=timeout)

    def send(
        self,
        *,
        to: str | None,
        data: bytes | str,
        value: int = 0,
        gas: int | None = None,
    ) -> str:
        """Check, sign and send a transaction; return its hash as hex.

        ``to=None`` deploys a contract. The call is simulated first, so a
        transaction that would revert raises before any gas is spent.

        Raises:
            WrongChainError: before signing, when the node serves another chain.
            TransactionRevertedError: when the simulation reverts.
            ChainUnreachableError, ChainError: when the node fails.
        """
        account = self._require_account()
        self._ensure_chain()

        # Step 1: simulate, so a revert reaches the user without costing gas.
        # NOTE: the simulation runs on the latest block, so a transaction that
        # depends on an unmined one sent just before it can fail here; wait for
        # the earlier receipt first.
        params: TxParams = {
            "from": account.address,
            "data": HexBytes(data),
            "value": Wei(value),
        }
        if to is not None:
            params["to"] = Web3.to_checksum_address(to)
        with self._rpc_errors("eth_call"), self._revert_errors():
            self.w3.eth.call(params)
            if gas is None:
                estimate = self.w3.eth.estimate_gas(params)
                gas = estimate + estimate * GAS_MARGIN_PERCENT // 100

        # Step 2: fees from the latest base fee.
        priority_fee, max_fee = self._fees()
        params.update(
            {
                "gas": gas,
                "maxPriorityFeePerGas": Wei(priority_fee),
                "maxFeePerGas": Wei(max_fee),
                "chainId": self.expected_chain_id,
                "type": 2,
            }
        )

        # Step 3: nonce, sign and send under the nonce lock.
        with self._nonces.lock:
            return self._sign_and_send(account, params)

    def wait_for_receipt(
        self, tx_hash: str, *, timeout: float | None = None
    ) -> TxResult:
        """Wait until ``tx_hash`` is mined; call again after a timeout to resume.

        Raises:
            ReceiptTimeoutError: carrying ``tx_hash`` when no receipt came in time.
            TransactionRevertedError: when the transaction was mined but reverted.
        """
        limit = self.receipt_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            receipt = self._receipt_or_none(tx_hash)
            if receipt is not None:
                break
            if time.monotonic() >= deadline:
                logger.warning("no receipt for tx %s after %.1f s", tx_hash, limit)
                raise ReceiptTimeoutError(
                    f"transaction {tx_hash} was not mined within {limit:.1f} s; "
                    f"wait again with wait_for_receipt({tx_hash!r})",
                    tx_hash=tx_hash,
                )
            time.sleep(self.poll_interval)

        result = TxResult(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            contract_address=receipt.get("contractAddress"),
            logs=list(receipt["logs"]),
        )
        if receipt["status"] != 1:
            reason = self._replay_reason(tx_hash, result.block_number)
            logger.warning(
                "tx %s reverted in block %d: %s", tx_hash, result.block_number, reason
            )
            raise TransactionRevertedError(
                f"transaction {tx_hash} reverted in block {result.block_number}: "
                f"{reason}",
                reason=reason,
                tx_hash=tx_hash,
            )
        logger.info(
            "tx %s mined in block %d, gas used %d",
            tx_hash,
            result.block_number,
            result.gas_used,
        )
        return result

    # -- internals -----------------------------------------------------

    def _require_account(self) -> LocalAccount:
        if self.account is None:
            raise ChainError(
                "this chain client has no account, so it cannot send transactions",
                user_message="No wallet is open, so nothing can be sent.",
            )
        return self.account

    def _pending_nonce(self) -> int:
        account = self._require_account()
        with self._rpc_errors("eth_getTransactionCount"):
            return int(self.w3.eth.get_transaction_count(account.address, "pending"))

    def _fees(self) -> tuple[int, int]:
        with self._rpc_errors("eth_getBlockByNumber"):
            block = self.w3.eth.get_block("latest")
            base_fee = int(block.get("baseFeePerGas", 0))
            if self.max_priority_fee_wei is not None:
                priority_fee = self.max_priority_fee_wei
            else:
                priority_fee = int(self.w3.eth.max_priority_fee)
        # Twice the base fee keeps the transaction valid through several
        # blocks of rising base fee (each block raises it by at most 12.5%).
        return priority_fee, 2 * base_fee + priority_fee

    def _sign_and_send(self, account: LocalAccount, params: TxParams) -> str:
        for attempt in (1, 2):
            params["nonce"] = Nonce(self._nonces.next_nonce())
            signed = account.sign_transaction(params)  # type: ignore[arg-type]
            try:
                with self._rpc_errors("eth_sendRawTransaction"):
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            except ChainError as exc:
                # The reserved nonce was not used: read it from the node again.
                self._nonces.resync()
                if attempt == 1 and _is_nonce_error(exc):
                    logger.warning(
                        "nonce %d rejected for %s; resyncing and retrying",
                        params["nonce"],
                        account.address,
                    )
                    continue
                raise
            hex_hash = "0x" + bytes(tx_hash).hex()
            logger.info(
                "sent tx %s from %s nonce %d",
                hex_hash,
                account.address,
                params["nonce"],
            )
            return hex_hash
        raise AssertionError("unreachable")

    def _receipt_or_none(self, tx_hash: str) -> Any:
        try:
            with self._rpc_errors("eth_getTransactionReceipt"):
                return self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
        except TransactionNotFound:
            return None

    def _replay_reason(self, tx_hash: str, block_number: int) -> str:
        """Re-run a reverted transaction on the state after its block."""
        with self._rpc_errors("eth_getTransactionByHash"):
            tx = self.w3.eth.get_transaction(HexBytes(tx_hash))
        params: TxParams = {
            "from": tx["from"],
            "data": tx["input"],
            "value": tx["value"],
            "gas": tx["gas"],
        }
        if tx.get("to"):
            params["to"] = tx["to"]
        try:
            with self._rpc_errors("eth_call"), self._revert_errors(tx_hash=tx_hash):
                self.w3.eth.call(params, block_identifier=block_number)
        except TransactionRevertedError as exc:
            return exc.reason
        return "reverted, but the replay succeeded (out of gas or state changed)"

    @contextmanager
    def _revert_errors(self, *, tx_hash: str | None = None) -> Iterator[None]:
        try:
            yield
        except ContractLogicError as exc:
            reason = self.decoder.decode(
                exc.data if isinstance(exc.data, str) else None
            )
            raise TransactionRevertedError(
                f"the contract rejected the call: {reason}",
                reason=reason,
                tx_hash=tx_hash,
                user_message=f"The consortium contract rejected the request: {reason}.",
            ) from exc

    @contextmanager
    def _rpc_errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise ChainUnreachableError(
                f"{operation} on {self.rpc_url} failed: {exc}; check that the node "
                f"runs and the RPC URL is right"
            ) from exc
        except (ContractLogicError, TransactionNotFound):
            raise
        except Web3RPCError as exc:
            raise ChainError(f"{operation} on {self.rpc_url} failed: {exc}") from exc
        except Web3Exception as exc:
            raise ChainError(f"{operation} on {self.rpc_url} failed: {exc}") from exc


def _is_nonce_error(exc: ChainError) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _NONCE_ERROR_MARKERS)
