// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title Consortium
/// @notice Rounds of federated training for a group of merchants. Members
/// submit the CID of their model update, the round closes, members propose
/// and approve the CID of the aggregate, and the approved aggregate becomes
/// the base of the next round.
/// @dev A CID is passed as (codec, digest): every CID the app writes is a
/// CIDv1 with a sha2-256 multihash, so the codec (0x55 raw or 0x70 dag-pb)
/// and the 32-byte digest rebuild it exactly. Storage holds only what later
/// transactions read; CIDs, weights, names and peer addresses live in events.
/// docs/contract.md describes the protocol.
contract Consortium {
    enum Phase {
        NotStarted,
        Open,
        Closed
    }

    /// Parameters for rounds that have not opened yet, plus the member count.
    struct Config {
        uint16 minUpdates;
        uint16 approvalThreshold;
        uint64 roundDuration;
        uint16 memberCount;
    }

    /// The running round. One storage slot, so a submission reads it once.
    struct Round {
        uint64 id;
        uint64 deadline;
        uint16 expectedUpdates;
        uint16 submittedUpdates;
        uint16 minUpdates;
        uint16 approvalThreshold;
        Phase phase;
    }

    /// Per-member state in one slot. `sinceRound` is 0 for a non-member,
    /// else the first round in which the member may write. The other fields
    /// hold the last round in which the member did each action.
    struct Member {
        uint64 sinceRound;
        uint64 submittedRound;
        uint64 proposedRound;
        uint64 approvedRound;
    }

    /// The leading candidate of round `round`: the first candidate to reach
    /// the highest approval count below the threshold. Its digest is in
    /// `_leadDigest`. Kept apart from `Round` so a submission does not pay
    /// for it.
    struct Lead {
        uint64 round;
        uint16 approvals;
        uint8 codec;
    }

    /// A proposed aggregate of one round.
    struct Candidate {
        bool proposed;
        uint16 approvals;
    }

    uint8 public constant CODEC_RAW = 0x55;
    uint8 public constant CODEC_DAG_PB = 0x70;
    uint16 public constant MAX_MEMBERS = 1000;
    uint64 public constant MAX_ROUND_DURATION = 365 days;
    uint256 public constant MAX_NAME_BYTES = 64;
    uint256 public constant MAX_PEER_ADDRESS_BYTES = 512;

    address public immutable owner;

    Config private _config;
    Round private _round;
    mapping(address => Member) private _members;
    /// Key: keccak256(round, codec, digest).
    mapping(bytes32 => Candidate) private _candidates;
    Lead private _lead;
    bytes32 private _leadDigest;

    event ParametersChanged(
        uint16 minUpdates,
        uint16 approvalThreshold,
        uint64 roundDuration,
        uint64 effectiveFromRound
    );
    event MemberAdded(address indexed member, string name, uint64 sinceRound);
    event MemberRemoved(address indexed member, uint64 round);
    event PeerAddressSet(address indexed member, string peerAddress);
    event RoundOpened(
        uint64 indexed round,
        uint8 baseCodec,
        bytes32 baseDigest,
        uint64 deadline,
        uint16 expectedUpdates,
        uint16 minUpdates,
        uint16 approvalThreshold
    );
    event UpdateSubmitted(
        uint64 indexed round,
        address indexed member,
        uint8 codec,
        bytes32 digest,
        uint256 weight
    );
    event RoundClosed(uint64 indexed round, uint16 submittedUpdates, address closedBy);
    event AggregateProposed(
        uint64 indexed round,
        address indexed member,
        uint8 codec,
        bytes32 digest
    );
    event AggregateApproved(
        uint64 indexed round,
        address indexed member,
        uint8 codec,
        bytes32 digest,
        uint16 approvals
    );
    event RoundFinalized(
        uint64 indexed round,
        uint8 codec,
        bytes32 digest,
        uint16 approvals
    );
    event ApprovalThresholdLowered(
        uint64 indexed round,
        uint16 oldThreshold,
        uint16 newThreshold
    );

    error NotOwner(address caller);
    error NotMember(address account);
    error NotMemberInRound(address account, uint64 round, uint64 sinceRound);
    error AlreadyMember(address account);
    error ZeroAddress();
    error InvalidName(uint256 length);
    error InvalidPeerAddress(uint256 length);
    error InvalidParameters(uint16 minUpdates, uint16 approvalThreshold, uint64 roundDuration);
    error MemberCountTooLow(uint16 members, uint16 required);
    error TooManyMembers(uint16 members);
    error AlreadyStarted();
    error NotStarted();
    error WrongRound(uint64 given, uint64 current);
    error RoundNotOpen(uint64 round);
    error RoundNotClosed(uint64 round);
    error TooEarly(uint64 deadline, uint64 blockTime);
    error TooFewUpdates(uint16 submitted, uint16 required);
    error AlreadySubmitted(uint64 round, address member);
    error AlreadyProposed(uint64 round, address member);
    error AlreadyApproved(uint64 round, address member);
    error NotProposed(uint64 round, uint8 codec, bytes32 digest);
    error UnsupportedCodec(uint8 codec);
    error EmptyDigest();
    error ZeroWeight();
    error ZeroThreshold();
    error ThresholdNotLowered(uint16 given, uint16 current);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor(uint16 minUpdates, uint16 approvalThreshold, uint64 roundDuration) {
        _checkParameters(minUpdates, approvalThreshold, roundDuration);
        owner = msg.sender;
        _config = Config(minUpdates, approvalThreshold, roundDuration, 0);
        emit ParametersChanged(minUpdates, approvalThreshold, roundDuration, 1);
    }

    // ------------------------------------------------------------------
    // Owner actions
    // ------------------------------------------------------------------

    /// Set the parameters of the rounds that open from now on. The running
    /// round keeps the values it opened with, so a change never alters it.
    function setParameters(
        uint16 minUpdates,
        uint16 approvalThreshold,
        uint64 roundDuration
    ) external onlyOwner {
        _checkParameters(minUpdates, approvalThreshold, roundDuration);
        Config memory config = _config;
        Round memory round = _round;
        if (round.phase != Phase.NotStarted) {
            _checkMemberCount(config.memberCount, minUpdates, approvalThreshold);
        }
        _config = Config(minUpdates, approvalThreshold, roundDuration, config.memberCount);
        emit ParametersChanged(minUpdates, approvalThreshold, roundDuration, round.id + 1);
    }

    /// Add a member. A member added while round r runs takes part from r + 1.
    function addMember(address account, string calldata name) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        uint256 nameLength = bytes(name).length;
        if (nameLength == 0 || nameLength > MAX_NAME_BYTES) revert InvalidName(nameLength);
        Member storage member = _members[account];
        if (member.sinceRound != 0) revert AlreadyMember(account);
        Config memory config = _config;
        if (config.memberCount >= MAX_MEMBERS) revert TooManyMembers(config.memberCount);

        uint64 sinceRound = _round.id + 1;
        member.sinceRound = sinceRound;
        _config.memberCount = config.memberCount + 1;
        emit MemberAdded(account, name, sinceRound);
    }

    /// Remove a member. Its writes made before stay counted. While the round
    /// is open and the member has not submitted, the round stops waiting for
    /// it, and closes when everyone else has submitted.
    function removeMember(address account) external onlyOwner {
        Member storage member = _members[account];
        uint64 sinceRound = member.sinceRound;
        if (sinceRound == 0) revert NotMember(account);
        Config memory config = _config;
        Round memory round = _round;
        uint16 remaining = config.memberCount - 1;
        if (round.phase != Phase.NotStarted) {
            _checkMemberCount(remaining, config.minUpdates, config.approvalThreshold);
            // A closed round no longer uses its minimum of updates.
            uint16 roundMinimum = round.phase == Phase.Open ? round.minUpdates : 1;
            _checkMemberCount(remaining, roundMinimum, round.approvalThreshold);
        }

        member.sinceRound = 0;
        _config.memberCount = remaining;
        emit MemberRemoved(account, round.id);

        bool waitedFor = round.phase == Phase.Open &&
            sinceRound <= round.id &&
            member.submittedRound != round.id;
        if (waitedFor) {
            round.expectedUpdates -= 1;
            if (round.submittedUpdates == round.expectedUpdates && round.submittedUpdates > 0) {
                round.phase = Phase.Closed;
                emit RoundClosed(round.id, round.submittedUpdates, msg.sender);
            }
            _round = round;
        }
    }

    /// Lower the approval threshold of the running round `roundId`, open or
    /// closed, so that it can finalise, or a member can be removed, after
    /// members stopped responding. If the round is closed and its leading
    /// candidate already has `approvalThreshold` approvals, the round
    /// finalises on that candidate and the next one opens.
    function lowerApprovalThreshold(uint64 roundId, uint16 approvalThreshold)
        external
        onlyOwner
    {
        Round memory round = _round;
        if (round.phase == Phase.NotStarted) revert NotStarted();
        if (roundId != round.id) revert WrongRound(roundId, round.id);
        if (approvalThreshold == 0) revert ZeroThreshold();
        if (approvalThreshold >= round.approvalThreshold) {
            revert ThresholdNotLowered(approvalThreshold, round.approvalThreshold);
        }

        emit ApprovalThresholdLowered(roundId, round.approvalThreshold, approvalThreshold);
        Lead memory lead = _lead;
        bool reached = round.phase == Phase.Closed &&
            lead.round == roundId &&
            lead.approvals >= approvalThreshold;
        if (reached) {
            bytes32 digest = _leadDigest;
            emit RoundFinalized(roundId, lead.codec, digest, lead.approvals);
            _openRound(roundId + 1, lead.codec, digest, _config);
        } else {
            _round.approvalThreshold = approvalThreshold;
        }
    }

    /// Open round 1 on the starter model.
    function openFirstRound(uint8 codec, bytes32 digest) external onlyOwner {
        _checkCid(codec, digest);
        if (_round.phase != Phase.NotStarted) revert AlreadyStarted();
        Config memory config = _config;
        _checkMemberCount(config.memberCount, config.minUpdates, config.approvalThreshold);
        _openRound(1, codec, digest, config);
    }

    // ------------------------------------------------------------------
    // Member actions
    // ------------------------------------------------------------------

    /// Publish the caller's Kubo peer address (a multiaddr). Event only.
    function setPeerAddress(string calldata peerAddress) external {
        if (_members[msg.sender].sinceRound == 0) revert NotMember(msg.sender);
        uint256 length = bytes(peerAddress).length;
        if (length == 0 || length > MAX_PEER_ADDRESS_BYTES) revert InvalidPeerAddress(length);
        emit PeerAddressSet(msg.sender, peerAddress);
    }

    /// Submit the caller's update for `roundId`. The last expected update
    /// closes the round.
    function submitUpdate(uint64 roundId, uint8 codec, bytes32 digest, uint256 weight) external {
        _checkCid(codec, digest);
        if (weight == 0) revert ZeroWeight();
        Round memory round = _round;
        Member storage member = _eligibleMember(roundId, round.id);
        if (round.phase != Phase.Open) revert RoundNotOpen(roundId);
        if (member.submittedRound == roundId) revert AlreadySubmitted(roundId, msg.sender);

        member.submittedRound = roundId;
        round.submittedUpdates += 1;
        emit UpdateSubmitted(roundId, msg.sender, codec, digest, weight);
        if (round.submittedUpdates == round.expectedUpdates) {
            round.phase = Phase.Closed;
            emit RoundClosed(roundId, round.submittedUpdates, msg.sender);
        }
        _round = round;
    }

    /// Close `roundId` after its deadline once the minimum of updates is in.
    function closeRound(uint64 roundId) external {
        Round memory round = _round;
        _eligibleMember(roundId, round.id);
        if (round.phase != Phase.Open) revert RoundNotOpen(roundId);
        if (block.timestamp < round.deadline) {
            revert TooEarly(round.deadline, uint64(block.timestamp));
        }
        if (round.submittedUpdates < round.minUpdates) {
            revert TooFewUpdates(round.submittedUpdates, round.minUpdates);
        }

        _round.phase = Phase.Closed;
        emit RoundClosed(roundId, round.submittedUpdates, msg.sender);
    }

    /// Propose the CID of the aggregate of the closed round `roundId`.
    /// Proposing does not approve: the proposer approves like everyone else.
    function proposeAggregate(uint64 roundId, uint8 codec, bytes32 digest) external {
        _checkCid(codec, digest);
        Round memory round = _round;
        Member storage member = _eligibleMember(roundId, round.id);
        if (round.phase != Phase.Closed) revert RoundNotClosed(roundId);
        if (member.proposedRound == roundId) revert AlreadyProposed(roundId, msg.sender);

        member.proposedRound = roundId;
        _candidates[_candidateKey(roundId, codec, digest)].proposed = true;
        emit AggregateProposed(roundId, msg.sender, codec, digest);
    }

    /// Approve a proposed aggregate of `roundId`. The approval that reaches
    /// the round's threshold finalises the round and opens the next one on
    /// this aggregate.
    function approveAggregate(uint64 roundId, uint8 codec, bytes32 digest) external {
        _checkCid(codec, digest);
        Round memory round = _round;
        Member storage member = _eligibleMember(roundId, round.id);
        if (round.phase != Phase.Closed) revert RoundNotClosed(roundId);
        if (member.approvedRound == roundId) revert AlreadyApproved(roundId, msg.sender);
        Candidate storage entry = _candidates[_candidateKey(roundId, codec, digest)];
        if (!entry.proposed) revert NotProposed(roundId, codec, digest);

        member.approvedRound = roundId;
        uint16 approvals = entry.approvals + 1;
        entry.approvals = approvals;
        emit AggregateApproved(roundId, msg.sender, codec, digest, approvals);
        if (approvals >= round.approvalThreshold) {
            emit RoundFinalized(roundId, codec, digest, approvals);
            _openRound(roundId + 1, codec, digest, _config);
        } else {
            _recordLead(roundId, codec, digest, approvals);
        }
    }

    // ------------------------------------------------------------------
    // Views
    // ------------------------------------------------------------------

    function parameters()
        external
        view
        returns (
            uint16 minUpdates,
            uint16 approvalThreshold,
            uint64 roundDuration,
            uint16 memberCount
        )
    {
        Config memory config = _config;
        return (
            config.minUpdates,
            config.approvalThreshold,
            config.roundDuration,
            config.memberCount
        );
    }

    function currentRound()
        external
        view
        returns (
            uint64 id,
            Phase phase,
            uint64 deadline,
            uint16 expectedUpdates,
            uint16 submittedUpdates,
            uint16 minUpdates,
            uint16 approvalThreshold
        )
    {
        Round memory round = _round;
        return (
            round.id,
            round.phase,
            round.deadline,
            round.expectedUpdates,
            round.submittedUpdates,
            round.minUpdates,
            round.approvalThreshold
        );
    }

    function memberState(address account)
        external
        view
        returns (
            bool isMember,
            uint64 sinceRound,
            uint64 submittedRound,
            uint64 proposedRound,
            uint64 approvedRound
        )
    {
        Member memory member = _members[account];
        return (
            member.sinceRound != 0,
            member.sinceRound,
            member.submittedRound,
            member.proposedRound,
            member.approvedRound
        );
    }

    function candidate(uint64 roundId, uint8 codec, bytes32 digest)
        external
        view
        returns (bool proposed, uint16 approvals)
    {
        Candidate memory entry = _candidates[_candidateKey(roundId, codec, digest)];
        return (entry.proposed, entry.approvals);
    }

    // ------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------

    function _openRound(uint64 roundId, uint8 codec, bytes32 digest, Config memory config)
        private
    {
        uint64 deadline = uint64(block.timestamp) + config.roundDuration;
        _round = Round({
            id: roundId,
            deadline: deadline,
            expectedUpdates: config.memberCount,
            submittedUpdates: 0,
            minUpdates: config.minUpdates,
            approvalThreshold: config.approvalThreshold,
            phase: Phase.Open
        });
        emit RoundOpened(
            roundId,
            codec,
            digest,
            deadline,
            config.memberCount,
            config.minUpdates,
            config.approvalThreshold
        );
    }

    /// Make the candidate the round's lead if it has more approvals than the
    /// lead. Strictly more, so of two candidates with equal approvals the one
    /// that reached that count first stays the lead.
    function _recordLead(uint64 roundId, uint8 codec, bytes32 digest, uint16 approvals)
        private
    {
        Lead memory lead = _lead;
        if (lead.round == roundId && approvals <= lead.approvals) return;
        _lead = Lead(roundId, approvals, codec);
        _leadDigest = digest;
    }

    /// Return the caller's member slot after checking that it may write in
    /// `roundId` and that `roundId` is the running round.
    function _eligibleMember(uint64 roundId, uint64 currentId)
        private
        view
        returns (Member storage member)
    {
        member = _members[msg.sender];
        uint64 sinceRound = member.sinceRound;
        if (sinceRound == 0) revert NotMember(msg.sender);
        if (currentId == 0) revert NotStarted();
        if (roundId != currentId) revert WrongRound(roundId, currentId);
        if (sinceRound > roundId) revert NotMemberInRound(msg.sender, roundId, sinceRound);
    }

    function _checkCid(uint8 codec, bytes32 digest) private pure {
        if (codec != CODEC_RAW && codec != CODEC_DAG_PB) revert UnsupportedCodec(codec);
        if (digest == bytes32(0)) revert EmptyDigest();
    }

    function _checkParameters(
        uint16 minUpdates,
        uint16 approvalThreshold,
        uint64 roundDuration
    ) private pure {
        bool valid = minUpdates > 0 &&
            approvalThreshold > 0 &&
            roundDuration > 0 &&
            roundDuration <= MAX_ROUND_DURATION;
        if (!valid) revert InvalidParameters(minUpdates, approvalThreshold, roundDuration);
    }

    function _checkMemberCount(uint16 members, uint16 minUpdates, uint16 approvalThreshold)
        private
        pure
    {
        uint16 required = minUpdates > approvalThreshold ? minUpdates : approvalThreshold;
        if (members < required) revert MemberCountTooLow(members, required);
    }

    function _candidateKey(uint64 roundId, uint8 codec, bytes32 digest)
        private
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(roundId, codec, digest));
    }
}
