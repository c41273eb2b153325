//! Signed tracking tokens, written in lowercase base32 without padding:
//!
//! - v3 (minted now, 58 characters): `message id (u64) ‖ recipient index (u32) ‖ source tag (u32)
//!   ‖ issue day (u16, days since 1970-01-01 UTC) ‖ address tag (24 bits) ‖ domain tag (24 bits)
//!   ‖ HMAC-SHA256 truncated to 96 bits`. The tags are keyed hashes of the recipient's lower-cased
//!   address and domain: the token does not reveal the address, but proves whether an address or
//!   domain named by a report is the one it was minted for (see [`TokenKey::named`]).
//! - v2 (still verified, 45 characters): the first three fields only.
//! - v1 (still verified, 39 characters): message id and recipient index only.
//!
//! The versions differ in length and MAC domain, so one can never be read as another.
//! Base32 rather than base64url because some MTAs lowercase the return path: a token must survive
//! a case change, and the alphabet has no `-`/`_` that could confuse the `b-`/`unsub-` prefixes.
//! `unsub-` plus a v3 token is 64 characters, the longest local part RFC 5321 allows.

use aws_lc_rs::{digest, hmac};

/// Bytes of the MAC kept in a token (96 bits: forging one is ~2^96 guesses per attempt).
const MAC_LEN: usize = 12;
/// Bytes of an address or domain tag. Tags are keyed, so they can only be guessed online, one
/// report per guess: matching a chosen address takes ~2^24 reports for one token.
const TAG_LEN: usize = 3;
const V1_PAYLOAD: usize = 8 + 4;
const V2_PAYLOAD: usize = V1_PAYLOAD + 4;
const V3_PAYLOAD: usize = V2_PAYLOAD + 2 + 2 * TAG_LEN;
const fn encoded_len(payload: usize) -> usize {
    ((payload + MAC_LEN) * 8).div_ceil(5)
}
/// Length of a token minted now.
pub const TOKEN_LEN: usize = encoded_len(V3_PAYLOAD);
/// Length of a token minted with a source tag but no recipient tags (still accepted).
pub const V2_TOKEN_LEN: usize = encoded_len(V2_PAYLOAD);
/// Length of a token minted before source tags (still accepted).
pub const V1_TOKEN_LEN: usize = encoded_len(V1_PAYLOAD);
/// Separate these MACs from each other and from any other use of the same key.
const DOMAIN_V1: &[u8] = b"cartero-inmail-token-v1";
const DOMAIN_V2: &[u8] = b"cartero-inmail-token-v2";
const DOMAIN_V3: &[u8] = b"cartero-inmail-token-v3";
const DOMAIN_ADDRESS_TAG: &[u8] = b"cartero-inmail-address-tag";
const DOMAIN_DOMAIN_TAG: &[u8] = b"cartero-inmail-domain-tag";
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const DAY_MS: u64 = 86_400_000;

/// What a valid token identifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenData {
    pub message_id: u64,
    pub rcpt_index: u32,
    /// [`source_tag`] of the egress source that sent the message; `None` for v1 tokens.
    pub source: Option<u32>,
    /// What a v3 token says about its recipient; `None` for v1 and v2 tokens.
    pub recipient: Option<RecipientTags>,
}

/// The recipient part of a v3 token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientTags {
    /// Day the token was minted, in days since 1970-01-01 UTC.
    pub issued_day: u16,
    address: [u8; TAG_LEN],
    domain: [u8; TAG_LEN],
}

impl TokenData {
    /// Whole days between minting and `now_ms` (0 for v1 and v2 tokens, which carry no date).
    pub fn age_days(&self, now_ms: u64) -> u64 {
        self.recipient.map_or(0, |r| {
            day_of(now_ms).saturating_sub(u64::from(r.issued_day))
        })
    }
}

/// How an address named by a report relates to the recipient its token was minted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    /// The token's recipient (compared lower-cased).
    Recipient,
    /// Another address at the token recipient's domain: a redacted local part (RFC 6590).
    SameDomain,
    /// An address at another domain.
    Other,
    /// A v1 or v2 token, which cannot tell.
    Unknown,
}

