//! Signed tracking tokens: `message id (u64) ‖ recipient index (u32) ‖ HMAC-SHA256 truncated to
//! 96 bits`, written in lowercase base32 without padding (39 characters).
//!
//! Base32 rather than base64url because some MTAs lowercase the return path: a token must survive
//! a case change, and the alphabet has no `-`/`_` that could confuse the `b-`/`unsub-` prefixes.

use aws_lc_rs::hmac;

/// Bytes of the MAC kept in a token (96 bits: forging one is ~2^96 guesses per attempt).
const MAC_LEN: usize = 12;
const PAYLOAD_LEN: usize = 8 + 4;
const RAW_LEN: usize = PAYLOAD_LEN + MAC_LEN;
/// Length of an encoded token.
pub const TOKEN_LEN: usize = (RAW_LEN * 8).div_ceil(5);
/// Separates these MACs from any other use of the same key.
const DOMAIN: &[u8] = b"cartero-inmail-token-v1";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// What a valid token identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenData {
    pub message_id: u64,
    pub rcpt_index: u32,
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

    fn mac(&self, payload: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(DOMAIN);
        ctx.update(payload);
        ctx.sign()
    }

    /// The token for recipient `rcpt_index` of message `message_id`.
    pub fn mint(&self, message_id: u64, rcpt_index: u32) -> String {
        let mut raw = [0u8; RAW_LEN];
        raw[..8].copy_from_slice(&message_id.to_be_bytes());
        raw[8..PAYLOAD_LEN].copy_from_slice(&rcpt_index.to_be_bytes());
        let tag = self.mac(&raw[..PAYLOAD_LEN]);
        raw[PAYLOAD_LEN..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        base32_encode(&raw)
    }

    /// What `token` identifies, or `None` when it is garbled or was not made with this key.
    /// Case-insensitive; the MAC comparison takes constant time.
    pub fn verify(&self, token: &str) -> Option<TokenData> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let raw = base32_decode(token)?;
        let (payload, mac) = raw.split_at_checked(PAYLOAD_LEN)?;
        let tag = self.mac(payload);
        let expected = tag.as_ref().get(..MAC_LEN)?;
        aws_lc_rs::constant_time::verify_slices_are_equal(expected, mac).ok()?;
        let message_id = u64::from_be_bytes(payload.get(..8)?.try_into().ok()?);
        let rcpt_index = u32::from_be_bytes(payload.get(8..)?.try_into().ok()?);
        Some(TokenData {
            message_id,
            rcpt_index,
        })
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
        let t = k.mint(0x0000_0012_abcd_ef01, 7);
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(t.bytes().all(|b| ALPHABET.contains(&b)));
        let want = Some(TokenData {
            message_id: 0x0000_0012_abcd_ef01,
            rcpt_index: 7,
        });
        assert_eq!(k.verify(&t), want);
        assert_eq!(k.verify(&t.to_ascii_uppercase()), want);
    }

    #[test]
    fn another_key_or_a_changed_character_does_not_verify() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint(42, 0);
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
    fn base32_matches_rfc4648_vectors() {
        assert_eq!(base32_encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_decode("MZXW6YTBOI").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw6ytbo!"), None);
    }

    proptest! {
        #[test]
        fn random_bytes_never_verify(s in "[a-z2-7]{39}", raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let k = TokenKey::new(b"k");
            prop_assert_eq!(k.verify(&s), None);
            let text = String::from_utf8_lossy(&raw);
            prop_assert_eq!(k.verify(&text), None);
        }

        #[test]
        fn every_id_round_trips(id in any::<u64>(), idx in any::<u32>()) {
            let k = TokenKey::new(b"k");
            prop_assert_eq!(k.verify(&k.mint(id, idx)), Some(TokenData { message_id: id, rcpt_index: idx }));
        }
    }
}
