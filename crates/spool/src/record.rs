//! On-disk record framing and payload codecs.
//!
//! Frame: `magic[2] | type u8 | reserved u8 | len u32 LE | crc u32 LE | payload[len]`, where the CRC
//! covers bytes 2..8 of the header (type, reserved, len) and the payload, so a flipped length or type
//! is caught as well as a damaged payload. Two magic bytes plus a known type make resynchronising
//! after a damaged record cheap: almost no garbage position passes the header check, so the CRC is
//! rarely computed over junk.

use crate::crc::Crc32;
use crate::{RcptState, RcptStatus};

/// Frame header length in bytes.
pub(crate) const HEADER_LEN: usize = 12;
const MAGIC: [u8; 2] = [0xCA, 0x57];

/// A message record in a `.seg` file.
pub(crate) const TYPE_MESSAGE: u8 = 1;
/// A recipient-state record in a `.jnl` file.
pub(crate) const TYPE_UPDATE: u8 = 2;
/// An opaque event record in an outbox `.log` file.
pub(crate) const TYPE_EVENT: u8 = 3;

/// Fixed part of a message payload: id u64, rcpt count u32, envelope length u32.
pub(crate) const MESSAGE_FIXED: usize = 16;

/// Appends one frame whose payload is the concatenation of `parts`.
pub(crate) fn encode_frame(out: &mut Vec<u8>, ty: u8, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(ty);
    out.push(0);
    // Callers bound payloads well below 4 GiB (body length is checked on insert).
    out.extend_from_slice(&(len as u32).to_le_bytes());
    let mut crc = Crc32::new();
    crc.update(&out[start + 2..start + 8]);
    for p in parts {
        crc.update(p);
    }
    out.extend_from_slice(&crc.finish().to_le_bytes());
    for p in parts {
        out.extend_from_slice(p);
    }
}

/// Result of decoding one frame at a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A valid frame: type, payload range within the buffer, offset just past the frame.
    Ok {
        ty: u8,
        payload: std::ops::Range<usize>,
        next: usize,
    },
    /// Not a valid frame here.
    Bad,
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

/// Checks a frame header: `Some((type, payload length, stored crc))` when magic, type and the
/// reserved byte are right. The length is not checked against anything.
pub(crate) fn decode_header(hdr: &[u8]) -> Option<(u8, u32, u32)> {
    let hdr = hdr.get(..HEADER_LEN)?;
    let known = matches!(hdr[2], TYPE_MESSAGE | TYPE_UPDATE | TYPE_EVENT);
    if hdr[0..2] != MAGIC || !known || hdr[3] != 0 {
        return None;
    }
    Some((hdr[2], le_u32(hdr, 4)?, le_u32(hdr, 8)?))
}

/// Whether `payload` matches the crc stored in header `hdr`.
pub(crate) fn crc_matches(hdr: &[u8], payload: &[u8], want: u32) -> bool {
    let Some(covered) = hdr.get(2..8) else {
        return false;
    };
    let mut crc = Crc32::new();
    crc.update(covered);
    crc.update(payload);
    crc.finish() == want
}

/// Decodes the frame starting at `pos`; never panics whatever the bytes.
pub(crate) fn decode_at(buf: &[u8], pos: usize) -> Frame {
    let Some(hdr) = pos
        .checked_add(HEADER_LEN)
        .and_then(|end| buf.get(pos..end))
    else {
        return Frame::Bad;
    };
    let Some((ty, len, want)) = decode_header(hdr) else {
        return Frame::Bad;
    };
    let start = pos + HEADER_LEN;
    let Some(end) = start.checked_add(len as usize) else {
        return Frame::Bad;
    };
    let Some(payload) = buf.get(start..end) else {
        return Frame::Bad;
    };
    if !crc_matches(hdr, payload, want) {
        return Frame::Bad;
    }
    Frame::Ok {
        ty,
        payload: start..end,
        next: end,
    }
}

