//! The compact in-memory index: per segment a dense vector of message entries plus one "final" bit
//! per recipient. Nothing here holds envelope or body bytes.
//!
//! Memory: a [`MsgEntry`] is 24 bytes per message, plus one bit per recipient packed in `u64` words
//! per segment, plus vector growth slack (at most 2x while a segment is being filled). A message with
//! 10 recipients therefore costs about 26 bytes, i.e. under 3 bytes per queued recipient.

use std::collections::BTreeMap;
use std::fs::File;
use std::sync::Arc;

/// Location and liveness of one message.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MsgEntry {
    /// Offset of the body within the segment file.
    pub body_off: u64,
    pub body_len: u32,
    /// Position of recipient 0 in the segment's final-bit vector.
    pub rcpt_base: u32,
    pub rcpt_count: u32,
    /// Recipients not yet final; the message is dead at zero.
    pub live: u32,
}

/// One segment and its journal.
#[derive(Debug)]
pub(crate) struct SegState {
    pub seg: Arc<File>,
    pub jnl: Arc<File>,
    pub seg_len: u64,
    pub jnl_len: u64,
    pub msgs: Vec<MsgEntry>,
    pub final_bits: Vec<u64>,
    pub total_rcpts: u32,
    pub live_msgs: u32,
}

impl SegState {
    pub(crate) fn new(seg: File, jnl: File, seg_len: u64, jnl_len: u64) -> Self {
        SegState {
            seg: Arc::new(seg),
            jnl: Arc::new(jnl),
            seg_len,
            jnl_len,
            msgs: Vec::new(),
            final_bits: Vec::new(),
            total_rcpts: 0,
            live_msgs: 0,
        }
    }

    /// Appends a live message at position `msgs.len()`; `None` if the recipient bit space is full.
    pub(crate) fn push_message(&mut self, body_off: u64, body_len: u32, rcpts: u32) -> Option<()> {
        let base = self.total_rcpts;
        let total = base.checked_add(rcpts)?;
        self.total_rcpts = total;
        self.final_bits.resize((total as usize).div_ceil(64), 0);
        self.msgs.push(MsgEntry {
            body_off,
            body_len,
            rcpt_base: base,
            rcpt_count: rcpts,
            live: rcpts,
        });
        if rcpts > 0 {
            self.live_msgs += 1;
        }
        Some(())
    }

    /// Whether the recipient is final; out-of-range positions count as final.
    pub(crate) fn is_final(&self, m: &MsgEntry, rcpt: u32) -> bool {
        let bit = m.rcpt_base as usize + rcpt as usize;
        self.final_bits
            .get(bit / 64)
            .is_none_or(|w| w & (1u64 << (bit % 64)) != 0)
    }

    /// Marks a recipient final. Returns (recipient newly final, message newly dead).
    pub(crate) fn mark_final(&mut self, index: u32, rcpt: u32) -> (bool, bool) {
        let Some(m) = self.msgs.get(index as usize).copied() else {
            return (false, false);
        };
        if rcpt >= m.rcpt_count || self.is_final(&m, rcpt) {
            return (false, false);
        }
        let bit = m.rcpt_base as usize + rcpt as usize;
        if let Some(w) = self.final_bits.get_mut(bit / 64) {
            *w |= 1u64 << (bit % 64);
        }
        let mut dead = false;
        if let Some(e) = self.msgs.get_mut(index as usize) {
            e.live = e.live.saturating_sub(1);
            if e.live == 0 {
                self.live_msgs = self.live_msgs.saturating_sub(1);
                dead = true;
            }
        }
        (true, dead)
    }
}

/// All live segments plus running totals.
#[derive(Debug, Default)]
pub(crate) struct Index {
    pub segments: BTreeMap<u32, SegState>,
    /// The segment new messages are appended to; never deleted while open.
    pub current: u32,
    pub live_messages: u64,
    pub live_recipients: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_stays_compact() {
        assert_eq!(std::mem::size_of::<MsgEntry>(), 24);
    }

    #[test]
    fn marking_final_is_idempotent_and_counts_dead_messages() {
        let f = || tempfile::tempfile().unwrap();
        let mut s = SegState::new(f(), f(), 0, 0);
        s.push_message(0, 10, 2).unwrap();
        s.push_message(10, 10, 70).unwrap();
        assert_eq!(s.live_msgs, 2);
        assert_eq!(s.mark_final(0, 1), (true, false));
        assert_eq!(s.mark_final(0, 1), (false, false));
        assert_eq!(s.mark_final(0, 2), (false, false));
        assert_eq!(s.mark_final(0, 0), (true, true));
        assert_eq!(s.live_msgs, 1);
        for r in 0..69 {
            assert_eq!(s.mark_final(1, r), (true, false));
        }
        assert_eq!(s.mark_final(1, 69), (true, true));
        assert_eq!(s.live_msgs, 0);
        assert_eq!(s.mark_final(5, 0), (false, false));
    }
}
