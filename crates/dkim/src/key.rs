//! Signing keys: loading from PEM, generation, DNS publication and raw signing.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeySize, PublicKey as RsaPublicKey};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;

use crate::DkimError;

/// Longest character-string a DNS TXT record may hold (RFC 1035 §3.3.14).
const TXT_STRING_MAX: usize = 255;

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `a=rsa-sha256` (RFC 6376), RSASSA-PKCS1-v1_5 with SHA-256; keys of 2048 bits or more.
    RsaSha256,
    /// `a=ed25519-sha256` (RFC 8463), Ed25519 over the SHA-256 hash of the signed data.
    Ed25519Sha256,
}

impl Algorithm {
    /// The value of the `a=` tag.
    pub fn tag(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa-sha256",
            Self::Ed25519Sha256 => "ed25519-sha256",
        }
    }

    /// The value of the `k=` tag in the DNS key record.
    pub fn key_type(self) -> &'static str {
        match self {
            Self::RsaSha256 => "rsa",
            Self::Ed25519Sha256 => "ed25519",
        }
    }
}

enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key bound to a signing domain (`d=`) and a selector (`s=`).
pub struct SigningKey {
    domain: String,
    selector: String,
    material: KeyMaterial,
}

impl fmt::Debug for SigningKey {
    // Key material is deliberately left out so keys never end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// Checks that `value` is a DNS name made of labels of letters, digits, `-` and `_`; the
/// value is later written into a tag-list, where `;`, `=` or whitespace would corrupt it.
fn validate_name(what: &'static str, value: &str) -> Result<String, DkimError> {
    let err = |reason| DkimError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    };
    let trimmed = value.strip_suffix('.').unwrap_or(value);
    if trimmed.is_empty() {
        return Err(err("empty"));
    }
    if trimmed.len() > 253 {
        return Err(err("longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(err("every label must have 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err(
                "only ASCII letters, digits, '-' and '_' are allowed (use the A-label form of IDNs)",
            ));
        }
    }
    Ok(trimmed.to_owned())
}

