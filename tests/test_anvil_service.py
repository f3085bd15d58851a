"""Tests of AnvilChain: start, reuse, stop, persistent state, dev accounts."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from merchant_app.chain.artifact import load_artifact
from merchant_app.chain.client import ChainClient
from merchant_app.chain.consortium import ConsortiumContract, Phase
from merchant_app.errors import ServiceError, ToolNotFoundError
from merchant_app.services.anvil import AnvilChain, process_is_running
from tests.fixtures.chain import make_cid, rpc


def test_anvil_starts_with_chain_id(anvil_factory: Callable[..., AnvilChain]):
    chain = anvil_factory(chain_id=4242)

    served = int(str(rpc(chain.rpc_url, "eth_chainId")), 16)

    assert served == 4242
    assert chain.owns_process
    assert chain.rpc_url.startswith("http://127.0.0.1:")


def test_anvil_dev_accounts_funded(anvil_factory: Callable[..., AnvilChain]):
    chain = anvil_factory(accounts=3)

    accounts = chain.dev_accounts()

    listed = [str(address).lower() for address in rpc(chain.rpc_url, "eth_accounts")]
    assert [account.address.lower() for account in accounts] == listed
    for account in accounts:
        balance = int(
            str(rpc(chain.rpc_url, "eth_getBalance", account.address, "latest")), 16
        )
        assert balance > 10**21


def test_anvil_stop_ends_process(anvil_factory: Callable[..., AnvilChain]):
    chain = anvil_factory()
    pid = chain.pid
    assert pid is not None

    chain.stop()

    assert not process_is_running(pid)
    assert not chain.owns_process


def test_anvil_outside_app_process_group(anvil_factory: Callable[..., AnvilChain]):
    chain = anvil_factory()
    pid = chain.pid
    assert pid is not None

    # A Ctrl-C in a terminal signals the app's whole process group, so anvil
    # must be in a session of its own and stop only when stop() ends it.
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) != os.getpgid(0)


def test_anvil_reuses_running_node(
    anvil_factory: Callable[..., AnvilChain], tmp_path: Path
):
    first = anvil_factory()
    second = AnvilChain(tmp_path / "other.json", port=first.port)

    second.start()
    second.stop()

    assert not second.owns_process
    assert first.pid is not None
    assert process_is_running(first.pid)
    assert int(str(rpc(first.rpc_url, "eth_chainId")), 16) == first.chain_id


def test_anvil_reuse_wrong_chain_id_rejected(
    anvil_factory: Callable[..., AnvilChain], tmp_path: Path
):
    first = anvil_factory(chain_id=777)
    second = AnvilChain(tmp_path / "other.json", port=first.port, chain_id=31337)

    with pytest.raises(ServiceError, match="chain id 777"):
        second.start()


def test_anvil_missing_binary_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MERCHANT_APP_ANVIL", str(tmp_path / "no-such-anvil"))

    with pytest.raises(ToolNotFoundError, match="no-such-anvil"):
        AnvilChain(tmp_path / "state.json").start()


def test_anvil_state_survives_restart(
    anvil_factory: Callable[..., AnvilChain], tmp_path: Path
):
    state_file = tmp_path / "chain" / "state.json"
    abi = load_artifact("Consortium").abi
    chain = anvil_factory(state_file=state_file, chain_id=31337)
    owner_account, member_account = chain.dev_accounts()[:2]

    def client(url: str, account: object) -> ChainClient:
        return ChainClient(url, expected_chain_id=31337, account=account, abi=abi)  # type: ignore[arg-type]

    owner, _ = ConsortiumContract.deploy(
        client(chain.rpc_url, owner_account),
        min_updates=1,
        approval_threshold=1,
        round_seconds=3600,
    )
    owner.add_member(member_account.address, "shop")
    owner.add_member(owner_account.address, "owner shop")
    owner.open_first_round(make_cid("starter"))
    member = ConsortiumContract(client(chain.rpc_url, member_account), owner.address)
    member.submit_update(1, make_cid("update"), 9)
    chain.stop()
    assert state_file.is_file()

    restarted = anvil_factory(state_file=state_file, chain_id=31337)
    reader = ConsortiumContract(
        client(restarted.rpc_url, member_account), owner.address
    )

    state = reader.current_round()
    assert state.round_id == 1
    assert state.phase is Phase.OPEN
    assert state.submitted_updates == 1
    (event,) = reader.updates_submitted(1)
    assert event.cid == make_cid("update")
    assert event.weight == 9


def wait_for_state_block(state_file: Path, block: int, timeout: float = 15.0) -> None:
    """Wait until anvil's periodic dump has written ``block`` to the state file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            written = int(json.loads(state_file.read_text())["block"]["number"], 16)
        except (OSError, ValueError, KeyError):
            written = -1
        if written >= block:
            return
        time.sleep(0.2)
    raise AssertionError(f"{state_file} did not reach block {block} in {timeout} s")


def test_anvil_state_survives_kill(
    anvil_factory: Callable[..., AnvilChain], tmp_path: Path
):
    state_file = tmp_path / "state.json"
    chain = anvil_factory(state_file=state_file)
    sender, receiver = chain.dev_accounts()[:2]
    client = ChainClient(chain.rpc_url, expected_chain_id=31337, account=sender)
    result = client.transact(to=receiver.address, data=b"", value=12345)
    wait_for_state_block(state_file, result.block_number)
    assert chain.pid is not None

    os.kill(chain.pid, signal.SIGKILL)  # no clean stop, so no final dump
    chain.stop()
    restarted = anvil_factory(state_file=state_file)

    receipt = rpc(restarted.rpc_url, "eth_getTransactionReceipt", result.tx_hash)
    assert isinstance(receipt, dict)
    assert int(receipt["blockNumber"], 16) == result.block_number
