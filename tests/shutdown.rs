//! Graceful shutdown: SIGTERM while a transaction waits on a slow receiver. The process must
//! finish that transaction (the receiver's 250 is read and recorded as a delivery), exit 0, and
//! leave nothing queued for the next start.

mod support;

use std::time::Duration;
use support::client::Client;
use support::sink::Sink;
use support::{ConfigBuilder, DEADLINE, Serve};

#[test]
fn sigterm_finishes_the_in_flight_transaction_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let sink = Sink::start();
    // Long enough that SIGTERM surely lands while cartero waits for the reply to the dot.
    sink.set_dot_delay(Duration::from_millis(1500));
    let config = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .write(&dir.path().join("cartero.toml"));
    let mut mta = Serve::start(&config, &data);

    let mut c = Client::connect(mta.smtp).unwrap();
    let msg = "From: <a@src.test>\r\nTo: <b@dest.test>\r\nSubject: in flight\r\n\
               Message-ID: <in-flight-1@src.test>\r\n\r\nfinish me\r\n";
    c.send("a@src.test", "b@dest.test", msg).unwrap();
    c.quit();

    assert!(
        sink.wait_data_seen(1, DEADLINE),
        "delivery never started:\n{}",
        mta.log()
    );
    assert!(
        sink.accepted().is_empty(),
        "the receiver answered before SIGTERM"
    );
    let status = mta.terminate(DEADLINE);
    assert!(status.success(), "exit status {status}:\n{}", mta.log());

    // The sink records a message just after writing its 250, which cartero may read and exit on
    // before that.
    assert!(
        sink.wait_accepted(1, DEADLINE),
        "in-flight message not delivered"
    );
    let got = sink.accepted();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0].message_id().as_deref(),
        Some("<in-flight-1@src.test>")
    );
    // cartero read the 250 before exiting: the delivery is recorded, not just sent.
    let delivered = support::events(&data, "delivery");
    assert_eq!(delivered.len(), 1, "no delivery event:\n{}", mta.log());
    assert_eq!(delivered[0]["rcpt_to"], "b@dest.test");

    // Nothing left to send after a restart.
    let again = Serve::start(&config, &data);
    let api = format!("http://{}", again.http);
    let (code, out, err) = support::run(
        &["queue", "--json", "--api", &api, "--token", &again.token()],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["recipients"], 0, "{out}");
}