/// Wraps DER bytes into a PEM document with the given label, 64 base64 characters a line.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let encoded = B64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl SigningKey {
    /// Loads a private key from PEM text.
    ///
    /// Accepted: RSA as PKCS#1 (`RSA PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`), Ed25519 as
    /// PKCS#8 (`PRIVATE KEY`, v1 or v2). RSA keys shorter than 2048 bits are rejected with
    /// [`DkimError::KeyTooSmall`] (SPEC §2.9 asks for 2048+; receivers increasingly treat 1024
    /// as weak). Other key types (EC P-256, ...) give [`DkimError::UnsupportedKey`]. The domain
    /// is stored lowercased without a trailing dot.
    pub fn from_pem(domain: &str, selector: &str, pem: &str) -> Result<Self, DkimError> {
        let domain = validate_name("domain", domain)?.to_ascii_lowercase();
        let selector = validate_name("selector", selector)?;
        let context = KeyContext {
            domain: &domain,
            selector: &selector,
        };
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| context.invalid(format!("{e:?}")))?;
        let material = match der {
            PrivateKeyDer::Pkcs1(key) => KeyMaterial::Rsa(
                RsaKeyPair::from_der(key.secret_pkcs1_der()).map_err(|e| context.rejected(e))?,
            ),
            PrivateKeyDer::Pkcs8(key) => context.parse_pkcs8(key.secret_pkcs8_der())?,
            PrivateKeyDer::Sec1(_) => {
                return Err(context.unsupported("SEC1 elliptic-curve key"));
            }
            _ => return Err(context.unsupported("unknown PEM private key kind")),
        };
        Ok(Self {
            domain,
            selector,
            material,
        })
    }

    /// Generates a fresh key pair: RSA 2048 bits (the largest that still fits comfortably in
    /// a DNS TXT record) or Ed25519. Returns the key and its private key as PKCS#8 PEM, which
    /// [`SigningKey::from_pem`] loads back.
    pub fn generate(
        algorithm: Algorithm,
        domain: &str,
        selector: &str,
    ) -> Result<(Self, String), DkimError> {
        let domain = validate_name("domain", domain)?.to_ascii_lowercase();
        let selector = validate_name("selector", selector)?;
        let failed = || DkimError::KeyGeneration { algorithm };
        let (material, pkcs8): (KeyMaterial, Pkcs8V1Der<'static>) = match algorithm {
            Algorithm::RsaSha256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| failed())?;
                let der = pair.as_der().map_err(|_| failed())?;
                (KeyMaterial::Rsa(pair), der)
            }
            Algorithm::Ed25519Sha256 => {
                let pair = Ed25519KeyPair::generate().map_err(|_| failed())?;
                let der = pair.as_der().map_err(|_| failed())?;
                (KeyMaterial::Ed25519(pair), der)
            }
        };
        let pem = pem_encode("PRIVATE KEY", pkcs8.as_ref());
        let key = Self {
            domain,
            selector,
            material,
        };
        Ok((key, pem))
    }

    /// The signing domain (`d=`), lowercased.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The selector (`s=`).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.material {
            KeyMaterial::Rsa(_) => Algorithm::RsaSha256,
            KeyMaterial::Ed25519(_) => Algorithm::Ed25519Sha256,
        }
    }

    /// The DNS name the public key is published under: `selector._domainkey.domain`
    /// (without the final dot).
    pub fn dns_name(&self) -> String {
        format!("{}._domainkey.{}", self.selector, self.domain)
    }

    /// The `p=` value: base64 of the DER SubjectPublicKeyInfo for RSA (what OpenDKIM and
    /// every verifier expect), base64 of the raw 32-byte public key for Ed25519 (RFC 8463).
    pub fn public_key_base64(&self) -> String {
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let public: &RsaPublicKey = pair.public_key();
                let spki: Result<PublicKeyX509Der<'static>, _> = public.as_der();
                match spki {
                    Ok(der) => B64.encode(der.as_ref()),
                    // Serializing a key aws-lc-rs already validated does not fail; an empty
                    // p= would mean "revoked" to verifiers rather than a wrong key.
                    Err(_) => String::new(),
                }
            }
            KeyMaterial::Ed25519(pair) => B64.encode(pair.public_key().as_ref()),
        }
    }

    /// The TXT record value, unsplit: `v=DKIM1; k=rsa; p=MIIB...`.
    pub fn txt_value(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm().key_type(),
            self.public_key_base64()
        )
    }

    /// The TXT value split into the character-strings of at most 255 bytes that one TXT
    /// record may carry; resolvers concatenate them back without separators.
    pub fn txt_strings(&self) -> Vec<String> {
        split_txt(&self.txt_value())
    }

    /// A zone-file line to publish, e.g.
    /// `sel._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB..." "..." )`,
    /// with the value split into quoted strings of at most 255 bytes.
    pub fn dns_txt_record(&self) -> String {
        let quoted: Vec<String> = self
            .txt_strings()
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        format!("{}. IN TXT ( {} )", self.dns_name(), quoted.join("\n\t\t"))
    }

    /// Signs the canonicalized header data; returns the raw signature bytes.
    pub(crate) fn sign_data(&self, data: &[u8]) -> Result<Vec<u8>, DkimError> {
        let failed = || DkimError::Signing {
            domain: self.domain.clone(),
            selector: self.selector.clone(),
        };
        match &self.material {
            KeyMaterial::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut signature,
                )
                .map_err(|_| failed())?;
                Ok(signature)
            }
            KeyMaterial::Ed25519(pair) => {
                // RFC 8463 §3: Ed25519 signs the SHA-256 hash, not the data itself.
                let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
                let signature = pair.try_sign(hash.as_ref()).map_err(|_| failed())?;
                Ok(signature.as_ref().to_vec())
            }
        }
    }
}

