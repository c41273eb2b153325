//! inMail outside in: `cartero serve` delivers a message to a sink with a signed return path
//! (`b-<token>@bounces.test`); a DSN for it sent by swaks to that address yields exactly one
//! `out_of_band` event in the events JSON lines, and a DSN with a forged token yields none.

mod support;

use support::peers::{SWAKS, have, swaks};
use support::sink::{Sink, SinkMsg};
use support::{ConfigBuilder, DEADLINE, Serve, wait_until};

fn header(m: &SinkMsg, name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(&m.data).into_owned();
    text.split("\r\n")
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
}

fn dsn(rcpt: &str, token: &str) -> String {
    format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.dest.test>\r\n\
To: <b-{token}@bounces.test>\r\nSubject: Undelivered Mail Returned to Sender\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\
\tboundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n\
--BB\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.dest.test\r\n\r\n\
Final-Recipient: rfc822; {rcpt}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Remote-MTA: dns; mx.dest.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <{rcpt}>: user unknown\r\n\r\n\
--BB\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Cartero-Token: {token}\r\n\
From: a@src.test\r\nSubject: hello\r\n\r\n--BB--\r\n"
    )
}

#[test]
fn swaks_dsn_to_the_bounce_domain_yields_one_out_of_band_event() {
    if !have(SWAKS, "swaks") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let data = dir.path().join("data");
    let cfg = ConfigBuilder::new(&data)
        .route("dest.test", sink.addr)
        .raw("[inmail]\nbounce_domains = [\"bounces.test\"]\n")
        .write(&dir.path().join("cartero.toml"));
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
    let token = header(&m, "x-cartero-token").expect("X-Cartero-Token header");
    assert_eq!(m.mail_from, format!("b-{token}@bounces.test"));
    assert!(wait_until(DEADLINE, || !mta.events("delivery").is_empty()));
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
        mta.log().contains("invalid or forged token"),
        "forged token not logged:\n{}",
        mta.log()
    );
}
