//! Behaviour of the spool across reopen, rolling, damage and concurrency.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cartero_spool::{
    Envelope, MessageId, RcptState, RcptStatus, Recovered, Spool, SpoolError, SpoolOptions,
};

fn envelope(tag: usize, rcpts: usize) -> Envelope {
    let mut metadata = serde_json::Map::new();
    metadata.insert("delivery_id".into(), serde_json::json!(format!("d-{tag}")));
    metadata.insert("campaign_id".into(), serde_json::json!(tag as u64 * 7));
    Envelope {
        sender: format!("bounce+{tag}@example.com"),
        recipients: (0..rcpts)
            .map(|r| format!("u{tag}.{r}@example.net"))
            .collect(),
        received_at: 1_700_000_000_000 + tag as u64,
        expires_at: 1_700_000_000_000 + 86_400_000,
        metadata,
        pool: tag.is_multiple_of(2).then(|| "bulk".to_string()),
        idempotency: Vec::new(),
    }
}

fn body(tag: usize, len: usize) -> Bytes {
    let mut b = format!("Subject: message {tag}\r\n\r\n").into_bytes();
    b.extend((0..len).map(|i| b'a' + ((i + tag) % 26) as u8));
    Bytes::from(b)
}

fn opts(segment_size: u64) -> SpoolOptions {
    SpoolOptions {
        segment_size,
        max_batch: 64,
        max_batch_delay: Duration::ZERO,
        ..SpoolOptions::default()
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

fn state(status: RcptStatus, attempts: u16, reply: Option<&str>) -> RcptState {
    RcptState {
        status,
        attempts,
        next_attempt: 1_700_000_500_000 + u64::from(attempts),
        last_reply: reply.map(str::to_string),
    }
}

fn ids(rec: &[Recovered]) -> Vec<MessageId> {
    rec.iter().map(|r| r.id).collect()
}

#[tokio::test]
async fn insert_then_reopen_recovers_identical_envelope_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert!(rec.is_empty());
    let mut want = Vec::new();
    for tag in 0..5 {
        let id = spool
            .insert(&envelope(tag, tag + 1), body(tag, 500 * tag))
            .await
            .unwrap();
        want.push((id, tag));
    }
    assert_eq!(spool.stats().live_messages, 5);
    assert_eq!(spool.stats().live_recipients, 15);
    spool.close().await.unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec.len(), 5);
    for ((id, tag), r) in want.iter().zip(&rec) {
        assert_eq!(r.id, *id);
        assert_eq!(r.envelope, envelope(*tag, tag + 1));
        assert_eq!(r.rcpts.len(), tag + 1);
        for s in &r.rcpts {
            assert_eq!(s.status, RcptStatus::Queued);
            assert_eq!((s.attempts, s.next_attempt), (0, r.envelope.received_at));
        }
        assert_eq!(spool.read_body(*id).await.unwrap(), body(*tag, 500 * tag));
    }
    assert_eq!(spool.stats().live_recipients, 15);
    assert_eq!(spool.recovery_report(), &Default::default());
    // New ids after a restart never collide with recovered ones.
    let fresh = spool.insert(&envelope(9, 1), body(9, 10)).await.unwrap();
    assert!(want.iter().all(|(id, _)| *id < fresh));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn updates_survive_reopen_and_final_states_are_immutable() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    let id = spool.insert(&envelope(1, 3), body(1, 100)).await.unwrap();
    let s0 = state(RcptStatus::Queued, 2, Some("451 4.7.1 try later"));
    spool
        .update(id, 0, state(RcptStatus::Queued, 1, None))
        .await
        .unwrap();
    spool.update(id, 0, s0.clone()).await.unwrap();
    let s1 = state(RcptStatus::Delivered, 1, Some("250 2.0.0 ok"));
    spool.update(id, 1, s1.clone()).await.unwrap();
    let s2 = state(RcptStatus::Queued, 4, None);
    spool.update_nowait(id, 2, s2.clone()).unwrap();

    let again = spool
        .update(id, 1, state(RcptStatus::Queued, 2, None))
        .await;
    assert!(
        matches!(again, Err(SpoolError::AlreadyFinal { rcpt: 1, .. })),
        "{again:?}"
    );
    let bad = spool.update(id, 3, s0.clone()).await;
    assert!(
        matches!(bad, Err(SpoolError::UnknownRecipient { rcpt: 3, .. })),
        "{bad:?}"
    );
    let unknown = spool.update(MessageId(id.0 + 1), 0, s0.clone()).await;
    assert!(
        matches!(unknown, Err(SpoolError::UnknownMessage(_))),
        "{unknown:?}"
    );
    assert_eq!(spool.stats().live_recipients, 2);
    spool.close().await.unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(ids(&rec), vec![id]);
    assert_eq!(rec[0].rcpts, vec![s0, s1, s2]);
    assert_eq!(spool.stats().live_recipients, 2);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn dead_segments_are_deleted_and_final_messages_not_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(4096)).unwrap();
    let mut all = Vec::new();
    for tag in 0..20 {
        all.push(
            spool
                .insert(&envelope(tag, 2), body(tag, 1000))
                .await
                .unwrap(),
        );
    }
    let segments_before = spool.stats().segments;
    assert!(
        segments_before >= 5,
        "rolled into {segments_before} segments"
    );
    assert_eq!(files(dir.path(), "seg").len(), segments_before);
    let first_seg_files = files(dir.path(), "seg")[0].clone();

    // Finish the first ten messages: two recipients each, one delivered and one failed.
    for id in &all[..10] {
        spool
            .update(*id, 0, state(RcptStatus::Delivered, 1, None))
            .await
            .unwrap();
        spool
            .update(*id, 1, state(RcptStatus::Failed, 3, Some("550 5.1.1 no")))
            .await
            .unwrap();
    }
    let st = spool.stats();
    assert_eq!((st.live_messages, st.live_recipients), (10, 20));
    assert!(
        st.segments < segments_before,
        "dead segments deleted while running"
    );
    assert!(!first_seg_files.exists());
    assert_eq!(files(dir.path(), "seg").len(), st.segments);
    assert_eq!(files(dir.path(), "jnl").len(), st.segments);
    assert!(matches!(
        spool.read_body(all[0]).await,
        Err(SpoolError::UnknownMessage(_))
    ));
    assert_eq!(spool.read_body(all[15]).await.unwrap(), body(15, 1000));
    spool.close().await.unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(4096)).unwrap();
    assert_eq!(ids(&rec), all[10..].to_vec());
    for id in &all[10..] {
        spool
            .update(*id, 0, state(RcptStatus::Delivered, 1, None))
            .await
            .unwrap();
        spool
            .update(*id, 1, state(RcptStatus::Delivered, 1, None))
            .await
            .unwrap();
    }
    assert_eq!(spool.stats().live_messages, 0);
    spool.close().await.unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(4096)).unwrap();
    assert!(rec.is_empty());
    // Only the fresh current segment is left.
    assert_eq!(files(dir.path(), "seg").len(), 1);
    assert_eq!(files(dir.path(), "jnl").len(), 1);
    let st = spool.stats();
    assert_eq!((st.segments, st.live_messages, st.bytes_on_disk), (1, 0, 0));
    let fresh = spool.insert(&envelope(99, 1), body(99, 1)).await.unwrap();
    assert!(
        all.iter().all(|id| *id < fresh),
        "ids keep growing after everything was deleted"
    );
    spool.close().await.unwrap();
}

