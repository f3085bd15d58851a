"""Tests of the Consortium contract's rules, through web3.py on a real anvil."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from merchant_app.chain.cid import CODEC_DAG_PB, CODEC_RAW, Cid
from merchant_app.chain.consortium import (
    AggregateApproved,
    ApprovalThresholdLowered,
    Phase,
    RoundClosed,
    RoundFinalized,
    RoundOpened,
    UpdateSubmitted,
)
from merchant_app.chain.revert import revert_name
from merchant_app.errors import TransactionRevertedError
from merchant_app.services.anvil import AnvilChain
from tests.fixtures.chain import Consortium, make_cid, rpc

# Gas target of one update submission, averaged over the members of a round.
SUBMISSION_GAS_TARGET = 60_000


def increase_time(chain: AnvilChain, seconds: int) -> None:
    rpc(chain.rpc_url, "evm_increaseTime", seconds)
    rpc(chain.rpc_url, "evm_mine")


def submit_all(consortium: Consortium, round_id: int, count: int) -> None:
    for index, member in enumerate(consortium.members[:count]):
        member.submit_update(
            round_id, make_cid(f"update {round_id} {index}"), 10 + index
        )


def rejected(action: Callable[[], object]) -> TransactionRevertedError:
    with pytest.raises(TransactionRevertedError) as info:
        action()
    return info.value


def test_submit_by_non_member_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()

    error = rejected(lambda: consortium.outsider.submit_update(1, make_cid("x"), 5))

    assert revert_name(error.reason) == "NotMember"
    assert consortium.outsider_account.address in error.reason
    assert error.tx_hash is None  # rejected by the simulation, no gas spent


def test_submit_twice_in_round_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()
    member = consortium.members[0]
    member.submit_update(1, make_cid("first"), 5)

    error = rejected(lambda: member.submit_update(1, make_cid("second"), 5))

    assert revert_name(error.reason) == "AlreadySubmitted"
    assert consortium.owner.current_round().submitted_updates == 1


def test_submit_to_wrong_round_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()

    error = rejected(lambda: consortium.members[0].submit_update(2, make_cid("x"), 5))

    assert error.reason == "WrongRound(given=2, current=1)"


def test_submit_before_first_round_rejected(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(open_round=False)

    error = rejected(lambda: consortium.members[0].submit_update(1, make_cid("x"), 5))

    assert revert_name(error.reason) == "NotStarted"


def test_submit_invalid_values_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()
    member = consortium.members[0]
    digest = make_cid("x").digest

    # The Cid class rejects these codecs, so the raw call data is built here.
    cases = {
        "UnsupportedCodec(codec=113)": member.encode(
            "submitUpdate", 1, 0x71, digest, 5
        ),
        "EmptyDigest()": member.encode("submitUpdate", 1, CODEC_RAW, bytes(32), 5),
        "ZeroWeight()": member.encode("submitUpdate", 1, CODEC_RAW, digest, 0),
    }
    for expected, data in cases.items():
        error = rejected(lambda data=data: member.client.call(member.address, data))
        assert error.reason == expected


def test_close_before_deadline_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=2)
    submit_all(consortium, 1, 2)

    error = rejected(lambda: consortium.members[0].close_round(1))

    assert revert_name(error.reason) == "TooEarly"
    assert consortium.owner.current_round().phase is Phase.OPEN


def test_close_after_deadline_needs_minimum(
    anvil_chain: AnvilChain, consortium_factory: Callable[..., Consortium]
):
    consortium = consortium_factory(members=3, min_updates=2, round_seconds=600)
    submit_all(consortium, 1, 1)
    increase_time(anvil_chain, 601)

    error = rejected(lambda: consortium.members[0].close_round(1))

    assert error.reason == "TooFewUpdates(submitted=1, required=2)"
    assert consortium.owner.current_round().phase is Phase.OPEN


def test_close_after_deadline_with_minimum(
    anvil_chain: AnvilChain, consortium_factory: Callable[..., Consortium]
):
    consortium = consortium_factory(members=3, min_updates=2, round_seconds=600)
    submit_all(consortium, 1, 2)
    increase_time(anvil_chain, 601)

    result = consortium.members[2].close_round(1)

    state = consortium.owner.current_round()
    assert state.phase is Phase.CLOSED
    assert state.submitted_updates == 2
    closed = [
        e for e in consortium.owner.events_in(result) if isinstance(e, RoundClosed)
    ]
    assert len(closed) == 1
    assert closed[0].round_id == 1
    assert closed[0].submitted_updates == 2
    assert closed[0].closed_by == consortium.member_addresses()[2]


def test_close_by_non_member_rejected(
    anvil_chain: AnvilChain, consortium_factory: Callable[..., Consortium]
):
    consortium = consortium_factory(members=3, min_updates=2, round_seconds=600)
    submit_all(consortium, 1, 2)
    increase_time(anvil_chain, 601)

    error = rejected(lambda: consortium.outsider.close_round(1))

    assert revert_name(error.reason) == "NotMember"


def test_round_closes_when_all_submitted(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3)
    submit_all(consortium, 1, 2)
    assert consortium.owner.current_round().phase is Phase.OPEN

    last = consortium.members[2].submit_update(1, make_cid("last"), 7)

    assert consortium.owner.current_round().phase is Phase.CLOSED
    events = consortium.owner.events_in(last)
    assert [type(event) for event in events] == [UpdateSubmitted, RoundClosed]
    late = rejected(lambda: consortium.members[2].close_round(1))
    assert revert_name(late.reason) == "RoundNotOpen"


def test_update_submitted_event_fields(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3)
    cid = make_cid("update", CODEC_DAG_PB)

    result = consortium.members[1].submit_update(1, cid, 123_456)

    (event,) = consortium.owner.updates_submitted(1)
    assert event.round_id == 1
    assert event.member == consortium.member_addresses()[1]
    assert event.cid == cid
    assert event.weight == 123_456
    assert event.meta.tx_hash == result.tx_hash
    assert event.meta.block_number == result.block_number
    assert consortium.owner.updates_submitted(2) == []


def test_round_finalizes_at_threshold(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=2)
    submit_all(consortium, 1, 3)
    aggregate = make_cid("aggregate 1")
    consortium.members[0].propose_aggregate(1, aggregate)
    consortium.members[0].approve_aggregate(1, aggregate)
    assert consortium.owner.current_round().phase is Phase.CLOSED

    result = consortium.members[1].approve_aggregate(1, aggregate)

    events = consortium.owner.events_in(result)
    assert [type(event) for event in events] == [
        AggregateApproved,
        RoundFinalized,
        RoundOpened,
    ]
    approved, finalized, opened = events
    assert isinstance(approved, AggregateApproved)
    assert approved.approvals == 2
    assert approved.member == consortium.member_addresses()[1]
    assert isinstance(finalized, RoundFinalized)
    assert finalized.round_id == 1
    assert finalized.cid == aggregate
    assert isinstance(opened, RoundOpened)
    assert opened.round_id == 2
    assert opened.base_cid == aggregate
    state = consortium.owner.current_round()
    assert state.round_id == 2
    assert state.phase is Phase.OPEN
    assert state.submitted_updates == 0
    assert state.deadline == opened.deadline


def test_round_two_accepts_updates_after_finalize(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=2, min_updates=2, approval_threshold=2)
    submit_all(consortium, 1, 2)
    aggregate = make_cid("aggregate 1")
    consortium.members[1].propose_aggregate(1, aggregate)
    for member in consortium.members:
        member.approve_aggregate(1, aggregate)

    consortium.members[0].submit_update(2, make_cid("update 2 0"), 3)

    assert consortium.owner.current_round().submitted_updates == 1
    old = rejected(lambda: consortium.members[1].submit_update(1, make_cid("y"), 3))
    assert old.reason == "WrongRound(given=1, current=2)"


def test_wrong_proposal_does_not_block(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=2)
    submit_all(consortium, 1, 3)
    wrong, right = make_cid("wrong aggregate"), make_cid("right aggregate")
    consortium.members[0].propose_aggregate(1, wrong)
    consortium.members[0].approve_aggregate(1, wrong)
    consortium.members[1].propose_aggregate(1, right)

    consortium.members[1].approve_aggregate(1, right)
    consortium.members[2].approve_aggregate(1, right)

    assert consortium.owner.candidate(1, wrong).approvals == 1
    (finalized,) = consortium.owner.rounds_finalized(1)
    assert finalized.cid == right
    assert consortium.owner.rounds_opened(2)[0].base_cid == right


def test_propose_and_approve_rules(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    first, second = consortium.members[0], consortium.members[1]
    aggregate = make_cid("aggregate")

    while_open = rejected(lambda: first.propose_aggregate(1, aggregate))
    assert while_open.reason == "RoundNotClosed(round=1)"

    submit_all(consortium, 1, 3)
    not_proposed = rejected(lambda: first.approve_aggregate(1, aggregate))
    assert revert_name(not_proposed.reason) == "NotProposed"

    first.propose_aggregate(1, aggregate)
    again = rejected(lambda: first.propose_aggregate(1, make_cid("other")))
    assert revert_name(again.reason) == "AlreadyProposed"

    second.approve_aggregate(1, aggregate)
    twice = rejected(lambda: second.approve_aggregate(1, aggregate))
    assert revert_name(twice.reason) == "AlreadyApproved"
    outsider = rejected(lambda: consortium.outsider.approve_aggregate(1, aggregate))
    assert revert_name(outsider.reason) == "NotMember"

    candidate = consortium.owner.candidate(1, aggregate)
    assert candidate.proposed
    assert candidate.approvals == 1
    (proposed,) = consortium.owner.aggregates_proposed(1)
    assert proposed.member == consortium.member_addresses()[0]
    assert proposed.cid == aggregate


def test_member_added_mid_round_joins_next(
    dev_accounts, consortium_factory: Callable[..., Consortium]
):
    consortium = consortium_factory(members=2, min_updates=2, approval_threshold=2)
    newcomer_account = dev_accounts[-1]  # the outsider's account
    consortium.owner.add_member(newcomer_account.address, "late shop")

    error = rejected(lambda: consortium.outsider.submit_update(1, make_cid("x"), 5))

    assert error.reason.startswith("NotMemberInRound(")
    assert error.reason.endswith("round=1, sinceRound=2)")
    assert consortium.owner.current_round().expected_updates == 2
    submit_all(consortium, 1, 2)
    assert consortium.owner.current_round().phase is Phase.CLOSED


def test_removing_waited_member_closes_round(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=2, approval_threshold=2)
    submit_all(consortium, 1, 2)

    result = consortium.owner.remove_member(consortium.member_addresses()[2])

    state = consortium.owner.current_round()
    assert state.expected_updates == 2
    assert state.phase is Phase.CLOSED
    closed = [
        e for e in consortium.owner.events_in(result) if isinstance(e, RoundClosed)
    ]
    assert closed[0].submitted_updates == 2
    removed_error = rejected(
        lambda: consortium.members[2].propose_aggregate(1, make_cid("a"))
    )
    assert revert_name(removed_error.reason) == "NotMember"


def test_removed_member_submission_stays_counted(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=2, approval_threshold=2)
    consortium.members[0].submit_update(1, make_cid("kept"), 5)

    consortium.owner.remove_member(consortium.member_addresses()[0])

    state = consortium.owner.current_round()
    assert state.submitted_updates == 1
    assert state.expected_updates == 3
    consortium.members[1].submit_update(1, make_cid("b"), 5)
    consortium.members[2].submit_update(1, make_cid("c"), 5)
    assert consortium.owner.current_round().phase is Phase.CLOSED
    assert len(consortium.owner.updates_submitted(1)) == 3


def test_member_count_below_threshold_rejected(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=2, approval_threshold=3)

    removal = rejected(
        lambda: consortium.owner.remove_member(consortium.member_addresses()[0])
    )
    too_high = rejected(
        lambda: consortium.owner.set_parameters(
            min_updates=2, approval_threshold=4, round_seconds=60
        )
    )

    assert removal.reason == "MemberCountTooLow(members=2, required=3)"
    assert too_high.reason == "MemberCountTooLow(members=3, required=4)"


def test_open_first_round_needs_members(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(
        members=1, min_updates=1, approval_threshold=2, open_round=False
    )

    error = rejected(lambda: consortium.owner.open_first_round(make_cid("starter")))

    assert error.reason == "MemberCountTooLow(members=1, required=2)"


def test_open_first_round_twice_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()

    error = rejected(lambda: consortium.owner.open_first_round(make_cid("again")))

    assert error.reason == "AlreadyStarted()"


def test_parameters_apply_from_next_round(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=2, approval_threshold=2)

    consortium.owner.set_parameters(
        min_updates=3, approval_threshold=3, round_seconds=90
    )

    running = consortium.owner.current_round()
    assert running.min_updates == 2
    assert running.approval_threshold == 2
    (change,) = consortium.owner.parameter_changes()[-1:]
    assert change.effective_from_round == 2
    submit_all(consortium, 1, 3)
    aggregate = make_cid("aggregate")
    consortium.members[0].propose_aggregate(1, aggregate)
    consortium.members[0].approve_aggregate(1, aggregate)
    consortium.members[1].approve_aggregate(1, aggregate)
    following = consortium.owner.current_round()
    assert following.round_id == 2
    assert following.min_updates == 3
    assert following.approval_threshold == 3
    opened = consortium.owner.rounds_opened(2)[0]
    block = consortium.owner.client.w3.eth.get_block(opened.meta.block_number)
    assert opened.deadline == block["timestamp"] + 90
    assert consortium.owner.parameters().round_duration == 90


def test_invalid_parameters_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()

    error = rejected(
        lambda: consortium.owner.set_parameters(
            min_updates=0, approval_threshold=1, round_seconds=60
        )
    )

    assert revert_name(error.reason) == "InvalidParameters"


def test_owner_only_actions_rejected(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()
    member = consortium.members[0]

    add = rejected(lambda: member.add_member(consortium.outsider_account.address, "x"))

    assert revert_name(add.reason) == "NotOwner"


def test_add_member_rules(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory()
    existing = consortium.member_addresses()[0]

    twice = rejected(lambda: consortium.owner.add_member(existing, "again"))
    no_name = rejected(
        lambda: consortium.owner.add_member(consortium.outsider_account.address, "")
    )

    assert revert_name(twice.reason) == "AlreadyMember"
    assert no_name.reason == "InvalidName(length=0)"


def test_members_rebuilt_from_events(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=2, approval_threshold=2)
    first, second, third = consortium.member_addresses()
    consortium.members[0].set_peer_address("/ip4/127.0.0.1/tcp/4001/p2p/QmOld")
    consortium.members[0].set_peer_address("/ip4/127.0.0.1/tcp/4002/p2p/QmNew")
    consortium.owner.remove_member(third)

    members = {info.address: info for info in consortium.owner.members()}

    assert set(members) == {first, second}
    assert members[first].name == "shop-0"
    assert members[first].peer_address == "/ip4/127.0.0.1/tcp/4002/p2p/QmNew"
    assert members[second].peer_address is None
    assert members[first].since_round == 1
    removed = consortium.owner.members_removed()
    assert [(event.member, event.round_id) for event in removed] == [(third, 1)]


def test_peer_address_by_non_member_rejected(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory()

    error = rejected(lambda: consortium.outsider.set_peer_address("/ip4/127.0.0.1"))

    assert revert_name(error.reason) == "NotMember"


@pytest.mark.parametrize("members", [3, 10])
def test_submission_gas_within_target(
    members: int, consortium_factory: Callable[..., Consortium]
):
    consortium = consortium_factory(members=members, min_updates=members)

    gas = [
        member.submit_update(1, make_cid(f"update {index}"), 1000 + index).gas_used
        for index, member in enumerate(consortium.members)
    ]

    assert consortium.owner.current_round().phase is Phase.CLOSED
    assert sum(gas) / len(gas) <= SUBMISSION_GAS_TARGET


def approve_by(consortium: Consortium, indexes: list[int], cid: Cid) -> None:
    for index in indexes:
        consortium.members[index].approve_aggregate(1, cid)


def test_lowered_threshold_finalizes_stalled_round(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    aggregate = make_cid("aggregate 1")
    consortium.members[0].propose_aggregate(1, aggregate)
    approve_by(consortium, [0, 1], aggregate)  # member 2 never approves
    stalled = rejected(lambda: consortium.members[0].approve_aggregate(1, aggregate))
    assert revert_name(stalled.reason) == "AlreadyApproved"

    result = consortium.owner.lower_approval_threshold(1, 2)

    events = consortium.owner.events_in(result)
    assert [type(event) for event in events] == [
        ApprovalThresholdLowered,
        RoundFinalized,
        RoundOpened,
    ]
    _, finalized, opened = events
    assert isinstance(finalized, RoundFinalized)
    assert finalized.round_id == 1
    assert finalized.cid == aggregate
    assert finalized.approvals == 2
    assert isinstance(opened, RoundOpened)
    assert opened.round_id == 2
    assert opened.base_cid == aggregate
    assert opened.approval_threshold == 3  # later rounds keep the configuration
    state = consortium.owner.current_round()
    assert state.round_id == 2
    assert state.phase is Phase.OPEN


def test_lowered_threshold_event_fields(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)

    result = consortium.owner.lower_approval_threshold(1, 2)

    (event,) = consortium.owner.approval_thresholds_lowered(1)
    assert event.round_id == 1
    assert event.old_threshold == 3
    assert event.new_threshold == 2
    assert event.meta.tx_hash == result.tx_hash
    assert consortium.owner.approval_thresholds_lowered(2) == []
    state = consortium.owner.current_round()
    assert state.approval_threshold == 2
    assert state.phase is Phase.OPEN  # an open round has no candidate to finalise


def test_lowered_threshold_waits_below_lead(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    aggregate = make_cid("aggregate 1")
    consortium.members[0].propose_aggregate(1, aggregate)
    approve_by(consortium, [0], aggregate)

    consortium.owner.lower_approval_threshold(1, 2)

    assert consortium.owner.current_round().phase is Phase.CLOSED
    assert consortium.owner.current_round().approval_threshold == 2
    approve_by(consortium, [1], aggregate)
    (finalized,) = consortium.owner.rounds_finalized(1)
    assert finalized.cid == aggregate
    assert finalized.approvals == 2


def test_lowered_threshold_picks_most_approved(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    first, second = make_cid("first aggregate"), make_cid("second aggregate")
    consortium.members[0].propose_aggregate(1, first)
    consortium.members[1].propose_aggregate(1, second)
    approve_by(consortium, [2], first)
    approve_by(consortium, [0, 1], second)

    consortium.owner.lower_approval_threshold(1, 1)

    (finalized,) = consortium.owner.rounds_finalized(1)
    assert finalized.cid == second
    assert finalized.approvals == 2


def test_lowered_threshold_tie_keeps_earlier(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    first, second = make_cid("first aggregate"), make_cid("second aggregate")
    consortium.members[0].propose_aggregate(1, first)
    consortium.members[1].propose_aggregate(1, second)
    approve_by(consortium, [1], second)
    approve_by(consortium, [0], first)

    consortium.owner.lower_approval_threshold(1, 1)

    (finalized,) = consortium.owner.rounds_finalized(1)
    assert finalized.cid == second
    assert finalized.approvals == 1


def test_lowered_threshold_ignores_older_round_lead(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    old = make_cid("aggregate 1")
    consortium.members[0].propose_aggregate(1, old)
    approve_by(consortium, [0, 1], old)
    consortium.owner.lower_approval_threshold(1, 2)
    for index, member in enumerate(consortium.members):
        member.submit_update(2, make_cid(f"update 2 {index}"), 5)

    consortium.owner.lower_approval_threshold(2, 1)

    state = consortium.owner.current_round()
    assert state.round_id == 2
    assert state.phase is Phase.CLOSED
    assert consortium.owner.rounds_finalized(2) == []


def test_lowered_threshold_allows_removal(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    submit_all(consortium, 1, 3)
    silent = consortium.member_addresses()[2]
    blocked = rejected(lambda: consortium.owner.remove_member(silent))
    assert blocked.reason == "MemberCountTooLow(members=2, required=3)"

    consortium.owner.lower_approval_threshold(1, 2)
    consortium.owner.set_parameters(
        min_updates=2, approval_threshold=2, round_seconds=3600
    )
    consortium.owner.remove_member(silent)

    assert consortium.owner.parameters().member_count == 2
    aggregate = make_cid("aggregate 1")
    consortium.members[0].propose_aggregate(1, aggregate)
    approve_by(consortium, [0, 1], aggregate)
    assert consortium.owner.current_round().round_id == 2


def test_lower_threshold_rejections(consortium_factory: Callable[..., Consortium]):
    consortium = consortium_factory(members=3, min_updates=3, approval_threshold=3)
    owner = consortium.owner

    by_member = rejected(lambda: consortium.members[0].lower_approval_threshold(1, 2))
    raised = rejected(lambda: owner.lower_approval_threshold(1, 4))
    unchanged = rejected(lambda: owner.lower_approval_threshold(1, 3))
    zero = rejected(lambda: owner.lower_approval_threshold(1, 0))
    wrong_round = rejected(lambda: owner.lower_approval_threshold(2, 2))

    member = consortium.member_addresses()[0]
    assert by_member.reason == f"NotOwner(caller={member})"
    assert raised.reason == "ThresholdNotLowered(given=4, current=3)"
    assert unchanged.reason == "ThresholdNotLowered(given=3, current=3)"
    assert zero.reason == "ZeroThreshold()"
    assert wrong_round.reason == "WrongRound(given=2, current=1)"
    assert owner.current_round().approval_threshold == 3
    assert owner.approval_thresholds_lowered() == []


def test_lower_threshold_before_start_rejected(
    consortium_factory: Callable[..., Consortium],
):
    consortium = consortium_factory(open_round=False)

    error = rejected(lambda: consortium.owner.lower_approval_threshold(0, 1))

    assert error.reason == "NotStarted()"