/// Outcome of scanning a whole file image.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Valid frames in file order: (frame offset, type, payload range).
    pub frames: Vec<(usize, u8, std::ops::Range<usize>)>,
    /// Length to keep: bytes past it are a torn tail with no valid frame after them.
    pub valid_len: usize,
    /// Damaged regions followed by valid frames: (offset, length). These are not a crash artefact
    /// of an append-only writer, so they are reported rather than silently dropped.
    pub corrupt: Vec<(usize, usize)>,
}

/// Scans a file image frame by frame, resynchronising past damaged regions.
pub(crate) fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0;
    while pos < buf.len() {
        match decode_at(buf, pos) {
            Frame::Ok { ty, payload, next } => {
                out.frames.push((pos, ty, payload));
                pos = next;
            }
            Frame::Bad => match resync(buf, pos + 1) {
                Some(found) => {
                    out.corrupt.push((pos, found - pos));
                    pos = found;
                }
                None => break,
            },
        }
    }
    out.valid_len = pos.min(buf.len());
    out
}

fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let mut p = from;
    while p < buf.len() {
        let rest = buf.get(p..)?;
        let off = rest.windows(2).position(|w| w == MAGIC)?;
        p += off;
        if matches!(decode_at(buf, p), Frame::Ok { .. }) {
            return Some(p);
        }
        p += 1;
    }
    None
}

/// A decoded message payload; ranges index into the payload slice given to [`decode_message`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MessageRec {
    pub id: u64,
    pub rcpts: u32,
    pub envelope: std::ops::Range<usize>,
    pub body: std::ops::Range<usize>,
}

/// Fixed-size prefix of a message payload.
pub(crate) fn message_prefix(id: u64, rcpts: u32, env_len: u32) -> [u8; MESSAGE_FIXED] {
    let mut b = [0u8; MESSAGE_FIXED];
    b[0..8].copy_from_slice(&id.to_le_bytes());
    b[8..12].copy_from_slice(&rcpts.to_le_bytes());
    b[12..16].copy_from_slice(&env_len.to_le_bytes());
    b
}

/// Splits a message payload; `None` if it is malformed.
pub(crate) fn decode_message(p: &[u8]) -> Option<MessageRec> {
    let id = le_u64(p, 0)?;
    let rcpts = le_u32(p, 8)?;
    let env_len = le_u32(p, 12)? as usize;
    let env_end = MESSAGE_FIXED.checked_add(env_len)?;
    if env_end > p.len() {
        return None;
    }
    Some(MessageRec {
        id,
        rcpts,
        envelope: MESSAGE_FIXED..env_end,
        body: env_end..p.len(),
    })
}

/// Encodes a recipient-state update payload for message `index` within its segment.
pub(crate) fn encode_update(index: u32, rcpt: u32, st: &RcptState) -> Vec<u8> {
    let reply = st.last_reply.as_deref().map(str::as_bytes);
    let mut b = Vec::with_capacity(24 + reply.map_or(0, <[u8]>::len));
    b.extend_from_slice(&index.to_le_bytes());
    b.extend_from_slice(&rcpt.to_le_bytes());
    b.push(match st.status {
        RcptStatus::Queued => 0,
        RcptStatus::Delivered => 1,
        RcptStatus::Failed => 2,
    });
    b.extend_from_slice(&st.attempts.to_le_bytes());
    b.extend_from_slice(&st.next_attempt.to_le_bytes());
    if let Some(r) = reply {
        b.push(1);
        b.extend_from_slice(r);
    } else {
        b.push(0);
    }
    b
}

