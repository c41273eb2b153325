//! The event outbox: commit order, acknowledgements across reopen, repair, deletion, consumers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cartero_spool::{
    Envelope, MessageId, OutboxEntry, OutboxReader, Position, RcptState, RcptStatus, Spool,
    SpoolError, SpoolOptions,
};

const WAIT: Duration = Duration::from_secs(10);

fn opts(consumers: &[&str]) -> SpoolOptions {
    SpoolOptions {
        outbox_consumers: consumers.iter().map(|c| c.to_string()).collect(),
        ..SpoolOptions::default()
    }
}

fn envelope(rcpts: usize) -> Envelope {
    Envelope {
        sender: "s@example.com".into(),
        recipients: (0..rcpts).map(|r| format!("r{r}@example.net")).collect(),
        received_at: 1_700_000_000_000,
        expires_at: 1_700_086_400_000,
        metadata: serde_json::Map::new(),
        pool: None,
        idempotency: Vec::new(),
    }
}

fn delivered() -> RcptState {
    RcptState {
        status: RcptStatus::Delivered,
        attempts: 1,
        next_attempt: 0,
        last_reply: Some("250 ok".into()),
    }
}

fn ev(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

fn texts(entries: &[OutboxEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8(e.data.to_vec()).unwrap())
        .collect()
}

fn logs(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir.join("outbox")) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Reads until `n` entries arrived (in batches of at most `max`), failing after [`WAIT`].
async fn read_n(r: &mut OutboxReader, n: usize, max: usize) -> Vec<OutboxEntry> {
    let mut out = Vec::new();
    while out.len() < n {
        let batch = tokio::time::timeout(WAIT, r.next_batch(max))
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} entries: {:?}", out.len(), texts(&out)))
            .unwrap();
        assert!(!batch.is_empty() && batch.len() <= max, "{}", batch.len());
        out.extend(batch);
    }
    out
}

/// Asserts that nothing is delivered within a short time.
async fn assert_nothing(r: &mut OutboxReader) {
    let got = tokio::time::timeout(Duration::from_millis(200), r.next_batch(10)).await;
    assert!(
        got.is_err(),
        "unexpected entries: {:?}",
        got.map(|b| texts(&b.unwrap()))
    );
}

/// Inserts a message with a reception event per recipient, delivers each recipient with an
/// event, and appends a report event; returns the id.
async fn traffic(spool: &Spool, tag: &str, rcpts: u32) -> MessageId {
    let t = tag.to_string();
    let id = spool
        .insert_with_events(&envelope(rcpts as usize), ev("body"), move |id| {
            (0..rcpts)
                .map(|r| ev(&format!("{t}:recv:{id}.{r}")))
                .collect()
        })
        .await
        .unwrap();
    for r in 0..rcpts {
        spool
            .update_nowait_with_event(id, r, delivered(), ev(&format!("{tag}:done:{id}.{r}")))
            .unwrap();
    }
    spool
        .append_events(vec![ev(&format!("{tag}:report"))])
        .await
        .unwrap();
    id
}

fn expected(tag: &str, id: MessageId, rcpts: u32) -> Vec<String> {
    let mut v: Vec<String> = (0..rcpts).map(|r| format!("{tag}:recv:{id}.{r}")).collect();
    v.extend((0..rcpts).map(|r| format!("{tag}:done:{id}.{r}")));
    v.push(format!("{tag}:report"));
    v
}

