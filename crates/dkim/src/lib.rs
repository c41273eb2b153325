//! DKIM signing for cartero (RFC 6376, with Ed25519 from RFC 8463).
//!
//! Signatures use relaxed/relaxed canonicalization, `t=` (and optionally `x=`), and sign
//! the header fields of [`SIGNED_HEADERS`] that are present — every instance, plus `from`
//! once more (over-signing) so a From: field added in transit breaks the signature.
//!
//! # Usage
//!
//! ```
//! use cartero_dkim::{Algorithm, Signer, SigningKey};
//!
//! // Once: generate a key, store the PEM, publish the TXT record.
//! let (key, private_pem) =
//!     SigningKey::generate(Algorithm::Ed25519Sha256, "example.com", "mail2024")?;
//! println!("{}", key.dns_txt_record());
//! // mail2024._domainkey.example.com. IN TXT ( "v=DKIM1; k=ed25519; p=..." )
//!
//! // At start-up: load keys; at send time: prepend the returned field(s).
//! let key = SigningKey::from_pem("example.com", "mail2024", &private_pem)?;
//! let signer = Signer::new(vec![key]).with_expiry(7 * 24 * 3600);
//! let message = b"From: News <news@example.com>\r\nTo: a@example.net\r\n\
//!                 Subject: Hi\r\n\r\nHello\r\n";
//! let now = 1_700_000_000; // seconds since the Unix epoch, from the caller's clock
//! let field = signer.sign(message, now)?.expect("a key matches example.com");
//! assert!(field.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"));
//! let signed = [field.as_bytes(), &message[..]].concat();
//! # let _ = signed;
//! # Ok::<(), cartero_dkim::DkimError>(())
//! ```
//!
//! # Choices worth knowing
//!
//! * **Keys**: RSA (PKCS#1 or PKCS#8 PEM, at least 2048 bits — shorter keys are refused
//!   with [`DkimError::KeyTooSmall`]) and Ed25519 (PKCS#8 PEM). [`SigningKey::generate`]
//!   makes RSA-2048 or Ed25519 keys and returns PKCS#8 PEM. RSA public keys are published
//!   as SubjectPublicKeyInfo, Ed25519 ones as the raw 32 bytes (RFC 8463).
//! * **Key choice**: the From: address domain is matched case-insensitively against key
//!   domains, exactly or as a subdomain; the most specific matching domain wins, and every
//!   key of that domain signs (dual RSA + Ed25519 signing gives two fields). A message
//!   without From:, or whose From: has no domain, or with no matching key, is not signed
//!   (`Ok(None)`); two From: fields are an error.
//! * **Line endings**: bare LF is hashed as CRLF; transmit the message with CRLF (SMTP
//!   does). Header bytes are hashed unchanged, so RFC 6532 UTF-8 headers are supported.
//!   Garbage never panics: lines that are not header fields are skipped, a message
//!   without an empty line is all header and an empty body.
//! * **Output**: the `DKIM-Signature` field text is folded (CRLF SP) to lines of at most
//!   76 characters, with `b=` as the last tag, and ends in CRLF.
//! * **DNS**: [`SigningKey::dns_txt_record`] gives a zone-file line whose value is split
//!   into strings of at most 255 bytes; [`SigningKey::txt_value`] gives the bare value.
//!
//! Signatures are checked against dkimpy in `tests/dkimpy_verify.rs`.

// No unwrap on input in production code; tests may (a panic there is a failure).
#![deny(clippy::unwrap_used)]

mod canon;
mod error;
mod key;
mod message;
mod signer;

pub use canon::{normalize_line_endings, relaxed_body, relaxed_header};
pub use error::DkimError;
pub use key::{Algorithm, SigningKey};
pub use signer::{SIGNED_HEADERS, Signer};

#[cfg(feature = "testing")]
pub mod testing;
