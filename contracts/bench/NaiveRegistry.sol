// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @title NaiveRegistry
/// @notice Baseline for the gas benchmark only, never deployed by the app.
/// It records update submissions the straightforward way: the CID as a text
/// string in a stored struct, with the sender, the weight and a timestamp.
contract NaiveRegistry {
    struct Submission {
        string cid;
        address sender;
        uint256 weight;
        uint256 timestamp;
    }

    address public owner;
    uint256 public currentRound;
    mapping(address => bool) public isMember;
    mapping(uint256 => Submission[]) public submissions;
    mapping(uint256 => mapping(address => bool)) public hasSubmitted;

    event UpdateSubmitted(uint256 indexed round, address indexed member, string cid);

    constructor() {
        owner = msg.sender;
        currentRound = 1;
    }

    function addMember(address account) external {
        require(msg.sender == owner, "not owner");
        isMember[account] = true;
    }

    function submitUpdate(uint256 round, string calldata cid, uint256 weight) external {
        require(isMember[msg.sender], "not a member");
        require(round == currentRound, "wrong round");
        require(!hasSubmitted[round][msg.sender], "already submitted");
        hasSubmitted[round][msg.sender] = true;
        submissions[round].push(Submission(cid, msg.sender, weight, block.timestamp));
        emit UpdateSubmitted(round, msg.sender, cid);
    }
}
