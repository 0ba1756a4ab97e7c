// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

/// @notice An ERC-6492 universal signature validator with the interface x402-rs's EVM facilitator
/// calls (`isValidSig`, `isValidSigWithSideEffects`). x402-rs refuses to start on a chain where
/// nothing is deployed at the validator's canonical address; tests place this contract's runtime
/// code there with anvil_setCode. It checks EOA signatures (ecrecover), ERC-1271 contract
/// signatures, and ERC-6492 wrapped ones (the counterfactual wallet is deployed through its
/// factory first, then asked through ERC-1271).
contract UniversalSigValidator {
    bytes32 private constant ERC6492_SUFFIX = 0x6492649264926492649264926492649264926492649264926492649264926492;

    error ERC1271Revert(bytes error);
    error ERC6492DeployFailed(bytes error);

    function isValidSig(address signer, bytes32 hash, bytes calldata signature) external returns (bool) {
        return _isValid(signer, hash, signature);
    }

    function isValidSigWithSideEffects(address signer, bytes32 hash, bytes calldata signature) external returns (bool) {
        return _isValid(signer, hash, signature);
    }

    function _isValid(address signer, bytes32 hash, bytes calldata signature) private returns (bool) {
        if (signature.length >= 32 && bytes32(signature[signature.length - 32:]) == ERC6492_SUFFIX) {
            (address factory, bytes memory factoryCalldata, bytes memory inner) =
                abi.decode(signature[:signature.length - 32], (address, bytes, bytes));
            if (signer.code.length == 0) {
                (bool deployed, bytes memory err) = factory.call(factoryCalldata);
                if (!deployed) revert ERC6492DeployFailed(err);
            }
            return SignatureChecker.isValidERC1271SignatureNow(signer, hash, inner);
        }
        return SignatureChecker.isValidSignatureNow(signer, hash, signature);
    }
}
