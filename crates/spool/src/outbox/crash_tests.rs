//! Crash consistency of the outbox with the journal: the writer "dies" after its n-th file write
//! (the write itself torn in half), for every n over a workload, and the spool is reopened from
//! what reached the files. Whatever n, a recipient whose final state is on disk has its event in
//! the outbox, and so has every message on disk its reception events.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use crate::{Envelope, MessageId, RcptState, RcptStatus, Spool, SpoolOptions};

fn opts(crash_after_writes: Option<u64>) -> SpoolOptions {
    SpoolOptions {
        segment_size: 700,
        max_batch: 16,
        max_batch_delay: Duration::from_millis(1),
        outbox_consumers: vec!["c".into()],
        outbox_segment_size: 600,
        crash_after_writes,
    }
}

fn envelope() -> Envelope {
    Envelope {
        sender: "s@example.com".into(),
        recipients: vec!["a@example.net".into(), "b@example.net".into()],
        received_at: 1,
        expires_at: 2,
        metadata: serde_json::Map::new(),
        pool: None,
        idempotency: Vec::new(),
    }
}

fn state(status: RcptStatus) -> RcptState {
    RcptState {
        status,
        attempts: 1,
        next_attempt: 0,
        last_reply: None,
    }
}

/// One task's share: insert with reception events, finish recipients with events, report.
/// Errors (after the simulated crash) are expected and ignored. Returns the acknowledged ids.
async fn client(spool: Spool, task: u32) -> Vec<MessageId> {
    let mut acked = Vec::new();
    for m in 0..8u32 {
        let made = spool
            .insert_with_events(&envelope(), Bytes::from(vec![b'x'; 300]), |id| {
                (0..2)
                    .map(|r| Bytes::from(format!("recv {id} {r}")))
                    .collect()
            })
            .await;
        let Ok(id) = made else { continue };
        acked.push(id);
        let finals = if (task + m).is_multiple_of(2) { 1 } else { 2 };
        for r in 0..finals {
            let st = state(if r == 0 {
                RcptStatus::Delivered
            } else {
                RcptStatus::Failed
            });
            let _ =
                spool.update_nowait_with_event(id, r, st, Bytes::from(format!("done {id} {r}")));
        }
        let _ = spool
            .append_events(vec![Bytes::from(format!("report {task} {m}"))])
            .await;
    }
    acked
}

/// Runs the workload on a spool that crashes after `n` writes; returns the acknowledged ids and
/// whether the crash happened.
async fn crash_run(dir: &Path, n: u64) -> (Vec<MessageId>, bool) {
    let (spool, _) = Spool::open(dir, opts(Some(n))).unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|t| tokio::spawn(client(spool.clone(), t)))
        .collect();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let crashed = spool.flush().await.is_err();
    let _ = spool.close().await;
    (acked, crashed)
}

/// Every outbox entry after reopening, read up to a marker appended last.
async fn all_events(spool: &Spool) -> HashSet<String> {
    spool
        .append_events(vec![Bytes::from_static(b"END")])
        .await
        .unwrap();
    let mut r = spool.outbox_reader("c").unwrap();
    let mut out = HashSet::new();
    for _ in 0..10_000 {
        let batch = tokio::time::timeout(Duration::from_secs(10), r.next_batch(64))
            .await
            .expect("outbox readable")
            .unwrap();
        for e in batch {
            let text = String::from_utf8(e.data.to_vec()).unwrap();
            if text == "END" {
                return out;
            }
            out.insert(text);
        }
    }
    panic!("no end marker");
}

fn check(n: u64, acked: &[MessageId], rec: &[crate::Recovered], events: &HashSet<String>) {
    let recovered: HashMap<MessageId, &crate::Recovered> = rec.iter().map(|r| (r.id, r)).collect();
    let need = |what: &str, id: MessageId, r: usize| {
        let e = format!("{what} {id} {r}");
        assert!(
            events.contains(&e),
            "crash after {n} writes: {e:?} missing; have {events:?}"
        );
    };
    for r in rec {
        for (i, st) in r.rcpts.iter().enumerate() {
            need("recv", r.id, i);
            if st.status.is_final() {
                need("done", r.id, i);
            }
        }
    }
    // An acknowledged message no longer on disk as live had every recipient finished durably.
    for id in acked.iter().filter(|id| !recovered.contains_key(id)) {
        for i in 0..2 {
            need("recv", *id, i);
            need("done", *id, i);
        }
    }
}

#[test]
fn final_states_on_disk_always_have_their_events_whatever_write_the_crash_stops() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut crashes = 0;
    for n in 0..40u64 {
        let dir = tempfile::tempdir().unwrap();
        rt.block_on(async {
            let (acked, crashed) = crash_run(dir.path(), n).await;
            crashes += usize::from(crashed);
            let (spool, rec) = Spool::open(dir.path(), opts(None)).unwrap();
            let events = all_events(&spool).await;
            check(n, &acked, &rec, &events);
            spool.close().await.unwrap();
        });
    }
    assert!(
        crashes >= 20,
        "the workload must reach the crash point: {crashes}"
    );
}
