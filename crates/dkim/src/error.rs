//! Error type of the crate.

use crate::Algorithm;

/// Everything that can go wrong while loading keys or signing.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The PEM text could not be decoded or holds no private key.
    #[error("cannot read PEM private key for selector {selector:?} of {domain:?}: {reason}")]
    InvalidPem {
        /// Signing domain the key was meant for.
        domain: String,
        /// Selector the key was meant for.
        selector: String,
        /// What was wrong with the PEM text or the key inside it.
        reason: String,
    },

    /// The PEM holds a key of a type DKIM signing does not support here (EC P-256, DSA, ...).
    #[error("unsupported private key type for selector {selector:?} of {domain:?}: {reason}")]
    UnsupportedKey {
        /// Signing domain the key was meant for.
        domain: String,
        /// Selector the key was meant for.
        selector: String,
        /// Which kind of key was found.
        reason: String,
    },

    /// The RSA key is shorter than 2048 bits (SPEC §2.9 requires 2048+).
    #[error(
        "RSA key for selector {selector:?} of {domain:?} is too short: 2048 bits or more are required"
    )]
    KeyTooSmall {
        /// Signing domain the key was meant for.
        domain: String,
        /// Selector the key was meant for.
        selector: String,
    },

    /// A signing domain or selector that is not a valid DNS name.
    #[error("invalid DKIM {what} {value:?}: {reason}")]
    InvalidName {
        /// `"domain"` or `"selector"`.
        what: &'static str,
        /// The rejected text.
        value: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// The crypto library failed to generate a key pair.
    #[error("generating a {algorithm:?} key pair failed")]
    KeyGeneration {
        /// Requested algorithm.
        algorithm: Algorithm,
    },

    /// The crypto library failed to produce a signature.
    #[error("signing with selector {selector:?} of {domain:?} failed")]
    Signing {
        /// Signing domain of the key.
        domain: String,
        /// Selector of the key.
        selector: String,
    },

    /// The message cannot be signed as it is (for instance it has two From: fields).
    #[error("message cannot be DKIM-signed: {0}")]
    InvalidMessage(&'static str),
}