#[tokio::test]
async fn events_written_with_states_are_read_back_in_commit_order() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["campaign"])).unwrap();
    let a = traffic(&spool, "a", 2).await;
    let b = traffic(&spool, "b", 3).await;
    let mut r = spool.outbox_reader("campaign").unwrap();
    let got = read_n(&mut r, 12, 4).await;
    let mut want = expected("a", a, 2);
    want.extend(expected("b", b, 3));
    assert_eq!(texts(&got), want);
    let positions: Vec<Position> = got.iter().map(|e| e.position).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert_nothing(&mut r).await;
    // The states went in with the events.
    drop(r);
    spool.close().await.unwrap();
    let (spool, rec) = Spool::open(dir.path(), opts(&["campaign"])).unwrap();
    assert!(rec.is_empty(), "every recipient final: {rec:?}");
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_waiting_reader_wakes_when_a_batch_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    let waiting = tokio::spawn(async move {
        let got = r.next_batch(10).await.unwrap();
        texts(&got)
    });
    tokio::task::yield_now().await;
    spool
        .append_events(vec![ev("one"), ev("two")])
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert_eq!(got, vec!["one", "two"]);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn reader_resumes_after_its_ack_and_gets_unacked_entries_again_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    let events: Vec<Bytes> = (0..6).map(|i| ev(&format!("e{i}"))).collect();
    spool.append_events(events).await.unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    let got = read_n(&mut r, 6, 6).await;
    r.ack(got[2].position).await.unwrap();
    assert_eq!(r.acked(), got[2].position);
    drop(r);
    spool.close().await.unwrap();

    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    let again = read_n(&mut r, 3, 10).await;
    assert_eq!(texts(&again), vec!["e3", "e4", "e5"]);
    assert_eq!(again[2].position, got[5].position);
    r.ack(again[2].position).await.unwrap();
    drop(r);
    spool.close().await.unwrap();

    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    assert_nothing(&mut r).await;
    spool.append_events(vec![ev("new")]).await.unwrap();
    assert_eq!(texts(&read_n(&mut r, 1, 10).await), vec!["new"]);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn torn_outbox_tail_is_truncated_and_writing_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    spool
        .append_events(vec![ev("first"), ev("second")])
        .await
        .unwrap();
    spool.close().await.unwrap();
    let log = logs(dir.path())
        .into_iter()
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap();
    let len = std::fs::metadata(&log).unwrap().len();
    // A record cut short: the magic, type 3, a length of 100 and only a few payload bytes.
    let mut data = std::fs::read(&log).unwrap();
    data.extend_from_slice(&[0xCA, 0x57, 3, 0, 100, 0, 0, 0, 9, 9, 9, 9, b'x', b'y']);
    std::fs::write(&log, &data).unwrap();

    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    assert_eq!(spool.recovery_report().truncated_bytes, 14);
    assert!(spool.recovery_report().corrupt.is_empty());
    assert_eq!(std::fs::metadata(&log).unwrap().len(), len);
    spool.append_events(vec![ev("third")]).await.unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    assert_eq!(
        texts(&read_n(&mut r, 3, 10).await),
        vec!["first", "second", "third"]
    );
    spool.close().await.unwrap();
}

#[tokio::test]
async fn damaged_record_in_the_middle_is_skipped_not_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    spool
        .append_events(vec![ev("aaaa"), ev("bbbb"), ev("cccc")])
        .await
        .unwrap();
    spool.close().await.unwrap();
    let log = logs(dir.path())[0].clone();
    let mut data = std::fs::read(&log).unwrap();
    let at = data.windows(4).position(|w| w == b"bbbb").unwrap();
    data[at] ^= 0xff;
    std::fs::write(&log, &data).unwrap();

    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    assert_eq!(spool.recovery_report().corrupt.len(), 1);
    let mut r = spool.outbox_reader("c").unwrap();
    assert_eq!(texts(&read_n(&mut r, 2, 10).await), vec!["aaaa", "cccc"]);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn segments_are_deleted_once_every_consumer_acked_past_them() {
    let dir = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        outbox_segment_size: 256,
        ..opts(&["a", "b"])
    };
    let (spool, _) = Spool::open(dir.path(), o.clone()).unwrap();
    for i in 0..20 {
        spool
            .append_events(vec![ev(&format!("event number {i:04} {}", "x".repeat(40)))])
            .await
            .unwrap();
    }
    let before = logs(dir.path()).len();
    assert!(before >= 5, "rolled into {before} segments");
    let stats = spool.outbox_stats().unwrap();
    assert_eq!((stats.segments, stats.entries), (before, 20));

    let mut a = spool.outbox_reader("a").unwrap();
    let got = read_n(&mut a, 20, 100).await;
    a.ack(got[19].position).await.unwrap();
    assert_eq!(logs(dir.path()).len(), before, "b has not acked anything");
    let mut b = spool.outbox_reader("b").unwrap();
    let got_b = read_n(&mut b, 20, 7).await;
    assert_eq!(
        texts(&got_b),
        texts(&got),
        "consumers read the same entries"
    );
    b.ack(got_b[9].position).await.unwrap();
    let mid = logs(dir.path()).len();
    assert!(mid < before && mid > 1, "{mid} of {before}");
    b.ack(got_b[19].position).await.unwrap();
    // Only the segment being written is left.
    assert_eq!(logs(dir.path()).len(), 1);
    let stats = spool.outbox_stats().unwrap();
    assert_eq!(stats.lag_bytes, vec![("a".into(), 0), ("b".into(), 0)]);
    drop((a, b));
    spool.close().await.unwrap();

    let (spool, _) = Spool::open(dir.path(), o).unwrap();
    let mut a = spool.outbox_reader("a").unwrap();
    assert_nothing(&mut a).await;
    spool.close().await.unwrap();
}