/// Splits an ASCII TXT value into strings of at most [`TXT_STRING_MAX`] bytes. Splits only
/// on character boundaries so non-ASCII input cannot produce invalid UTF-8.
fn split_txt(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in value.chars() {
        if current.len() + c.len_utf8() > TXT_STRING_MAX {
            out.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() || out.is_empty() {
        out.push(current);
    }
    out
}

/// Domain and selector of a key being loaded, for error messages.
struct KeyContext<'a> {
    domain: &'a str,
    selector: &'a str,
}

impl KeyContext<'_> {
    fn invalid(&self, reason: String) -> DkimError {
        DkimError::InvalidPem {
            domain: self.domain.to_owned(),
            selector: self.selector.to_owned(),
            reason,
        }
    }

    fn unsupported(&self, reason: &str) -> DkimError {
        DkimError::UnsupportedKey {
            domain: self.domain.to_owned(),
            selector: self.selector.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn rejected(&self, e: KeyRejected) -> DkimError {
        if e.description_() == "TooSmall" {
            DkimError::KeyTooSmall {
                domain: self.domain.to_owned(),
                selector: self.selector.to_owned(),
            }
        } else {
            self.invalid(format!("RSA key rejected: {}", e.description_()))
        }
    }

    fn parse_pkcs8(&self, der: &[u8]) -> Result<KeyMaterial, DkimError> {
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            return Ok(KeyMaterial::Ed25519(pair));
        }
        match RsaKeyPair::from_pkcs8(der) {
            Ok(pair) => Ok(KeyMaterial::Rsa(pair)),
            Err(e) if e.description_() == "TooSmall" => Err(self.rejected(e)),
            Err(_) => Err(self.unsupported("PKCS#8 key is neither RSA nor Ed25519")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA1024: &str = include_str!("../tests/data/rsa1024_pkcs1.pem");
    const RSA2048_PKCS1: &str = include_str!("../tests/data/rsa2048_pkcs1.pem");
    const RSA3072_PKCS8: &str = include_str!("../tests/data/rsa3072_pkcs8.pem");
    const ED25519: &str = include_str!("../tests/data/ed25519_pkcs8.pem");
    const EC_P256: &str = include_str!("../tests/data/ec_p256_pkcs8.pem");

    #[test]
    fn loads_supported_pem_kinds() {
        let k = SigningKey::from_pem("Example.COM.", "s1", RSA2048_PKCS1).unwrap();
        assert_eq!(k.algorithm(), Algorithm::RsaSha256);
        assert_eq!(k.domain(), "example.com");
        assert_eq!(k.dns_name(), "s1._domainkey.example.com");
        let k = SigningKey::from_pem("example.com", "s2", RSA3072_PKCS8).unwrap();
        assert_eq!(k.algorithm(), Algorithm::RsaSha256);
        let k = SigningKey::from_pem("example.com", "s3", ED25519).unwrap();
        assert_eq!(k.algorithm(), Algorithm::Ed25519Sha256);
        assert_eq!(B64.decode(k.public_key_base64()).unwrap().len(), 32);
    }

    #[test]
    fn rejects_short_rsa_and_other_key_types() {
        let err = SigningKey::from_pem("example.com", "s", RSA1024).unwrap_err();
        assert!(matches!(err, DkimError::KeyTooSmall { .. }), "{err:?}");
        let err = SigningKey::from_pem("example.com", "s", EC_P256).unwrap_err();
        assert!(matches!(err, DkimError::UnsupportedKey { .. }), "{err:?}");
        let err = SigningKey::from_pem("example.com", "s", "not a pem").unwrap_err();
        assert!(matches!(err, DkimError::InvalidPem { .. }), "{err:?}");
    }

    #[test]
    fn rejects_bad_names() {
        for (domain, selector) in [
            ("", "s"),
            ("example.com", ""),
            ("exa mple.com", "s"),
            ("example.com", "s;x"),
            ("a..b", "s"),
            ("example.com", "s=1"),
        ] {
            let err = SigningKey::from_pem(domain, selector, ED25519).unwrap_err();
            assert!(matches!(err, DkimError::InvalidName { .. }), "{err:?}");
        }
    }

    #[test]
    fn generated_keys_round_trip_through_pem() {
        for alg in [Algorithm::RsaSha256, Algorithm::Ed25519Sha256] {
            let (key, pem) = SigningKey::generate(alg, "example.org", "gen").unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
            let loaded = SigningKey::from_pem("example.org", "gen", &pem).unwrap();
            assert_eq!(loaded.algorithm(), alg);
            assert_eq!(loaded.public_key_base64(), key.public_key_base64());
        }
    }

    #[test]
    fn txt_value_format() {
        let k = SigningKey::from_pem("example.com", "s", ED25519).unwrap();
        let v = k.txt_value();
        assert!(v.starts_with("v=DKIM1; k=ed25519; p="), "{v}");
        let k = SigningKey::from_pem("example.com", "s", RSA2048_PKCS1).unwrap();
        let v = k.txt_value();
        // SubjectPublicKeyInfo of an RSA key always starts with these base64 characters.
        assert!(v.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"));
    }

    #[test]
    fn txt_record_is_split_at_255_bytes() {
        let k = SigningKey::from_pem("example.com", "s", RSA2048_PKCS1).unwrap();
        let value = k.txt_value();
        assert!(value.len() > 255, "2048-bit value is {} bytes", value.len());
        let parts = k.txt_strings();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 255);
        assert_eq!(parts.concat(), value);
        let record = k.dns_txt_record();
        assert!(record.starts_with("s._domainkey.example.com. IN TXT ( \"v=DKIM1; k=rsa; p="));
        assert!(record.ends_with("\" )"));
        assert_eq!(record.matches('"').count(), 4);
        // 3072-bit keys need three strings.
        let k = SigningKey::from_pem("example.com", "s", RSA3072_PKCS8).unwrap();
        let parts = k.txt_strings();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.len() <= 255));
        assert_eq!(parts.concat(), k.txt_value());
    }

    #[test]
    fn split_txt_edges() {
        assert_eq!(split_txt(""), vec![String::new()]);
        let exact = "a".repeat(255);
        assert_eq!(split_txt(&exact), vec![exact.clone()]);
        let over = "a".repeat(256);
        assert_eq!(split_txt(&over), vec![exact, "a".to_owned()]);
    }

    #[test]
    fn debug_hides_key_material() {
        let k = SigningKey::from_pem("example.com", "s", ED25519).unwrap();
        let dbg = format!("{k:?}");
        assert!(dbg.contains("example.com") && dbg.contains("Ed25519Sha256"));
        assert!(!dbg.contains(&k.public_key_base64()));
    }
}
