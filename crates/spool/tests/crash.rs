//! Kill -9 while inserting: every id the child printed as acknowledged must be recovered.
//!
//! The test binary re-executes itself: with `CHILD_ENV` set, `crash_child` becomes the child that
//! inserts forever (bounded) and prints `ACK <id>` after each acknowledged insert.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use cartero_spool::{Envelope, MessageId, Spool, SpoolOptions};

const CHILD_ENV: &str = "CARTERO_SPOOL_CRASH_CHILD_DIR";
const ACKS_BEFORE_KILL: usize = 300;

fn opts() -> SpoolOptions {
    SpoolOptions {
        segment_size: 128 * 1024,
        max_batch: 32,
        max_batch_delay: Duration::from_millis(1),
        ..SpoolOptions::default()
    }
}

fn envelope(n: u64) -> Envelope {
    Envelope {
        sender: "s@example.com".into(),
        recipients: vec![format!("r{n}@example.net"), format!("q{n}@example.net")],
        received_at: n,
        expires_at: n + 1000,
        metadata: serde_json::Map::new(),
        pool: None,
        idempotency: Vec::new(),
    }
}

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (spool, _) = Spool::open(Path::new(&dir), opts()).unwrap();
        let mut tasks = Vec::new();
        for t in 0..16u64 {
            let s = spool.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20_000u64 {
                    let n = t * 1_000_000 + i;
                    let id = s
                        .insert(&envelope(n), Bytes::from(vec![b'x'; 2048]))
                        .await
                        .unwrap();
                    println!("ACK {id}");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_messages_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked = Vec::new();
    let parse = |l: &str| {
        l.strip_prefix("ACK ")
            .map(|s| s.parse::<MessageId>().unwrap())
    };
    while acked.len() < ACKS_BEFORE_KILL {
        match lines.next() {
            Some(Ok(l)) => acked.extend(parse(&l)),
            _ => break,
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    // Lines already in the pipe were printed before the kill, so they were acknowledged too.
    for l in lines.map_while(Result::ok) {
        acked.extend(parse(&l));
    }
    assert_eq!(
        status.signal(),
        Some(9),
        "child must die mid-insert, got {status:?}"
    );
    assert!(
        acked.len() >= ACKS_BEFORE_KILL,
        "child acked only {}",
        acked.len()
    );

    let (spool, rec) = Spool::open(dir.path(), opts()).unwrap();
    let back: HashSet<MessageId> = rec.iter().map(|r| r.id).collect();
    let missing: Vec<_> = acked.iter().filter(|id| !back.contains(id)).collect();
    assert!(
        missing.is_empty(),
        "lost {} acked messages: {missing:?}",
        missing.len()
    );
    assert!(spool.recovery_report().corrupt.is_empty());
    for r in &rec {
        assert_eq!(r.envelope.recipients.len(), 2);
    }
}