#[tokio::test]
async fn two_consumers_keep_their_own_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["a", "b"])).unwrap();
    spool
        .append_events(vec![ev("1"), ev("2"), ev("3")])
        .await
        .unwrap();
    let mut a = spool.outbox_reader("a").unwrap();
    let got = read_n(&mut a, 3, 10).await;
    a.ack(got[2].position).await.unwrap();
    let mut b = spool.outbox_reader("b").unwrap();
    let got_b = read_n(&mut b, 1, 1).await;
    b.ack(got_b[0].position).await.unwrap();
    drop((a, b));
    spool.close().await.unwrap();

    let (spool, _) = Spool::open(dir.path(), opts(&["a", "b"])).unwrap();
    let mut a = spool.outbox_reader("a").unwrap();
    let mut b = spool.outbox_reader("b").unwrap();
    assert_nothing(&mut a).await;
    assert_eq!(texts(&read_n(&mut b, 2, 10).await), vec!["2", "3"]);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn disabled_outbox_writes_no_file_and_ignores_events() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), SpoolOptions::default()).unwrap();
    assert!(!spool.outbox_enabled());
    let id = spool
        .insert_with_events(&envelope(1), ev("body"), |_| panic!("not called"))
        .await
        .unwrap();
    spool
        .update_nowait_with_event(id, 0, delivered(), ev("x"))
        .unwrap();
    spool.append_events(vec![ev("y")]).await.unwrap();
    spool.flush().await.unwrap();
    assert!(!dir.path().join("outbox").exists());
    assert!(spool.outbox_stats().is_none());
    assert!(matches!(
        spool.outbox_reader("c"),
        Err(SpoolError::Consumer(..))
    ));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn readers_are_for_configured_consumers_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    assert!(matches!(
        spool.outbox_reader("other"),
        Err(SpoolError::Consumer(..))
    ));
    let mut r = spool.outbox_reader("c").unwrap();
    assert!(matches!(
        spool.outbox_reader("c"),
        Err(SpoolError::Consumer(..))
    ));
    // A position it was not given cannot be acknowledged.
    let far = Position {
        segment: 99,
        offset: 0,
    };
    assert!(matches!(r.ack(far).await, Err(SpoolError::Consumer(..))));
    drop(r);
    assert!(spool.outbox_reader("c").is_ok());
    for bad in [vec!["a/b".to_string()], vec!["x".into(), "x".into()]] {
        let d = tempfile::tempdir().unwrap();
        let o = SpoolOptions {
            outbox_consumers: bad.clone(),
            ..SpoolOptions::default()
        };
        assert!(
            matches!(Spool::open(d.path(), o), Err(SpoolError::Consumer(..))),
            "{bad:?}"
        );
    }
    spool.close().await.unwrap();
}

#[tokio::test]
async fn oversized_events_and_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    let huge = Bytes::from(vec![b'x'; cartero_spool::MAX_EVENT + 1]);
    let r = spool.append_events(vec![ev("ok"), huge.clone()]).await;
    assert!(matches!(r, Err(SpoolError::EventTooLarge(_))), "{r:?}");
    let big = huge.clone();
    let r = spool
        .insert_with_events(&envelope(1), ev("body"), move |_| vec![big])
        .await;
    assert!(matches!(r, Err(SpoolError::EventTooLarge(_))), "{r:?}");
    let id = spool.insert(&envelope(1), ev("body")).await.unwrap();
    let r = spool.update_nowait_with_event(id, 0, delivered(), huge);
    assert!(matches!(r, Err(SpoolError::EventTooLarge(_))), "{r:?}");
    // The state went in without its event.
    spool.flush().await.unwrap();
    assert_eq!(spool.stats().live_messages, 0);
    spool.append_events(vec![ev("after")]).await.unwrap();
    let mut reader = spool.outbox_reader("c").unwrap();
    assert_eq!(texts(&read_n(&mut reader, 1, 10).await), vec!["after"]);
    drop(reader);
    spool.close().await.unwrap();

    // A segment larger than the spool ever writes is refused rather than read whole.
    let log = logs(dir.path())[0].clone();
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(64 * 1024 * 1024).unwrap();
    let r = Spool::open(dir.path(), opts(&["c"]));
    assert!(
        matches!(r, Err(SpoolError::OutboxDamaged { .. })),
        "{:?}",
        r.err()
    );
}

