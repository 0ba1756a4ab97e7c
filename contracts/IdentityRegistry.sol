// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721URIStorage} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721URIStorage.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @title ERC-8004 Identity Registry, for tests
/// @notice The interface and behaviour of the deployed v2 registry ("2.0.0"), without the proxy:
///         an ERC-721 whose tokenId is the agentId and whose tokenURI is the agentURI, per-agent
///         metadata, and an `agentWallet` that only the wallet itself can consent to (EIP-712).
contract IdentityRegistry is ERC721URIStorage, EIP712 {
    struct MetadataEntry {
        string metadataKey;
        bytes metadataValue;
    }

    event Registered(uint256 indexed agentId, string agentURI, address indexed owner);
    event URIUpdated(uint256 indexed agentId, string newURI, address indexed updatedBy);
    event MetadataSet(
        uint256 indexed agentId, string indexed indexedMetadataKey, string metadataKey, bytes metadataValue
    );

    bytes32 private constant AGENT_WALLET_SET_TYPEHASH =
        keccak256("AgentWalletSet(uint256 agentId,address newWallet,address owner,uint256 deadline)");
    string private constant AGENT_WALLET_KEY = "agentWallet";
    uint256 private constant MAX_DEADLINE_DELAY = 5 minutes;

    uint256 private _lastId;
    mapping(uint256 agentId => mapping(string key => bytes value)) private _metadata;

    constructor() ERC721("AgentIdentity", "AGENT") EIP712("ERC8004IdentityRegistry", "1") {}

    // ── registration ────────────────────────────────────────────────────────────────────

    function register() external returns (uint256 agentId) {
        return _register("", new MetadataEntry[](0));
    }

    function register(string calldata agentURI) external returns (uint256 agentId) {
        return _register(agentURI, new MetadataEntry[](0));
    }

    function register(string calldata agentURI, MetadataEntry[] calldata metadata)
        external
        returns (uint256 agentId)
    {
        return _register(agentURI, metadata);
    }

    function _register(string memory agentURI, MetadataEntry[] memory metadata) private returns (uint256 agentId) {
        agentId = _lastId++;
        _safeMint(msg.sender, agentId);
        if (bytes(agentURI).length > 0) _setTokenURI(agentId, agentURI);
        _writeMetadata(agentId, AGENT_WALLET_KEY, abi.encodePacked(msg.sender));
        for (uint256 i = 0; i < metadata.length; i++) {
            require(!_isReserved(metadata[i].metadataKey), "reserved key");
            _writeMetadata(agentId, metadata[i].metadataKey, metadata[i].metadataValue);
        }
        emit Registered(agentId, agentURI, msg.sender);
    }

    // ── agentURI ────────────────────────────────────────────────────────────────────────

    function setAgentURI(uint256 agentId, string calldata newURI) external {
        _requireAuthorized(agentId);
        _setTokenURI(agentId, newURI);
        emit URIUpdated(agentId, newURI, msg.sender);
    }

    // ── metadata ────────────────────────────────────────────────────────────────────────

    function getMetadata(uint256 agentId, string calldata metadataKey) external view returns (bytes memory) {
        return _metadata[agentId][metadataKey];
    }

    function setMetadata(uint256 agentId, string calldata metadataKey, bytes calldata metadataValue) external {
        _requireAuthorized(agentId);
        require(!_isReserved(metadataKey), "reserved key");
        _writeMetadata(agentId, metadataKey, metadataValue);
    }

    // ── agentWallet ─────────────────────────────────────────────────────────────────────

    function getAgentWallet(uint256 agentId) external view returns (address) {
        bytes memory value = _metadata[agentId][AGENT_WALLET_KEY];
        if (value.length != 20) return address(0);
        return address(bytes20(value));
    }

    function setAgentWallet(uint256 agentId, address newWallet, uint256 deadline, bytes calldata signature)
        external
    {
        _requireAuthorized(agentId);
        require(newWallet != address(0), "bad wallet");
        require(deadline >= block.timestamp, "expired");
        require(deadline <= block.timestamp + MAX_DEADLINE_DELAY, "deadline too far");
        bytes32 digest = _hashTypedDataV4(
            keccak256(abi.encode(AGENT_WALLET_SET_TYPEHASH, agentId, newWallet, ownerOf(agentId), deadline))
        );
        (address recovered, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, signature);
        bool valid = err == ECDSA.RecoverError.NoError && recovered == newWallet;
        if (!valid) valid = SignatureChecker.isValidERC1271SignatureNow(newWallet, digest, signature);
        require(valid, "invalid wallet sig");
        _writeMetadata(agentId, AGENT_WALLET_KEY, abi.encodePacked(newWallet));
    }

    function unsetAgentWallet(uint256 agentId) external {
        _requireAuthorized(agentId);
        _writeMetadata(agentId, AGENT_WALLET_KEY, "");
    }

    // ── views ───────────────────────────────────────────────────────────────────────────

    function isAuthorizedOrOwner(address spender, uint256 agentId) public view returns (bool) {
        return _isAuthorized(_requireOwned(agentId), spender, agentId);
    }

    function getVersion() external pure returns (string memory) {
        return "2.0.0";
    }

    // ── internals ───────────────────────────────────────────────────────────────────────

    /// A transfer clears the agentWallet: the new owner must have it consented to again.
    function _update(address to, uint256 tokenId, address auth) internal override returns (address from) {
        from = super._update(to, tokenId, auth);
        if (from != address(0) && to != address(0) && from != to && _metadata[tokenId][AGENT_WALLET_KEY].length > 0)
        {
            _writeMetadata(tokenId, AGENT_WALLET_KEY, "");
        }
    }

    function _requireAuthorized(uint256 agentId) private view {
        require(isAuthorizedOrOwner(msg.sender, agentId), "Not authorized");
    }

    function _isReserved(string memory key) private pure returns (bool) {
        return keccak256(bytes(key)) == keccak256(bytes(AGENT_WALLET_KEY));
    }

    function _writeMetadata(uint256 agentId, string memory key, bytes memory value) private {
        _metadata[agentId][key] = value;
        emit MetadataSet(agentId, key, key, value);
    }
}
