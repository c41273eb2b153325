//! Crash test: inject N messages, `kill -9` cartero while deliveries are in flight, restart on
//! the same data dir; every acknowledged message must reach the receiver. Re-delivery after a
//! crash is allowed, losing an acknowledged message is not. Duplicates are counted, reported and
//! bounded: the kill comes at a point where every delivery cartero has seen acknowledged is
//! journalled, so the only possible duplicates are the transactions in flight at the kill.
//! Needs no external peer: the receiver is the in-test sink, which stops acknowledging after a
//! third of the messages.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use support::client::Client;
use support::sink::{Sink, SinkMsg};
use support::{ConfigBuilder, DEADLINE, Serve};

const N: usize = 300;
const INJECTORS: usize = 3;
/// Outbound connections to the sink, so at most this many transactions are in flight.
const CONNECTIONS: usize = 4;

fn message(i: usize) -> String {
    format!(
        "From: <a@src.test>\r\nTo: <b@dest.test>\r\nSubject: crash test {i}\r\n\
         Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: {}\r\n\r\nmessage {i}\r\n",
        mid(i)
    )
}

fn mid(i: usize) -> String {
    format!("<crash-{i}@src.test>")
}

/// Injects messages `i ≡ k (mod INJECTORS)` on one connection until done or the server dies;
/// records every index whose DATA was answered with 250.
fn inject(addr: std::net::SocketAddr, k: usize, acked: Arc<Mutex<BTreeSet<usize>>>) {
    let Ok(mut c) = Client::connect(addr) else {
        return;
    };
    for i in (k..N).step_by(INJECTORS) {
        match c.send("a@src.test", "b@dest.test", &message(i)) {
            Ok(()) => {
                acked.lock().unwrap().insert(i);
            }
            Err(_) => return,
        }
    }
    c.quit();
}

fn counts_by_id(msgs: &[SinkMsg]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for msg in msgs {
        *m.entry(msg.message_id().unwrap_or_default()).or_insert(0) += 1;
    }
    m
}

/// Runs `cartero queue --json` against `mta`; None while the answer is not a summary.
fn queue_summary(mta: &Serve) -> Option<serde_json::Value> {
    let api = format!("http://{}", mta.http);
    let (code, out, _) = support::run(
        &["queue", "--json", "--api", &api, "--token", &mta.token()],
        None,
    );
    (code == 0).then(|| serde_json::from_str(&out).ok())?
}

/// Nothing queued and no connection open: no recipient is waiting or with a worker.
fn settled(q: &serde_json::Value) -> bool {
    let idle = q["sites"]
        .as_array()
        .is_some_and(|s| s.iter().all(|site| site["connections"] == 0));
    q["recipients"] == 0 && idle
}

#[test]
fn kill_9_during_delivery_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    // The receiver acknowledges a third of the messages, then stalls every reply to the dot: a
    // backlog and transactions in flight exist at the kill however fast this machine is.
    sink.hold_from(N / 3);
    let shaping = format!("[shaping.default]\nmax_connections = {CONNECTIONS}\n");
    let config = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .raw(&shaping)
        .write(&dir.path().join("cartero.toml"));
    let mut mta = Serve::start(&config, &data);

    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let injectors: Vec<_> = (0..INJECTORS)
        .map(|k| {
            let (addr, acked) = (mta.smtp, acked.clone());
            std::thread::spawn(move || inject(addr, k, acked))
        })
        .collect();
    for t in injectors {
        t.join().unwrap();
    }
    let mut acked: BTreeSet<usize> = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        N,
        "a healthy server refused messages:\n{}",
        mta.log()
    );

    // A transaction is stalled (the kill lands during delivery) and every arrived message is
    // acknowledged or stalled, so what the receiver accepted is final until the release; then
    // cartero has recorded each of those acknowledgements.
    assert!(
        sink.wait_data_seen(N / 3 + 1, DEADLINE) && sink.wait_quiet(DEADLINE),
        "deliveries never reached the hold:\n{}",
        mta.log()
    );
    let before_kill = sink.accepted().len();
    assert_eq!(before_kill, N / 3, "the hold let through other messages");
    assert!(
        support::wait_until(DEADLINE, || mta.events("delivery").len() == before_kill),
        "cartero did not record the {before_kill} acknowledged deliveries:\n{}",
        mta.log()
    );
    // Delivered states are queued to the spool writer without waiting, before the delivery event
    // is emitted. The writer takes requests in order, so once this later message is acknowledged
    // (its insert written and synced) every one of those states is in the journal file too.
    let mut probe = Client::connect(mta.smtp).unwrap();
    probe
        .send("a@src.test", "b@dest.test", &message(N))
        .unwrap();
    acked.insert(N);
    probe.quit();
    mta.kill9();

    // Release what was in flight: the receiver now acknowledges to a dead sender, so each of
    // those is delivered again after the restart. Those are the only duplicates allowed.
    sink.set_hold(false);
    assert!(sink.wait_quiet(DEADLINE), "stalled sessions never finished");
    let in_flight: BTreeSet<String> = sink.accepted()[before_kill..]
        .iter()
        .map(|m| m.message_id().unwrap_or_default())
        .collect();
    println!(
        "receiver had {before_kill} of {} at the kill, {} stalled, {} acknowledged after it",
        N + 1,
        sink.data_seen() - before_kill,
        in_flight.len()
    );

    let mta = Serve::start(&config, &data);
    let all_there = |v: &[SinkMsg]| {
        let seen = counts_by_id(v);
        acked.iter().all(|&i| seen.contains_key(&mid(i)))
    };
    let complete = sink.wait_for(DEADLINE, all_there);
    let missing = |seen: &HashMap<String, usize>| -> Vec<usize> {
        acked
            .iter()
            .copied()
            .filter(|&i| !seen.contains_key(&mid(i)))
            .collect()
    };
    assert!(
        complete,
        "lost acknowledged messages {:?}:\n{}",
        missing(&counts_by_id(&sink.accepted())),
        mta.log()
    );

    // Let the restarted instance finish, then count what the receiver got in the end.
    assert!(
        support::wait_until(DEADLINE, || queue_summary(&mta)
            .is_some_and(|q| settled(&q))),
        "queue never emptied after restart: {:?}\n{}",
        queue_summary(&mta),
        mta.log()
    );
    assert!(sink.wait_quiet(DEADLINE), "the receiver never finished");
    let seen = counts_by_id(&sink.accepted());
    assert!(missing(&seen).is_empty());
    let duplicated: BTreeSet<&String> = seen
        .iter()
        .filter(|&(_, &c)| c > 1)
        .map(|(id, _)| id)
        .collect();
    let duplicates: usize = seen.values().map(|&c| c - 1).sum();
    let unacked_delivered = seen.len()
        - acked
            .iter()
            .filter(|&&i| seen.contains_key(&mid(i)))
            .count();
    println!("duplicates: {duplicates}; delivered though never acknowledged: {unacked_delivered}");
    assert!(
        duplicated
            .iter()
            .all(|id| in_flight.contains(*id) && seen[*id] == 2),
        "duplicates {duplicated:?} beyond the transactions in flight at the kill {in_flight:?}"
    );
    assert!(
        duplicates <= N * 5 / 100,
        "{duplicates} duplicates for {N} messages (in flight at the kill: {})",
        in_flight.len()
    );
}