/// Inserts `n` messages into a fresh spool and returns (ids, the only non-empty segment file).
async fn spool_with(dir: &Path, n: usize) -> (Vec<MessageId>, PathBuf) {
    let (spool, _) = Spool::open(dir, opts(1 << 20)).unwrap();
    let mut v = Vec::new();
    for tag in 0..n {
        v.push(
            spool
                .insert(&envelope(tag, 1), body(tag, 300))
                .await
                .unwrap(),
        );
    }
    spool.close().await.unwrap();
    let seg = files(dir, "seg")
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    (v, seg)
}

#[tokio::test]
async fn torn_tail_is_truncated_and_complete_records_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let (sent, seg) = spool_with(dir.path(), 5).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(ids(&rec), sent[..4].to_vec());
    let report = spool.recovery_report().clone();
    assert!(
        report.truncated_bytes > 3 && report.corrupt.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        len - 3 - report.truncated_bytes
    );
    for (tag, id) in sent[..4].iter().enumerate() {
        assert_eq!(spool.read_body(*id).await.unwrap(), body(tag, 300));
    }
    spool.close().await.unwrap();
}

#[tokio::test]
async fn garbage_after_last_record_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (sent, seg) = spool_with(dir.path(), 5).await;
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut data = std::fs::read(&seg).unwrap();
    data.extend_from_slice(&[0xCA, 0x57, 1, 0, 0xff, 0, 0, 0, 1, 2, 3]);
    data.extend_from_slice(&[0u8; 100]);
    std::fs::write(&seg, &data).unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(ids(&rec), sent);
    assert_eq!(spool.recovery_report().truncated_bytes, 111);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn damage_in_the_middle_is_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (sent, seg) = spool_with(dir.path(), 5).await;
    let mut data = std::fs::read(&seg).unwrap();
    let needle = b"Subject: message 2\r\n";
    let at = data
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    data[at + 3] ^= 0x20;
    std::fs::write(&seg, &data).unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(ids(&rec), vec![sent[0], sent[1], sent[3], sent[4]]);
    let report = spool.recovery_report();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        report.lost,
        vec![cartero_spool::LostMessage {
            id: sent[2],
            recipients: None
        }],
        "the message in the damaged region is named"
    );
    assert_eq!(spool.read_body(sent[4]).await.unwrap(), body(4, 300));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn torn_journal_tail_keeps_earlier_updates() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    let id = spool.insert(&envelope(1, 2), body(1, 10)).await.unwrap();
    let first = state(RcptStatus::Queued, 1, Some("421 busy"));
    spool.update(id, 0, first.clone()).await.unwrap();
    spool
        .update(id, 1, state(RcptStatus::Delivered, 1, None))
        .await
        .unwrap();
    spool.close().await.unwrap();
    let jnl = files(dir.path(), "jnl")
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let len = std::fs::metadata(&jnl).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&jnl)
        .unwrap()
        .set_len(len - 2)
        .unwrap();

    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(ids(&rec), vec![id]);
    assert_eq!(rec[0].rcpts[0], first);
    assert_eq!(
        rec[0].rcpts[1].status,
        RcptStatus::Queued,
        "the torn final update is gone"
    );
    // The journal keeps working after the repair.
    spool
        .update(id, 1, state(RcptStatus::Failed, 2, None))
        .await
        .unwrap();
    spool.close().await.unwrap();
    let (spool, rec) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    assert_eq!(rec[0].rcpts[1].status, RcptStatus::Failed);
    spool.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inserts_are_durable_distinct_and_batched() {
    let dir = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        segment_size: 256 * 1024,
        max_batch: 256,
        max_batch_delay: Duration::from_millis(1),
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(dir.path(), o.clone()).unwrap();
    let mut tasks = Vec::new();
    for tag in 0..1000 {
        let s = spool.clone();
        tasks.push(tokio::spawn(async move {
            (
                tag,
                s.insert(&envelope(tag, 1), body(tag, 1024)).await.unwrap(),
            )
        }));
    }
    let mut got = Vec::new();
    for t in tasks {
        got.push(t.await.unwrap());
    }
    let distinct: HashSet<MessageId> = got.iter().map(|(_, id)| *id).collect();
    assert_eq!(distinct.len(), 1000);
    let st = spool.stats();
    assert_eq!(st.live_messages, 1000);
    assert!(
        st.fsync_barriers > 0 && st.fsync_barriers < 1000,
        "barriers: {}",
        st.fsync_barriers
    );
    assert!(st.segments > 1);
    spool.close().await.unwrap();

    let (spool, rec) = Spool::open(dir.path(), o).unwrap();
    let back: HashSet<MessageId> = ids(&rec).into_iter().collect();
    assert_eq!(back, distinct);
    for (tag, id) in got.iter().step_by(97) {
        assert_eq!(spool.read_body(*id).await.unwrap(), body(*tag, 1024));
    }
    spool.close().await.unwrap();
}

#[tokio::test]
async fn closed_spool_refuses_work_and_bad_input_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(1 << 20)).unwrap();
    let mut e = envelope(1, 1);
    e.recipients.clear();
    assert!(matches!(
        spool.insert(&e, body(1, 1)).await,
        Err(SpoolError::NoRecipients)
    ));
    let other = spool.clone();
    spool.close().await.unwrap();
    let r = other.insert(&envelope(1, 1), body(1, 1)).await;
    assert!(matches!(r, Err(SpoolError::Closed)), "{r:?}");
}
