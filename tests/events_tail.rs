//! `cartero events tail` against a running `serve`: it follows the events as they happen,
//! filtered by type, and refuses an unknown type.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::client::Client;
use support::sink::Sink;
use support::{ConfigBuilder, DEADLINE, Serve, bin, run};

#[test]
fn events_tail_follows_deliveries_as_they_happen() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    let config = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);
    let (api, token) = (format!("http://{}", mta.http), mta.token());

    let (code, _, err) = run(
        &[
            "events", "tail", "--type", "nope", "--api", &api, "--token", &token,
        ],
        None,
    );
    assert_ne!(code, 0);
    assert!(err.contains("nope"), "{err}");

    let mut tail = bin()
        .args([
            "events", "tail", "--type", "delivery", "--json", "--api", &api, "--token", &token,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = tail.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Messages until the tail shows one: it only sees events after it subscribed.
    let end = Instant::now() + DEADLINE;
    let mut seen = None;
    for i in 0..100 {
        let mut c = Client::connect(mta.smtp).unwrap();
        let msg =
            format!("From: <a@src.test>\r\nTo: <t{i}@dest.test>\r\nSubject: t\r\n\r\nbody\r\n");
        c.send("a@src.test", &format!("t{i}@dest.test"), &msg)
            .unwrap();
        c.quit();
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            seen = Some(line);
            break;
        }
        assert!(
            Instant::now() < end,
            "the tail showed nothing:\n{}",
            mta.log()
        );
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let line = seen.expect("the tail showed no delivery");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["type"], "delivery", "{line}");
    assert!(
        v["rcpt_to"].as_str().unwrap().ends_with("@dest.test"),
        "{line}"
    );
    // Only the type asked for: no reception line came before the delivery.
    assert!(rx.try_iter().all(|l| l.contains("\"delivery\"")));
}
