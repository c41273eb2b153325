//! Signed tracking tokens, written in lowercase base32 without padding:
//!
//! - v2 (minted now, 45 characters): `message id (u64) ‖ recipient index (u32) ‖ source tag (u32)
//!   ‖ HMAC-SHA256 truncated to 96 bits`. The source tag names the egress source that sent the
//!   message, so a spam complaint can feed the sweep of that source (see [`source_tag`]).
//! - v1 (still verified, 39 characters): the same without the source tag.
//!
//! The versions differ in length and MAC domain, so one can never be read as the other.
//! Base32 rather than base64url because some MTAs lowercase the return path: a token must survive
//! a case change, and the alphabet has no `-`/`_` that could confuse the `b-`/`unsub-` prefixes.

use aws_lc_rs::{digest, hmac};

/// Bytes of the MAC kept in a token (96 bits: forging one is ~2^96 guesses per attempt).
const MAC_LEN: usize = 12;
const V1_PAYLOAD: usize = 8 + 4;
const V2_PAYLOAD: usize = V1_PAYLOAD + 4;
const fn encoded_len(payload: usize) -> usize {
    ((payload + MAC_LEN) * 8).div_ceil(5)
}
/// Length of a token minted now.
pub const TOKEN_LEN: usize = encoded_len(V2_PAYLOAD);
/// Length of a token minted before source tags (still accepted).
pub const V1_TOKEN_LEN: usize = encoded_len(V1_PAYLOAD);
/// Separate these MACs from each other and from any other use of the same key.
const DOMAIN_V1: &[u8] = b"cartero-inmail-token-v1";
const DOMAIN_V2: &[u8] = b"cartero-inmail-token-v2";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a valid token identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenData {
    pub message_id: u64,
    pub rcpt_index: u32,
    /// [`source_tag`] of the egress source that sent the message; `None` for v1 tokens.
    pub source: Option<u32>,
}

/// The 32-bit tag of an egress source name in v2 tokens: the first bytes of its SHA-256. Derived
/// from the name, not its position in the configuration, so that reordering or adding sources
/// does not make tokens already out in the world point at another source.
pub fn source_tag(name: &str) -> u32 {
    let d = digest::digest(&digest::SHA256, name.as_bytes());
    let mut b = [0u8; 4];
    b.copy_from_slice(&d.as_ref()[..4]);
    u32::from_be_bytes(b)
}

/// The HMAC key that mints and verifies tokens.
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key must never reach a log line.
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from secret bytes (the content of `inmail.secret_file`).
    pub fn new(secret: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn mac(&self, domain: &[u8], payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(domain);
        ctx.update(payload);
        ctx.sign()
    }

    /// `payload ‖ truncated MAC`, encoded. `payload` is at most [`V2_PAYLOAD`] bytes (built
    /// by this module only), so the bytes fit a stack buffer: minting runs once per recipient.
    fn seal(&self, domain: &[u8], payload: &[u8]) -> String {
        let tag = self.mac(domain, payload);
        let n = payload.len().min(V2_PAYLOAD);
        let mut raw = [0u8; V2_PAYLOAD + MAC_LEN];
        raw[..n].copy_from_slice(&payload[..n]);
        raw[n..n + MAC_LEN].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        base32_encode(&raw[..n + MAC_LEN])
    }

    /// The token for recipient `rcpt_index` of message `message_id`, sent by the source whose
    /// [`source_tag`] is `source`.
    pub fn mint(&self, message_id: u64, rcpt_index: u32, source: u32) -> String {
        let mut payload = [0u8; V2_PAYLOAD];
        payload[..8].copy_from_slice(&message_id.to_be_bytes());
        payload[8..V1_PAYLOAD].copy_from_slice(&rcpt_index.to_be_bytes());
        payload[V1_PAYLOAD..].copy_from_slice(&source.to_be_bytes());
        self.seal(DOMAIN_V2, &payload)
    }

    /// What `token` identifies, or `None` when it is garbled or was not made with this key.
    /// Case-insensitive; the MAC comparison takes constant time.
    pub fn verify(&self, token: &str) -> Option<TokenData> {
        let (domain, payload_len) = match token.len() {
            TOKEN_LEN => (DOMAIN_V2, V2_PAYLOAD),
            V1_TOKEN_LEN => (DOMAIN_V1, V1_PAYLOAD),
            _ => return None,
        };
        let raw = base32_decode(token)?;
        let (payload, mac) = raw.split_at_checked(payload_len)?;
        let tag = self.mac(domain, payload);
        let expected = tag.as_ref().get(..MAC_LEN)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(expected, mac).ok()?;
        let word = |r: std::ops::Range<usize>| -> Option<u32> {
            Some(u32::from_be_bytes(payload.get(r)?.try_into().ok()?))
        };
        Some(TokenData {
            message_id: u64::from_be_bytes(payload.get(..8)?.try_into().ok()?),
            rcpt_index: word(8..V1_PAYLOAD)?,
            source: match payload_len {
                V2_PAYLOAD => Some(word(V1_PAYLOAD..V2_PAYLOAD)?),
                _ => None,
            },
        })
    }

    /// A v1 token, as minted before source tags: for tests that what is still out in the world
    /// keeps working. Nothing in cartero mints these any more.
    #[doc(hidden)]
    pub fn mint_v1(&self, message_id: u64, rcpt_index: u32) -> String {
        let mut payload = [0u8; V1_PAYLOAD];
        payload[..8].copy_from_slice(&message_id.to_be_bytes());
        payload[8..].copy_from_slice(&rcpt_index.to_be_bytes());
        self.seal(DOMAIN_V1, &payload)
    }
}

