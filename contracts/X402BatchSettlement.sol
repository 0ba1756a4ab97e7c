// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

/// @notice Pulls a channel deposit from the payer into the settlement contract. The collector is
/// what the payer's token authorization names as its payee, so only it can redeem it.
interface IDepositCollector {
    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external;
}

/// @notice x402's batch-settlement channel contract, as far as @x402/evm's batch-settlement
/// facilitator, server and client call it (same ABI, EIP-712 domain "x402 Batch Settlement"/"1",
/// same typed data). A payer deposits into a channel identified by the EIP-712 hash of its
/// immutable config; the receiver claims cumulative vouchers the payer signed (in batches,
/// authorized by the receiver's authorizer), settles claimed funds to itself, and refunds the
/// rest cooperatively; the payer can withdraw unclaimed funds on its own after the channel's
/// withdraw delay. Tests place the runtime code at the canonical address with anvil_setCode, so
/// no constructor state is kept (EIP-712's name and version are immutables in the code).
///
/// Accounting: a channel's `balance` is what is deposited and not refunded or withdrawn;
/// `totalClaimed` is the part of it the receiver has claimed (never above `balance`). A
/// receiver's claimed funds leave the contract only through `settle`.
contract X402BatchSettlement is EIP712, Multicall, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;

    struct ChannelConfig {
        address payer;
        address payerAuthorizer;
        address receiver;
        address receiverAuthorizer;
        address token;
        uint40 withdrawDelay;
        bytes32 salt;
    }

    struct Voucher {
        ChannelConfig channel;
        uint128 maxClaimableAmount;
    }

    struct VoucherClaim {
        Voucher voucher;
        bytes signature;
        uint128 totalClaimed;
    }

    struct ChannelState {
        uint128 balance;
        uint128 totalClaimed;
    }

    struct PendingWithdrawal {
        uint128 amount;
        uint40 initiatedAt;
    }

    struct ReceiverState {
        uint128 totalClaimed;
        uint128 totalSettled;
    }

    bytes32 public constant CHANNEL_CONFIG_TYPEHASH = keccak256(
        "ChannelConfig(address payer,address payerAuthorizer,address receiver,address receiverAuthorizer,address token,uint40 withdrawDelay,bytes32 salt)"
    );
    bytes32 public constant VOUCHER_TYPEHASH = keccak256("Voucher(bytes32 channelId,uint128 maxClaimableAmount)");
    bytes32 public constant REFUND_TYPEHASH = keccak256("Refund(bytes32 channelId,uint256 nonce,uint128 amount)");
    bytes32 public constant CLAIM_ENTRY_TYPEHASH =
        keccak256("ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)");
    bytes32 public constant CLAIM_BATCH_TYPEHASH = keccak256(
        "ClaimBatch(ClaimEntry[] claims)ClaimEntry(bytes32 channelId,uint128 maxClaimableAmount,uint128 totalClaimed)"
    );
    uint40 public constant MIN_WITHDRAW_DELAY = 900;
    uint40 public constant MAX_WITHDRAW_DELAY = 30 days;

    mapping(bytes32 channelId => ChannelState) public channels;
    mapping(bytes32 channelId => PendingWithdrawal) public pendingWithdrawals;
    mapping(bytes32 channelId => uint256) public refundNonce;
    mapping(address receiver => mapping(address token => ReceiverState)) public receivers;

    event Deposited(bytes32 indexed channelId, address indexed payer, uint128 amount);
    event Claimed(bytes32 indexed channelId, address indexed receiver, uint128 amount, uint128 totalClaimed);
    event Settled(address indexed receiver, address indexed token, address indexed sender, uint128 amount);
    event Refunded(bytes32 indexed channelId, address indexed payer, uint128 amount);
    event WithdrawInitiated(bytes32 indexed channelId, uint128 amount);
    event Withdrawn(bytes32 indexed channelId, address indexed payer, uint128 amount);

    error InvalidWithdrawDelay();
    error ZeroAmount();
    error DepositNotReceived();
    error InvalidVoucherSignature();
    error ClaimExceedsVoucher();
    error ClaimExceedsBalance();
    error ClaimBelowClaimed();
    error InvalidAuthorizerSignature();
    error Unauthorized();
    error InvalidRefundNonce();
    error NothingToWithdraw();
    error WithdrawNotReady();

    constructor() EIP712("x402 Batch Settlement", "1") {}

    // ---- channels ----

    function getChannelId(ChannelConfig calldata config) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    CHANNEL_CONFIG_TYPEHASH,
                    config.payer,
                    config.payerAuthorizer,
                    config.receiver,
                    config.receiverAuthorizer,
                    config.token,
                    config.withdrawDelay,
                    config.salt
                )
            )
        );
    }

    /// @notice Adds `amount` to the channel: `collector` pulls it from the payer with the payer's
    /// signed authorization in `collectorData` and hands it to this contract.
    function deposit(ChannelConfig calldata config, uint128 amount, address collector, bytes calldata collectorData)
        external
        nonReentrant
    {
        if (config.withdrawDelay < MIN_WITHDRAW_DELAY || config.withdrawDelay > MAX_WITHDRAW_DELAY) {
            revert InvalidWithdrawDelay();
        }
        if (amount == 0) revert ZeroAmount();
        bytes32 channelId = getChannelId(config);
        IERC20 token = IERC20(config.token);
        uint256 before = token.balanceOf(address(this));
        IDepositCollector(collector).collect(config.payer, config.token, amount, channelId, collectorData);
        if (token.balanceOf(address(this)) < before + amount) revert DepositNotReceived();
        channels[channelId].balance += amount;
        emit Deposited(channelId, config.payer, amount);
    }

    // ---- claims and settlement (the receiver's side) ----

    /// @notice Claims vouchers; the caller must be each channel's receiver authorizer.
    function claim(VoucherClaim[] calldata voucherClaims) external nonReentrant {
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            if (msg.sender != voucherClaims[i].voucher.channel.receiverAuthorizer) revert Unauthorized();
            _claim(voucherClaims[i]);
        }
    }

    /// @notice Claims vouchers on the strength of the receiver authorizer's signature over the
    /// whole batch (anyone may submit it, e.g. a facilitator paying the gas).
    function claimWithSignature(VoucherClaim[] calldata voucherClaims, bytes calldata authorizerSignature)
        external
        nonReentrant
    {
        bytes32 digest = getClaimBatchDigest(voucherClaims);
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            if (
                !SignatureChecker.isValidSignatureNow(
                    voucherClaims[i].voucher.channel.receiverAuthorizer, digest, authorizerSignature
                )
            ) revert InvalidAuthorizerSignature();
            _claim(voucherClaims[i]);
        }
    }

    /// @notice Moves everything `receiver` has claimed in `token` and not settled yet to it.
    function settle(address receiver, address token) external nonReentrant {
        ReceiverState storage state = receivers[receiver][token];
        uint128 amount = state.totalClaimed - state.totalSettled;
        state.totalSettled = state.totalClaimed;
        if (amount > 0) IERC20(token).safeTransfer(receiver, amount);
        emit Settled(receiver, token, msg.sender, amount);
    }

    // ---- refunds (cooperative) ----

    /// @notice The receiver (or its authorizer) returns up to `amount` of the unclaimed balance.
    function refund(ChannelConfig calldata config, uint128 amount) external nonReentrant {
        if (msg.sender != config.receiver && msg.sender != config.receiverAuthorizer) revert Unauthorized();
        _refund(config, getChannelId(config), amount);
    }

    /// @notice A refund the receiver authorizer signed for this channel and nonce.
    function refundWithSignature(
        ChannelConfig calldata config,
        uint128 amount,
        uint256 nonce,
        bytes calldata receiverAuthorizerSignature
    ) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        if (nonce != refundNonce[channelId]) revert InvalidRefundNonce();
        if (
            !SignatureChecker.isValidSignatureNow(
                config.receiverAuthorizer, getRefundDigest(channelId, nonce, amount), receiverAuthorizerSignature
            )
        ) revert InvalidAuthorizerSignature();
        _refund(config, channelId, amount);
    }

    // ---- withdrawal (the payer's own exit, after the channel's delay) ----

    function initiateWithdraw(ChannelConfig calldata config, uint128 amount) external {
        if (msg.sender != config.payer && msg.sender != config.payerAuthorizer) revert Unauthorized();
        if (amount == 0) revert ZeroAmount();
        bytes32 channelId = getChannelId(config);
        pendingWithdrawals[channelId] = PendingWithdrawal({amount: amount, initiatedAt: uint40(block.timestamp)});
        emit WithdrawInitiated(channelId, amount);
    }

    function finalizeWithdraw(ChannelConfig calldata config) external nonReentrant {
        bytes32 channelId = getChannelId(config);
        PendingWithdrawal memory pending = pendingWithdrawals[channelId];
        if (pending.initiatedAt == 0) revert NothingToWithdraw();
        if (block.timestamp < uint256(pending.initiatedAt) + config.withdrawDelay) revert WithdrawNotReady();
        delete pendingWithdrawals[channelId];
        ChannelState storage ch = channels[channelId];
        uint128 available = ch.balance - ch.totalClaimed;
        uint128 amount = pending.amount < available ? pending.amount : available;
        ch.balance -= amount;
        if (amount > 0) IERC20(config.token).safeTransfer(config.payer, amount);
        emit Withdrawn(channelId, config.payer, amount);
    }

    // ---- digests ----

    function getVoucherDigest(bytes32 channelId, uint128 maxClaimableAmount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(VOUCHER_TYPEHASH, channelId, maxClaimableAmount)));
    }

    function getRefundDigest(bytes32 channelId, uint256 nonce, uint128 amount) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(REFUND_TYPEHASH, channelId, nonce, amount)));
    }

    function getClaimBatchDigest(VoucherClaim[] calldata voucherClaims) public view returns (bytes32) {
        bytes32[] memory entries = new bytes32[](voucherClaims.length);
        for (uint256 i = 0; i < voucherClaims.length; i++) {
            entries[i] = keccak256(
                abi.encode(
                    CLAIM_ENTRY_TYPEHASH,
                    getChannelId(voucherClaims[i].voucher.channel),
                    voucherClaims[i].voucher.maxClaimableAmount,
                    voucherClaims[i].totalClaimed
                )
            );
        }
        return _hashTypedDataV4(keccak256(abi.encode(CLAIM_BATCH_TYPEHASH, keccak256(abi.encodePacked(entries)))));
    }

    // ---- internals ----

    /// A voucher is signed by the payer authorizer when the channel names one (a plain ECDSA
    /// key), otherwise by the payer (an EOA or an ERC-1271 wallet).
    function _claim(VoucherClaim calldata c) private {
        ChannelConfig calldata config = c.voucher.channel;
        bytes32 channelId = getChannelId(config);
        bytes32 digest = getVoucherDigest(channelId, c.voucher.maxClaimableAmount);
        bool signed = config.payerAuthorizer != address(0)
            ? ECDSA.recover(digest, c.signature) == config.payerAuthorizer
            : SignatureChecker.isValidSignatureNow(config.payer, digest, c.signature);
        if (!signed) revert InvalidVoucherSignature();
        if (c.totalClaimed > c.voucher.maxClaimableAmount) revert ClaimExceedsVoucher();
        ChannelState storage ch = channels[channelId];
        if (c.totalClaimed > ch.balance) revert ClaimExceedsBalance();
        if (c.totalClaimed < ch.totalClaimed) revert ClaimBelowClaimed();
        uint128 delta = c.totalClaimed - ch.totalClaimed;
        if (delta == 0) return;
        ch.totalClaimed = c.totalClaimed;
        receivers[config.receiver][config.token].totalClaimed += delta;
        emit Claimed(channelId, config.receiver, delta, c.totalClaimed);
    }

    function _refund(ChannelConfig calldata config, bytes32 channelId, uint128 amount) private {
        ChannelState storage ch = channels[channelId];
        uint128 available = ch.balance - ch.totalClaimed;
        uint128 refunded = amount < available ? amount : available;
        ch.balance -= refunded;
        refundNonce[channelId] += 1;
        delete pendingWithdrawals[channelId];
        if (refunded > 0) IERC20(config.token).safeTransfer(config.payer, refunded);
        emit Refunded(channelId, config.payer, refunded);
    }
}

/// @notice x402's ERC-3009 deposit collector: redeems the payer's `receiveWithAuthorization`
/// (payee: this contract; nonce: keccak256(channelId, salt), binding it to one channel) and
/// forwards the deposit to the batch-settlement contract, the only caller it serves.
contract X402Erc3009DepositCollector {
    address public constant BATCH_SETTLEMENT = 0x4020074e9dF2ce1deE5A9C1b5c3f541D02a10003;

    error Unauthorized();

    function collect(address payer, address token, uint256 amount, bytes32 channelId, bytes calldata data) external {
        if (msg.sender != BATCH_SETTLEMENT) revert Unauthorized();
        (uint256 validAfter, uint256 validBefore, uint256 salt, bytes memory signature) =
            abi.decode(data, (uint256, uint256, uint256, bytes));
        bytes32 nonce = keccak256(abi.encode(channelId, salt));
        IErc3009Receive(token).receiveWithAuthorization(
            payer, address(this), amount, validAfter, validBefore, nonce, signature
        );
        SafeERC20.safeTransfer(IERC20(token), msg.sender, amount);
    }
}

interface IErc3009Receive {
    function receiveWithAuthorization(
        address from,
        address to,
        uint256 value,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        bytes calldata signature
    ) external;
}
