//! Crash test: inject N messages, `kill -9` cartero while deliveries are in flight, restart on
//! the same data dir; every acknowledged message must reach the receiver. Duplicates (messages the
//! receiver accepted but cartero had not recorded as delivered) are counted, reported and bounded.
//! Needs no external peer: the receiver is the in-test sink, slowed down so delivery lags.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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

#[test]
fn kill_9_during_delivery_loses_no_acknowledged_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    sink.set_dot_delay(Duration::from_millis(20));
    let shaping = format!("[shaping.default]\nmax_connections = {CONNECTIONS}\n");
    let config = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .raw(&shaping)
        .write(&dir.path().join("cartero.toml"));
    let mut mta = Serve::start(&config, &data);

    // The receiver stalls until everything is injected, so a backlog exists at the kill however
    // fast or slow this machine's disk and CPU are.
    sink.set_hold(true);
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
    let acked: BTreeSet<usize> = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        N,
        "a healthy server refused messages:\n{}",
        mta.log()
    );
    sink.set_hold(false);

    // Kill once a third has arrived: delivery is running, most of the queue is still pending.
    assert!(
        sink.wait_data_seen(N / 3, DEADLINE),
        "deliveries never started:\n{}",
        mta.log()
    );
    let in_flight = sink.data_seen() - sink.accepted().len();
    mta.kill9();
    let before_kill = sink.accepted().len();
    println!("receiver had {before_kill} of {N} at the kill, {in_flight} in flight");
    assert!(before_kill < N, "the kill came after delivery finished");

    let mta = Serve::start(&config, &data);
    let all_there = |v: &[SinkMsg]| {
        let seen = counts_by_id(v);
        acked.iter().all(|&i| seen.contains_key(&mid(i)))
    };
    let complete = sink.wait_for(DEADLINE, all_there);
    let seen = counts_by_id(&sink.accepted());
    let missing: Vec<usize> = acked
        .iter()
        .copied()
        .filter(|&i| !seen.contains_key(&mid(i)))
        .collect();
    assert!(
        complete && missing.is_empty(),
        "lost acknowledged messages {missing:?}:\n{}",
        mta.log()
    );

    // Let the restarted instance finish: every acknowledged recipient has a delivery event.
    let settled = support::wait_until(DEADLINE, || {
        let q = support::run(
            &[
                "queue",
                "--json",
                "--api",
                &format!("http://{}", mta.http),
                "--token",
                &mta.token(),
            ],
            None,
        );
        serde_json::from_str::<serde_json::Value>(&q.1).is_ok_and(|v| v["recipients"] == 0)
    });
    assert!(settled, "queue never emptied after restart:\n{}", mta.log());
    let duplicates: usize = seen.values().map(|&c| c - 1).sum();
    let unacked_delivered = seen.len()
        - acked
            .iter()
            .filter(|&&i| seen.contains_key(&mid(i)))
            .count();
    println!("duplicates: {duplicates}; delivered though never acknowledged: {unacked_delivered}");
    assert!(
        duplicates <= N * 5 / 100,
        "{duplicates} duplicates for {N} messages (in flight at the kill: {in_flight})"
    );
}
