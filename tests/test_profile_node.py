"""Tests of the profile's local Kubo node, its swarm key and its peer address."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account.signers.local import LocalAccount

from merchant_app.errors import ConfigError
from merchant_app.ipfs import KuboClient
from merchant_app.profile_node import (
    IPFS_FOLDER,
    SWARM_KEY_FILE,
    ProfileNode,
    read_swarm_key,
)
from merchant_app.profile_rounds import ProfileConsortium, publish_peer_address
from merchant_app.services.anvil import AnvilChain
from merchant_app.services.kubo_config import format_swarm_key, generate_swarm_key
from merchant_app.settings import Settings
from merchant_app.wallet import Wallet
from tests.fixtures.chain import Consortium
from tests.fixtures.ipfs import process_exists


def test_read_swarm_key_reads_kubo_format(tmp_path: Path) -> None:
    key = generate_swarm_key()
    path = tmp_path / SWARM_KEY_FILE
    path.write_text(format_swarm_key(key), encoding="ascii")

    assert read_swarm_key(path) == key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "/key/swarm/psk/1.0.0/\n/base16/\n",
        "/key/swarm/psk/1.0.0/\n/base16/\n" + "zz" * 32 + "\n",
        "/key/swarm/psk/1.0.0/\n/base16/\n" + "ab" * 31 + "\n",
        "/key/swarm/psk/1.0.0/\n/base64/\n" + "ab" * 32 + "\n",
    ],
)
def test_read_swarm_key_rejects_invalid_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / SWARM_KEY_FILE
    path.write_text(text, encoding="ascii")

    with pytest.raises(ConfigError) as raised:
        read_swarm_key(path)

    assert str(path) in str(raised.value)
    assert SWARM_KEY_FILE in raised.value.user_message


def test_profile_node_uses_consortium_key(tmp_path: Path, ipfs_binary: Path) -> None:
    key = generate_swarm_key()
    (tmp_path / SWARM_KEY_FILE).write_text(format_swarm_key(key), encoding="ascii")
    node = ProfileNode(tmp_path)

    try:
        status = node.start()
        repo_key = (tmp_path / IPFS_FOLDER / "swarm.key").read_text(encoding="ascii")
        assert status.private_network
        assert repo_key == format_swarm_key(key)
        with KuboClient(status.api_url) as client:
            assert client.id().peer_id == status.peer_id
    finally:
        node.stop()

    assert status.pid is not None
    assert not process_exists(status.pid)


def test_profile_node_invalid_key_file_raises(tmp_path: Path) -> None:
    (tmp_path / SWARM_KEY_FILE).write_text("not a key\n", encoding="ascii")

    with pytest.raises(ConfigError):
        ProfileNode(tmp_path).start()

    assert not (tmp_path / IPFS_FOLDER).exists()


def open_consortium(
    tmp_path: Path,
    anvil_chain: AnvilChain,
    contract: str,
    account: LocalAccount,
    peer_address: str | None,
) -> ProfileConsortium:
    settings = Settings(
        name="shop",
        wallet_key_id="shop-test",
        chain_rpc_url=anvil_chain.rpc_url,
        contract_address=contract,
        # No IPFS call is made: publishing the address only uses the chain.
        kubo_api_url="http://127.0.0.1:9",
    )
    return ProfileConsortium(
        settings,
        Wallet(account, storage="memory"),
        tmp_path / "events.sqlite3",
        peer_address=peer_address,
    )


def test_publish_peer_address_sends_once(
    tmp_path: Path,
    anvil_chain: AnvilChain,
    consortium_factory: Callable[..., Consortium],
) -> None:
    consortium = consortium_factory(open_round=False)
    account = consortium.member_accounts[0]
    address = "/ip4/127.0.0.1/tcp/4001/p2p/QmLocalNode"
    contract = consortium.owner.address

    with open_consortium(tmp_path, anvil_chain, contract, account, address) as own:
        publish_peer_address(own)
        publish_peer_address(own)

    published = consortium.owner.peer_addresses_set()
    assert [event.peer_address for event in published] == [address]
    assert [event.member for event in published] == [account.address]


def test_publish_peer_address_skips_without_address(
    tmp_path: Path,
    anvil_chain: AnvilChain,
    consortium_factory: Callable[..., Consortium],
) -> None:
    consortium = consortium_factory(open_round=False)
    contract = consortium.owner.address
    member = consortium.member_accounts[0]
    outsider = consortium.outsider_account

    with open_consortium(tmp_path, anvil_chain, contract, member, None) as own:
        publish_peer_address(own)
    with open_consortium(
        tmp_path, anvil_chain, contract, outsider, "/ip4/127.0.0.1/tcp/1/p2p/QmX"
    ) as other:
        publish_peer_address(other)

    assert consortium.owner.peer_addresses_set() == []