/// Decodes an update payload into (message index, recipient, state); `None` if malformed.
pub(crate) fn decode_update(p: &[u8]) -> Option<(u32, u32, RcptState)> {
    let index = le_u32(p, 0)?;
    let rcpt = le_u32(p, 4)?;
    let status = match *p.get(8)? {
        0 => RcptStatus::Queued,
        1 => RcptStatus::Delivered,
        2 => RcptStatus::Failed,
        _ => return None,
    };
    let attempts = u16::from_le_bytes([*p.get(9)?, *p.get(10)?]);
    let next_attempt = le_u64(p, 11)?;
    let last_reply = match *p.get(19)? {
        0 if p.len() == 20 => None,
        1 => Some(String::from_utf8(p.get(20..)?.to_vec()).ok()?),
        _ => return None,
    };
    Some((
        index,
        rcpt,
        RcptState {
            status,
            attempts,
            next_attempt,
            last_reply,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(ty: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_frame(&mut v, ty, &[payload]);
        v
    }

    #[test]
    fn frame_roundtrip_and_any_flipped_bit_is_rejected() {
        let f = frame(TYPE_UPDATE, b"hello world");
        match decode_at(&f, 0) {
            Frame::Ok { ty, payload, next } => {
                assert_eq!(ty, TYPE_UPDATE);
                assert_eq!(&f[payload], b"hello world");
                assert_eq!(next, f.len());
            }
            Frame::Bad => panic!("valid frame rejected"),
        }
        for byte in 0..f.len() {
            for bit in 0..8 {
                let mut g = f.clone();
                g[byte] ^= 1 << bit;
                assert_eq!(decode_at(&g, 0), Frame::Bad, "flip {byte}:{bit}");
            }
        }
    }

    #[test]
    fn scan_truncates_torn_tail_and_reports_middle_damage() {
        let a = frame(TYPE_MESSAGE, b"first");
        let b = frame(TYPE_MESSAGE, b"second");
        let c = frame(TYPE_MESSAGE, b"third");
        let mut img = [a.clone(), b.clone(), c.clone()].concat();
        img.truncate(img.len() - 2);
        let s = scan(&img);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.valid_len, a.len() + b.len());
        assert!(s.corrupt.is_empty());

        let mut img = [a.clone(), b.clone(), c.clone()].concat();
        img[a.len() + HEADER_LEN + 1] ^= 0xff;
        let s = scan(&img);
        assert_eq!(s.frames.len(), 2);
        assert_eq!(s.corrupt, vec![(a.len(), b.len())]);
        assert_eq!(s.valid_len, img.len());
    }

    #[test]
    fn update_roundtrip() {
        for reply in [None, Some("250 2.0.0 ok".to_string()), Some(String::new())] {
            let st = RcptState {
                status: RcptStatus::Failed,
                attempts: 7,
                next_attempt: 123_456_789,
                last_reply: reply,
            };
            let enc = encode_update(3, 9, &st);
            assert_eq!(decode_update(&enc), Some((3, 9, st)));
        }
    }

    #[test]
    fn message_roundtrip() {
        let prefix = message_prefix(42, 2, 3);
        let p = [&prefix[..], b"env", b"body!"].concat();
        let m = decode_message(&p).unwrap();
        assert_eq!((m.id, m.rcpts), (42, 2));
        assert_eq!(&p[m.envelope], b"env");
        assert_eq!(&p[m.body], b"body!");
    }

    proptest! {
        #[test]
        fn decoders_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let s = scan(&bytes);
            prop_assert!(s.valid_len <= bytes.len());
            for (_, _, r) in &s.frames {
                prop_assert!(r.end <= bytes.len());
            }
            let _ = decode_message(&bytes);
            let _ = decode_update(&bytes);
        }

        #[test]
        fn valid_frames_inside_garbage_are_found(
            junk in proptest::collection::vec(any::<u8>(), 0..64),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut img = junk.clone();
            encode_frame(&mut img, TYPE_UPDATE, &[&payload]);
            let s = scan(&img);
            // The real frame is the last one found (garbage cannot swallow it: a frame found in junk
            // ends inside the image, and scanning continues after it).
            let (_, ty, r) = s.frames.last().cloned().expect("frame found");
            prop_assert_eq!(ty, TYPE_UPDATE);
            prop_assert_eq!(&img[r], &payload[..]);
        }
    }
}