/// The 32-bit tag of an egress source name in v2 and v3 tokens: the first bytes of its SHA-256.
/// Derived from the name, not its position in the configuration, so that reordering or adding
/// sources does not make tokens already out in the world point at another source.
pub fn source_tag(name: &str) -> u32 {
    let d = digest::digest(&digest::SHA256, name.as_bytes());
    let mut b = [0u8; 4];
    b.copy_from_slice(&d.as_ref()[..4]);
    u32::from_be_bytes(b)
}

/// An address as compared by tokens, before lower-casing: without angle brackets or a trailing
/// dot. Returns the address and its domain (empty when there is no `@`).
fn normalize(address: &str) -> (&str, &str) {
    let a = address
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .trim_end_matches('.');
    (a, a.rsplit_once('@').map_or("", |(_, d)| d))
}

/// Days since 1970-01-01 UTC, saturating at the last day a u16 holds (in 2149).
fn day_of(now_ms: u64) -> u64 {
    (now_ms / DAY_MS).min(u64::from(u16::MAX))
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

    /// The keyed tag of `text` lower-cased (ASCII: what `domain_of` and the queue compare),
    /// through a stack buffer so that minting allocates nothing.
    fn tag(&self, domain: &[u8], text: &str) -> [u8; TAG_LEN] {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(domain);
        let mut buf = [0u8; 64];
        for chunk in text.as_bytes().chunks(buf.len()) {
            let lower = &mut buf[..chunk.len()];
            lower.copy_from_slice(chunk);
            lower.make_ascii_lowercase();
            ctx.update(lower);
        }
        let mut t = [0u8; TAG_LEN];
        t.copy_from_slice(&ctx.sign().as_ref()[..TAG_LEN]);
        t
    }

    /// `payload ‖ truncated MAC`, encoded. `payload` is at most [`V3_PAYLOAD`] bytes (built
    /// by this module only), so the bytes fit a stack buffer: minting runs once per recipient.
    fn seal(&self, domain: &[u8], payload: &[u8]) -> String {
        let tag = self.mac(domain, payload);
        let n = payload.len().min(V3_PAYLOAD);
        let mut raw = [0u8; V3_PAYLOAD + MAC_LEN];
        raw[..n].copy_from_slice(&payload[..n]);
        raw[n..n + MAC_LEN].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        base32_encode(&raw[..n + MAC_LEN])
    }

    /// The token for recipient `rcpt_index` (address `rcpt`) of message `message_id`, sent at
    /// `now_ms` by the source whose [`source_tag`] is `source`.
    pub fn mint(
        &self,
        message_id: u64,
        rcpt_index: u32,
        source: u32,
        rcpt: &str,
        now_ms: u64,
    ) -> String {
        let (address, domain) = normalize(rcpt);
        let mut p = [0u8; V3_PAYLOAD];
        p[..8].copy_from_slice(&message_id.to_be_bytes());
        p[8..V1_PAYLOAD].copy_from_slice(&rcpt_index.to_be_bytes());
        p[V1_PAYLOAD..V2_PAYLOAD].copy_from_slice(&source.to_be_bytes());
        // day_of saturates at u16::MAX, so the conversion cannot fail.
        let day = u16::try_from(day_of(now_ms)).unwrap_or(u16::MAX);
        p[V2_PAYLOAD..V2_PAYLOAD + 2].copy_from_slice(&day.to_be_bytes());
        let tags = V2_PAYLOAD + 2;
        p[tags..tags + TAG_LEN].copy_from_slice(&self.tag(DOMAIN_ADDRESS_TAG, address));
        p[tags + TAG_LEN..].copy_from_slice(&self.tag(DOMAIN_DOMAIN_TAG, domain));
        self.seal(DOMAIN_V3, &p)
    }

    /// What `token` identifies, or `None` when it is garbled or was not made with this key.
    /// Case-insensitive; the MAC comparison takes constant time.
    pub fn verify(&self, token: &str) -> Option<TokenData> {
        let (domain, payload_len) = match token.len() {
            TOKEN_LEN => (DOMAIN_V3, V3_PAYLOAD),
            V2_TOKEN_LEN => (DOMAIN_V2, V2_PAYLOAD),
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
        let recipient = match payload.get(V2_PAYLOAD..) {
            Some(rest) if rest.len() == V3_PAYLOAD - V2_PAYLOAD => {
                let (day, tags) = rest.split_at(2);
                let (address, domain) = tags.split_at(TAG_LEN);
                Some(RecipientTags {
                    issued_day: u16::from_be_bytes(day.try_into().ok()?),
                    address: address.try_into().ok()?,
                    domain: domain.try_into().ok()?,
                })
            }
            _ => None,
        };
        Some(TokenData {
            message_id: u64::from_be_bytes(payload.get(..8)?.try_into().ok()?),
            rcpt_index: word(8..V1_PAYLOAD)?,
            source: match payload_len {
                V1_PAYLOAD => None,
                _ => Some(word(V1_PAYLOAD..V2_PAYLOAD)?),
            },
            recipient,
        })
    }

    /// Whether `address` (as a report names it) is the recipient `t` was minted for. The tag
    /// comparison need not be constant-time: a tag is no credential, only a check on a token
    /// that already verified.
    pub fn named(&self, t: &TokenData, address: &str) -> Named {
        let Some(r) = t.recipient else {
            return Named::Unknown;
        };
        let (address, domain) = normalize(address);
        if self.tag(DOMAIN_DOMAIN_TAG, domain) != r.domain {
            Named::Other
        } else if self.tag(DOMAIN_ADDRESS_TAG, address) == r.address {
            Named::Recipient
        } else {
            Named::SameDomain
        }
    }

    /// A v2 token, as minted before recipient tags: for tests that what is still out in the
    /// world keeps working. Nothing in cartero mints these any more.
    #[doc(hidden)]
    pub fn mint_v2(&self, message_id: u64, rcpt_index: u32, source: u32) -> String {
        let mut payload = [0u8; V2_PAYLOAD];
        payload[..8].copy_from_slice(&message_id.to_be_bytes());
        payload[8..V1_PAYLOAD].copy_from_slice(&rcpt_index.to_be_bytes());
        payload[V1_PAYLOAD..].copy_from_slice(&source.to_be_bytes());
        self.seal(DOMAIN_V2, &payload)
    }

    /// A v1 token, as minted before source tags (see [`TokenKey::mint_v2`]).
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

    /// 2023-11-14T22:13:20Z, day 19675.
    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn tokens_round_trip_and_survive_lowercasing_and_uppercasing() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint(
            0x0000_0012_abcd_ef01,
            7,
            source_tag("ip1"),
            "Bob@Example.test",
            NOW,
        );
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(TOKEN_LEN, 58);
        // `unsub-` + token must fit a local part (RFC 5321 §4.5.3.1.1: 64 octets).
        assert!("unsub-".len() + TOKEN_LEN <= 64);
        assert!(t.bytes().all(|b| ALPHABET.contains(&b)));
        let got = k.verify(&t).expect("verifies");
        assert_eq!(got.message_id, 0x0000_0012_abcd_ef01);
        assert_eq!(got.rcpt_index, 7);
        assert_eq!(got.source, Some(source_tag("ip1")));
        assert_eq!(got.recipient.map(|r| r.issued_day), Some(19675));
        assert_eq!(k.verify(&t.to_ascii_uppercase()), Some(got));
        assert_eq!(got.age_days(NOW + 3 * DAY_MS), 3);
    }

    #[test]
    fn a_v3_token_tells_its_recipient_from_other_addresses() {
        let k = TokenKey::new(b"secret one");
        let t = k.verify(&k.mint(1, 0, 9, "bob@example.test", NOW)).unwrap();
        for same in [
            "bob@example.test",
            "<BOB@Example.TEST>",
            " bob@example.test. ",
        ] {
            assert_eq!(k.named(&t, same), Named::Recipient, "{same}");
        }
        for redacted in [
            "redacted@example.test",
            "xxxxxx@EXAMPLE.test",
            "bob+x@example.test",
        ] {
            assert_eq!(k.named(&t, redacted), Named::SameDomain, "{redacted}");
        }
        for other in ["bob@example.org", "bob@sub.example.test", "bob", "", "@"] {
            assert_eq!(k.named(&t, other), Named::Other, "{other:?}");
        }
        // The tags are keyed: another key's tokens say nothing about this one's recipients.
        let other_key = TokenKey::new(b"secret two");
        assert_eq!(other_key.named(&t, "bob@example.test"), Named::Other);
    }

    #[test]
    fn v1_and_v2_tokens_still_verify_and_cannot_tell_addresses() {
        let k = TokenKey::new(b"secret one");
        let v2 = k.mint_v2(99, 3, source_tag("ip1"));
        assert_eq!((v2.len(), V2_TOKEN_LEN), (45, 45));
        let v1 = k.mint_v1(99, 3);
        assert_eq!((v1.len(), V1_TOKEN_LEN), (39, 39));
        let want = TokenData {
            message_id: 99,
            rcpt_index: 3,
            source: Some(source_tag("ip1")),
            recipient: None,
        };
        assert_eq!(k.verify(&v2), Some(want));
        let want_v1 = TokenData {
            source: None,
            ..want
        };
        assert_eq!(k.verify(&v1), Some(want_v1));
        assert_eq!(k.named(&want, "a@b.test"), Named::Unknown);
        assert_eq!(want.age_days(NOW), 0);
        assert_eq!(TokenKey::new(b"secret two").verify(&v1), None);
        assert_eq!(TokenKey::new(b"secret two").verify(&v2), None);
    }

    #[test]
    fn source_tags_are_stable_and_tell_names_apart() {
        assert_eq!(source_tag("ip1"), source_tag("ip1"));
        assert_ne!(source_tag("ip1"), source_tag("ip2"));
        assert_ne!(source_tag("default"), source_tag("Default"));
        let k = TokenKey::new(b"k");
        assert_ne!(
            k.mint(1, 0, source_tag("ip1"), "a@b.test", NOW),
            k.mint(1, 0, source_tag("ip2"), "a@b.test", NOW)
        );
    }

    #[test]
    fn another_key_or_a_changed_character_does_not_verify() {
        let k = TokenKey::new(b"secret one");
        let t = k.mint(42, 0, 5, "a@b.test", NOW);
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
    fn a_payload_under_another_version_s_mac_does_not_verify() {
        // Same key, one version's layout MAC'd in another's domain: versions cannot be confused.
        let k = TokenKey::new(b"k");
        let mut payload = [0u8; V3_PAYLOAD];
        payload[..8].copy_from_slice(&7u64.to_be_bytes());
        assert_eq!(k.verify(&k.seal(DOMAIN_V1, &payload[..V2_PAYLOAD])), None);
        assert_eq!(k.verify(&k.seal(DOMAIN_V2, &payload)), None);
        assert_eq!(k.verify(&k.seal(DOMAIN_V3, &payload[..V2_PAYLOAD])), None);
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
            v3 in "[a-z2-7]{58}",
            raw in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let k = TokenKey::new(b"k");
            prop_assert_eq!(k.verify(&v1), None);
            prop_assert_eq!(k.verify(&v2), None);
            prop_assert_eq!(k.verify(&v3), None);
            let text = String::from_utf8_lossy(&raw);
            prop_assert_eq!(k.verify(&text), None);
        }

        #[test]
        fn every_id_round_trips(
            id in any::<u64>(),
            idx in any::<u32>(),
            src in any::<u32>(),
            now in any::<u64>(),
            rcpt in "[a-z]{1,8}@[a-z]{1,8}\\.test",
        ) {
            let k = TokenKey::new(b"k");
            let t = k.verify(&k.mint(id, idx, src, &rcpt, now)).expect("verifies");
            prop_assert_eq!((t.message_id, t.rcpt_index, t.source), (id, idx, Some(src)));
            prop_assert_eq!(k.named(&t, &rcpt), Named::Recipient);
            let v2 = TokenData { message_id: id, rcpt_index: idx, source: Some(src), recipient: None };
            prop_assert_eq!(k.verify(&k.mint_v2(id, idx, src)), Some(v2));
            let v1 = TokenData { source: None, ..v2 };
            prop_assert_eq!(k.verify(&k.mint_v1(id, idx)), Some(v1));
        }
    }
}
