//! inMail outside in: `cartero serve` delivers a message to a sink with a signed return path
//! (`b-<token>@bounces.test`); a DSN for it sent by swaks to that address yields exactly one
//! `out_of_band` event in the events JSON lines, and a DSN with a forged token yields none. An ARF
//! complaint sent by swaks to the feedback-loop address from a configured feedback-loop source
//! feeds the complaint sweep, whose suspension shows up as a `shaping` event; sent again, it
//! counts for nothing.

mod support;

use support::peers::{SWAKS, have, swaks};
use support::reports::{arf, dsn};
use support::sink::Sink;
use support::{ConfigBuilder, DEADLINE, Serve, wait_until};

/// Starts `cartero serve` with inMail on and delivers one message to `bob@dest.test` with swaks;
/// returns the server and the token of what the sink received.
fn serve_and_deliver_one(dir: &std::path::Path, sink: &Sink, extra: &str) -> (Serve, String) {
    let data = dir.join("data");
    let cfg = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .raw(&format!(
            "[inmail]\nbounce_domains = [\"bounces.test\"]\n{extra}"
        ))
        .write(&dir.join("cartero.toml"));
    let mta = Serve::start(&cfg, &data);
    let (code, out) = swaks(
        mta.smtp,
        &[
            "-f",
            "a@src.test",
            "-t",
            "bob@dest.test",
            "--body",
            "inmail-1",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        sink.wait_for(DEADLINE, |v| !v.is_empty()),
        "nothing delivered:\n{}",
        mta.log()
    );
    let m = sink.accepted().remove(0);
    let token = m.header("x-cartero-token").expect("X-Cartero-Token header");
    assert_eq!(m.mail_from, format!("b-{token}@bounces.test"));
    assert!(wait_until(DEADLINE, || !mta.events("delivery").is_empty()));
    (mta, token)
}

#[test]
fn swaks_dsn_to_the_bounce_domain_yields_one_out_of_band_event() {
    if !have(SWAKS, "swaks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let (mta, token) = serve_and_deliver_one(dir.path(), &sink, "");
    let message_id = mta.events("delivery")[0]["message_id"].clone();

    // A forged token first: swaks is told 250 like any other sender.
    let mut forged = token.clone().into_bytes();
    forged[3] = if forged[3] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for t in [&forged, &token] {
        let file = dir.path().join(format!("dsn-{t}.eml"));
        std::fs::write(&file, dsn("bob@dest.test", t)).unwrap();
        let to = format!("b-{t}@bounces.test");
        let (code, out) = swaks(
            mta.smtp,
            &["-f", "", "-t", &to, "--data", file.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("<-  250"), "{out}");
    }
    assert!(
        wait_until(DEADLINE, || !mta.events("out_of_band").is_empty()),
        "no out_of_band event:\n{}",
        mta.log()
    );
    // The events file is written in order: the forged DSN was handled before the valid one.
    let oob = mta.events("out_of_band");
    assert_eq!(oob.len(), 1, "{oob:#?}");
    assert_eq!(oob[0]["message_id"], message_id);
    assert_eq!(oob[0]["rcpt_to"], "bob@dest.test");
    assert_eq!(oob[0]["bounce_class"], 10);
    assert!(
        wait_until(DEADLINE, || mta.log().contains("invalid or forged token")),
        "forged token not logged:\n{}",
        mta.log()
    );
}

#[test]
fn swaks_arf_complaint_feeds_the_complaint_sweep() {
    if !have(SWAKS, "swaks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    // One complaint over one delivery is over any threshold once the minimum volume is 1. Only
    // reports from a configured feedback loop (here by the report's From) charge a sweep.
    let sweep =
        "fbl_sources = [\"feedback@isp.test\"]\n\n[shaping.adaptive.sweep]\nmin_volume = 1\n";
    let (mta, token) = serve_and_deliver_one(dir.path(), &sink, sweep);
    let send = |name: &str, to: &str, data: String| {
        let file = dir.path().join(name);
        std::fs::write(&file, data).unwrap();
        let (code, out) = swaks(
            mta.smtp,
            &["-f", "", "-t", to, "--data", file.to_str().unwrap()],
        );
        assert_eq!(code, 0, "{out}");
    };
    send("arf.eml", "fbl@bounces.test", arf("bob@dest.test", &token));
    // The complaint and the sweep's action are emitted by different tasks, in either order.
    assert!(
        wait_until(DEADLINE, || !mta.events("shaping").is_empty()
            && !mta.events("spam_complaint").is_empty()),
        "no shaping or no spam_complaint event:\n{}",
        mta.log()
    );
    // The same report again, then a DSN: once the DSN's event is written, the replay was handled.
    send("arf.eml", "fbl@bounces.test", arf("bob@dest.test", &token));
    send(
        "dsn.eml",
        &format!("b-{token}@bounces.test"),
        dsn("bob@dest.test", &token),
    );
    assert!(
        wait_until(DEADLINE, || !mta.events("out_of_band").is_empty()),
        "no out_of_band event:\n{}",
        mta.log()
    );
    let complaints = mta.events("spam_complaint");
    assert_eq!(complaints.len(), 1, "{complaints:#?}");
    assert_eq!(complaints[0]["metadata"]["source"], "default");
    assert_eq!(complaints[0]["metadata"]["fbl_source"], "feedback@isp.test");
    assert!(
        wait_until(DEADLINE, || mta.log().contains("already reported")),
        "replay not logged:\n{}",
        mta.log()
    );
    let shaping = mta.events("shaping");
    assert_eq!(shaping.len(), 1, "{shaping:#?}");
    let a = &shaping[0]["shaping"];
    assert_eq!(a["action"], "suspend", "{a:#}");
    assert_eq!(a["cause"], "sweep:complaints", "{a:#}");
    assert_eq!(a["scope"]["name"]["source"], "default", "{a:#}");
    assert_eq!(a["scope"]["name"]["domain"], "dest.test", "{a:#}");
}
