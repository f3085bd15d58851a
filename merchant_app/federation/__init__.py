"""Federated training across merchants: exact federated implicit ALS.

Modules, in the order a round uses them: :mod:`.parameters` (what a
consortium fixes), :mod:`.starter` (the round-1 base model),
:mod:`.local_update` (a merchant's update), :mod:`.update_file` and
:mod:`.shared_model` (the file formats), :mod:`.validation` (checks on every
fetched file) and :mod:`.aggregation` (the next shared model). docs/federation.md
describes the method and docs/privacy.md what an update reveals.
"""
