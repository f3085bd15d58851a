"""Tests of ChainClient against a real anvil: nonces, receipts, reverts, logs."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys import keys

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract
from merchant_app.chain.revert import revert_name
from merchant_app.errors import (
    ChainError,
    ChainUnreachableError,
    ReceiptTimeoutError,
    TransactionRevertedError,
    WrongChainError,
)
from merchant_app.services.anvil import DEFAULT_CHAIN_ID, AnvilChain
from merchant_app.services.ports import find_free_port
from tests.fixtures.chain import Consortium, make_cid, rpc


class SigningSpy(LocalAccount):
    """A real local account that counts the transactions it signs."""

    signed = 0

    def sign_transaction(self, transaction_dict, blobs=None):  # type: ignore[no-untyped-def]
        self.signed += 1
        return super().sign_transaction(transaction_dict, blobs=blobs)


def spy_of(account: LocalAccount) -> SigningSpy:
    return SigningSpy(keys.PrivateKey(account.key), Account)


def pending_nonce(chain: AnvilChain, address: str) -> int:
    return int(
        str(rpc(chain.rpc_url, "eth_getTransactionCount", address, "pending")), 16
    )


def test_nonces_for_quick_sends(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=2)
    member = consortium.members[0]
    client = member.client

    hashes = [
        client.send(
            to=member.address,
            data=member.encode("setPeerAddress", f"/ip4/127.0.0.1/tcp/{4000 + i}"),
        )
        for i in range(6)
    ]
    results = [client.wait_for_receipt(tx_hash) for tx_hash in hashes]

    nonces = [int(client.w3.eth.get_transaction(h)["nonce"]) for h in hashes]
    assert nonces == list(range(nonces[0], nonces[0] + 6))
    assert all(result.gas_used > 0 for result in results)
    addresses = [event.peer_address for event in member.peer_addresses_set()]
    assert addresses == [f"/ip4/127.0.0.1/tcp/{4000 + i}" for i in range(6)]


def test_nonces_for_sends_from_threads(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=2)
    member = consortium.members[1]
    hashes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send_two(worker: int) -> None:
        try:
            for step in range(2):
                data = member.encode("setPeerAddress", f"/dns4/w{worker}-{step}")
                tx_hash = member.client.send(to=member.address, data=data)
                with lock:
                    hashes.append(tx_hash)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=send_two, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for tx_hash in hashes:
        member.client.wait_for_receipt(tx_hash)
    assert len(member.peer_addresses_set()) == 8


def test_nonce_resync_after_outside_send(
    anvil_chain: AnvilChain,
    consortium_factory: Callable[..., Consortium],
    client_for: Callable[[LocalAccount], ChainClient],
    caplog: pytest.LogCaptureFixture,
):
    consortium = consortium_factory(members=2)
    member = consortium.members[0]
    member.set_peer_address("/ip4/127.0.0.1/tcp/1")
    # A second client with the same key moves the nonce behind the first one's back.
    other = ConsortiumContract(
        client_for(consortium.member_accounts[0]), member.address
    )
    other.set_peer_address("/ip4/127.0.0.1/tcp/2")

    with caplog.at_level("WARNING", logger="merchant_app.chain.client"):
        result = member.set_peer_address("/ip4/127.0.0.1/tcp/3")

    assert "resyncing" in caplog.text
    address = consortium.member_accounts[0].address
    assert (
        pending_nonce(anvil_chain, address)
        == int(member.client.w3.eth.get_transaction(result.tx_hash)["nonce"]) + 1
    )


def test_receipt_timeout_keeps_hash_and_resumes(
    anvil_factory: Callable[..., AnvilChain],
):
    chain = anvil_factory(no_mining=True)
    sender, receiver = chain.dev_accounts()[:2]
    client = ChainClient(
        chain.rpc_url, expected_chain_id=DEFAULT_CHAIN_ID, account=sender
    )
    tx_hash = client.send(to=receiver.address, data=b"", value=1)

    with pytest.raises(ReceiptTimeoutError) as info:
        client.wait_for_receipt(tx_hash, timeout=0.3)
    assert info.value.tx_hash == tx_hash

    rpc(chain.rpc_url, "evm_mine")
    result = client.wait_for_receipt(info.value.tx_hash, timeout=10)
    assert result.tx_hash == tx_hash
    assert result.gas_used == 21_000


def test_reverted_receipt_decoded(anvil_factory: Callable[..., AnvilChain]):
    chain = anvil_factory()
    owner_account, member_account = chain.dev_accounts()[:2]
    abi = load_artifact("Consortium").abi

    def client(account: LocalAccount) -> ChainClient:
        return ChainClient(
            chain.rpc_url, expected_chain_id=DEFAULT_CHAIN_ID, account=account, abi=abi
        )

    owner, _ = ConsortiumContract.deploy(
        client(owner_account), min_updates=1, approval_threshold=1, round_seconds=60
    )
    owner.add_member(member_account.address, "shop")
    owner.add_member(owner_account.address, "owner shop")
    owner.open_first_round(make_cid("starter"))
    member = ConsortiumContract(client(member_account), owner.address)

    # Both submissions pass the simulation and land in one block; the second
    # reverts on chain.
    rpc(chain.rpc_url, "evm_setAutomine", False)
    first = member.client.send(
        to=owner.address,
        data=member.encode("submitUpdate", 1, 0x55, make_cid("a").digest, 5),
    )
    second = member.client.send(
        to=owner.address,
        data=member.encode("submitUpdate", 1, 0x55, make_cid("b").digest, 5),
    )
    rpc(chain.rpc_url, "evm_mine")
    rpc(chain.rpc_url, "evm_setAutomine", True)

    assert member.client.wait_for_receipt(first).gas_used > 0
    with pytest.raises(TransactionRevertedError) as info:
        member.client.wait_for_receipt(second)
    assert revert_name(info.value.reason) == "AlreadySubmitted"
    assert info.value.tx_hash == second


def test_error_string_revert_decoded(
    dev_accounts: list[LocalAccount],
    anvil_chain: AnvilChain,
):
    artifact = load_artifact("NaiveRegistry")
    client = ChainClient(
        anvil_chain.rpc_url,
        expected_chain_id=DEFAULT_CHAIN_ID,
        account=dev_accounts[0],
        abi=artifact.abi,
    )
    deployed = client.transact(to=None, data=artifact.bytecode)
    assert deployed.contract_address is not None
    registry = client.w3.eth.contract(
        address=deployed.contract_address, abi=artifact.abi
    )
    data = registry.encode_abi("submitUpdate", args=[1, "bafy", 5])

    with pytest.raises(TransactionRevertedError) as info:
        client.send(to=deployed.contract_address, data=data)

    assert info.value.reason == "not a member"
    assert info.value.tx_hash is None


def test_wrong_chain_rejected_before_signing(
    anvil_chain: AnvilChain, dev_accounts: list[LocalAccount]
):
    account = spy_of(dev_accounts[0])
    client = ChainClient(anvil_chain.rpc_url, expected_chain_id=1, account=account)
    nonce_before = pending_nonce(anvil_chain, account.address)

    with pytest.raises(WrongChainError) as info:
        client.send(to=dev_accounts[1].address, data=b"", value=1)

    assert "31337" in str(info.value)
    assert account.signed == 0
    assert pending_nonce(anvil_chain, account.address) == nonce_before


def test_right_chain_signs(anvil_chain: AnvilChain, dev_accounts: list[LocalAccount]):
    account = spy_of(dev_accounts[2])
    client = ChainClient(
        anvil_chain.rpc_url, expected_chain_id=DEFAULT_CHAIN_ID, account=account
    )

    result = client.transact(to=dev_accounts[1].address, data=b"", value=1)

    assert account.signed == 1
    assert result.gas_used == 21_000


def test_unreachable_rpc_raises(dev_accounts: list[LocalAccount]):
    url = f"http://127.0.0.1:{find_free_port()}"
    client = ChainClient(
        url, expected_chain_id=DEFAULT_CHAIN_ID, account=dev_accounts[0]
    )

    with pytest.raises(ChainUnreachableError) as check:
        client.check_chain()
    with pytest.raises(ChainUnreachableError):
        client.send(to=dev_accounts[1].address, data=b"", value=1)
    assert url in str(check.value)


def test_get_logs_in_small_chunks(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3)
    for index, member in enumerate(consortium.members):
        member.submit_update(1, make_cid(f"chunked {index}"), 1 + index)
    whole = consortium.owner.updates_submitted(1)

    consortium.owner.client.log_chunk_blocks = 1
    chunked = consortium.owner.updates_submitted(1)

    assert len(whole) == 3
    assert chunked == whole
    assert [event.weight for event in chunked] == [1, 2, 3]


def test_send_without_account_rejected(anvil_chain: AnvilChain):
    client = ChainClient(anvil_chain.rpc_url, expected_chain_id=DEFAULT_CHAIN_ID)

    with pytest.raises(ChainError, match="no account"):
        client.send(to="0x" + "11" * 20, data=b"")