#[tokio::test]
async fn cursors_on_deleted_segments_or_missing_resume_at_the_oldest_entry() {
    let dir = tempfile::tempdir().unwrap();
    let o = SpoolOptions {
        outbox_segment_size: 128,
        ..opts(&["a"])
    };
    let (spool, _) = Spool::open(dir.path(), o.clone()).unwrap();
    for i in 0..6 {
        spool
            .append_events(vec![ev(&format!("{i}{}", "y".repeat(60)))])
            .await
            .unwrap();
    }
    let mut a = spool.outbox_reader("a").unwrap();
    let got = read_n(&mut a, 6, 10).await;
    a.ack(got[0].position).await.unwrap();
    drop(a);
    spool.close().await.unwrap();
    let cursor = std::fs::read(dir.path().join("outbox/a.cursor")).unwrap();
    // The acknowledged entry filled the first segment, which is gone now: the cursor points at a
    // deleted segment and reading resumes at the oldest one left.
    assert_eq!(logs(dir.path()).len(), 5);
    let (spool, _) = Spool::open(dir.path(), o.clone()).unwrap();
    let mut a = spool.outbox_reader("a").unwrap();
    let resumed = read_n(&mut a, 1, 1).await;
    assert_eq!(texts(&resumed), texts(&got[1..2]));
    drop(a);
    spool.close().await.unwrap();

    // No cursor at all, under a newly configured name: the oldest entry kept.
    let (spool, _) = Spool::open(
        dir.path(),
        SpoolOptions {
            outbox_consumers: vec!["a".into(), "new".into()],
            ..o
        },
    )
    .unwrap();
    let mut n = spool.outbox_reader("new").unwrap();
    assert_eq!(texts(&read_n(&mut n, 1, 1).await), texts(&got[1..2]));
    assert_eq!(
        std::fs::read(dir.path().join("outbox/a.cursor")).unwrap(),
        cursor
    );
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_closed_spool_ends_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    spool.append_events(vec![ev("last")]).await.unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    spool.close().await.unwrap();
    assert_eq!(texts(&read_n(&mut r, 1, 10).await), vec!["last"]);
    let end = tokio::time::timeout(WAIT, r.next_batch(10)).await.unwrap();
    assert!(matches!(end, Err(SpoolError::Closed)), "{end:?}");
}

#[tokio::test]
async fn outbox_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
    spool.append_events(vec![ev("e")]).await.unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    let got = read_n(&mut r, 1, 1).await;
    r.ack(got[0].position).await.unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("outbox")), 0o700);
    assert_eq!(mode(&dir.path().join("outbox/c.cursor")), 0o600);
    for log in logs(dir.path()) {
        assert_eq!(mode(&log), 0o600, "{}", log.display());
    }
    spool.close().await.unwrap();
}

mod arbitrary_segments {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn any_bytes_as_an_outbox_segment_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            with_frame in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("outbox")).unwrap();
            let mut data = bytes.clone();
            if with_frame {
                // A valid-looking header claiming a huge payload, followed by junk.
                data.splice(0..0, [0xCA, 0x57, 3, 0, 0xff, 0xff, 0xff, 0x7f, 1, 2, 3, 4]);
            }
            std::fs::write(dir.path().join("outbox/00000001.log"), &data).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (spool, _) = Spool::open(dir.path(), opts(&["c"])).unwrap();
                let mut r = spool.outbox_reader("c").unwrap();
                spool.append_events(vec![ev("marker")]).await.unwrap();
                // Whatever junk came first, the marker appended after it is read.
                let mut seen = Vec::new();
                for _ in 0..200 {
                    match tokio::time::timeout(WAIT, r.next_batch(16)).await.unwrap() {
                        Ok(b) => seen.extend(texts_lossy(&b)),
                        Err(SpoolError::OutboxDamaged { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                    if seen.last().map(String::as_str) == Some("marker") {
                        break;
                    }
                }
                assert_eq!(seen.last().map(String::as_str), Some("marker"));
                drop(r);
                spool.close().await.unwrap();
            });
        }
    }

    fn texts_lossy(entries: &[OutboxEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| String::from_utf8_lossy(&e.data).into_owned())
            .collect()
    }
}