fn base32_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity((data.len() * 8).div_ceil(5));
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in data {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn base32_value(c: u8) -> Option<u32> {
    match c.to_ascii_lowercase() {
        c @ b'a'..=b'z' => Some(u32::from(c - b'a')),
        c @ b'2'..=b'7' => Some(u32::from(c - b'2') + 26),
        _ => None,
    }
}

/// Decodes unpadded base32; `None` on any character outside the alphabet or non-zero pad bits.
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text.as_bytes() {
        acc = ((acc << 5) | base32_value(c)?) & 0xffff;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Left-over bits must be zero, so that every byte string has exactly one encoding.
    if acc & ((1 << bits) - 1) != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tokens_round_trip_and_survive_lowercasing_and_uppercasing() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint(0x0000_0012_abcd_ef01, 7, source_tag("ip1"));
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 45);
        // `unsub-` + token must fit a local part (RFC 5321 §4.5.3.1.1: 64 octets).
        assert!("unsub-".len() + TOKEN_LEN <= 64);
        assert!(t.bytes().all(|b| ALPHABET.contains(&b)));
        let want = Some(TokenData {
            message_id: 0x0000_0012_abcd_ef01,
            rcpt_index: 7,
            source: Some(source_tag("ip1")),
        });
        assert_eq!(k.verify(&t), want);
        assert_eq!(k.verify(&t.to_ascii_uppercase()), want);
    }

    #[test]
    fn v1_tokens_still_verify_without_a_source() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint_v1(99, 3);
        assert_eq!(t.len(), V1_TOKEN_LEN);
        assert_eq!(V1_TOKEN_LEN, 39);
        let want = TokenData {
            message_id: 99,
            rcpt_index: 3,
            source: None,
        };
        assert_eq!(k.verify(&t), Some(want));
        assert_eq!(TokenKey::new(b"secret two").verify(&t), None);
    }

    #[test]
    fn source_tags_are_stable_and_tell_names_apart() {
        assert_eq!(source_tag("ip1"), source_tag("ip1"));
        assert_ne!(source_tag("ip1"), source_tag("ip2"));
        assert_ne!(source_tag("default"), source_tag("Default"));
        let k = TokenKey::new(b"k");
        assert_ne!(
            k.mint(1, 0, source_tag("ip1")),
            k.mint(1, 0, source_tag("ip2"))
        );
    }

    #[test]
    fn another_key_or_a_changed_character_does_not_verify() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint(42, 0, 5);
        assert_eq!(TokenKey::new(b"secret two").verify(&t), None);
        for i in 0..t.len() {
            let mut b = t.clone().into_bytes();
            b[i] = if b[i] == b'a' { b'b' } else { b'a' };
            let forged = String::from_utf8(b).unwrap();
            assert_eq!(k.verify(&forged), None, "position {i}");
        }
        assert_eq!(k.verify(&t[..t.len() - 1]), None);
        assert_eq!(k.verify(&format!("{t}a")), None);
        assert_eq!(k.verify(""), None);
    }

    #[test]
    fn a_v2_payload_under_the_v1_mac_does_not_verify() {
        // Same key, v2 layout, but MAC'd in the v1 domain: the versions cannot be confused.
        let k = TokenKey::new(b"k");
        let mut payload = [0u8; V2_PAYLOAD];
        payload[..8].copy_from_slice(&7u64.to_be_bytes());
        assert_eq!(k.verify(&k.seal(DOMAIN_V1, &payload)), None);
    }

    #[test]
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32_encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw6ytbo!"), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_verify(
            v1 in "[a-z2-7]{39}",
            v2 in "[a-z2-7]{45}",
            raw in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let k = TokenKey::new(b"k");
            prop_assert_eq!(k.verify(&v1), None);
            prop_assert_eq!(k.verify(&v2), None);
            let text = String::from_utf8_lossy(&raw);
            prop_assert_eq!(k.verify(&text), None);
        }

        #[test]
        fn every_id_round_trips(id in any::<u64>(), idx in any::<u32>(), src in any::<u32>()) {
            let k = TokenKey::new(b"k");
            let want = TokenData { message_id: id, rcpt_index: idx, source: Some(src) };
            prop_assert_eq!(k.verify(&k.mint(id, idx, src)), Some(want));
            let v1 = TokenData { source: None, ..want };
            prop_assert_eq!(k.verify(&k.mint_v1(id, idx)), Some(v1));
        }
    }
}
