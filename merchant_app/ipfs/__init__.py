"""Client of a Kubo node's RPC API: add, fetch and pin content, manage peers."""

from merchant_app.ipfs.client import (
    ADD_PARAMETERS,
    KuboClient,
    NodeIdentity,
    SwarmPeer,
)

__all__ = ["ADD_PARAMETERS", "KuboClient", "NodeIdentity", "SwarmPeer"]
