//! Scenarios decided after the delivery, by what comes back: an asynchronous bounce to the VERP
//! return path, an ARF complaint to the feedback-loop mailbox, a one-click unsubscribe to the
//! URL the message carried.

use crate::support::client::Client;
use crate::support::reports::{arf, dsn};
use crate::support::sink::SinkMsg;
use crate::{Backend, Opts, Scenario, attempt_kinds, deliver_one, next_delivery_ignores};

const ANA: &str = "ana@dest.test";

/// The message's inMail token, checked against its VERP return path.
fn token(msg: &SinkMsg) -> String {
    let token = msg
        .header("x-cartero-token")
        .expect("X-Cartero-Token header");
    assert_eq!(msg.mail_from, format!("b-{token}@bounces.test"));
    token
}

/// Sends a report with the null sender to inMail, as a receiving site's MTA would.
fn report(s: &Scenario, to: &str, message: &str) {
    let mut c = Client::connect(s.mta.smtp).unwrap();
    c.send("", to, message)
        .unwrap_or_else(|e| panic!("inMail refused the report to {to}: {e}"));
    c.quit();
}

/// A DSN after Sent: Sent → Failed (Hard, User unknown, from inMail's qualification); Success
/// goes back down; the address goes to Quarantine.
pub fn dsn_after_sent_fails_the_row(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    let (id, msg) = deliver_one(&s, ANA);
    let token = token(&msg);
    report(&s, &format!("b-{token}@bounces.test"), &dsn(ANA, &token));
    let row = s.wait_row(&id, ANA, "failed hard/user_unknown/10");
    assert_eq!(attempt_kinds(&row), ["delivery", "out_of_band"], "{row}");
    let st = s.wait_kpis(
        &id,
        "finished P0 T0 S0 F1 I0 | hard 1 soft 0 compl 0 unsub 0 newq 1 | success 0% legacy 0% final true",
    );
    assert_eq!(st["kpis"]["failed_by_reason"]["1"], 1, "{st}");
    assert_eq!(
        s.address_line(ANA),
        "quarantine errors 0 reason user_unknown"
    );
}

/// An ARF complaint: the row stays Sent and is marked complained, the complaints KPI counts
/// it, the address is Denylisted and a later delivery excludes it (reason 8).
pub fn complaint_marks_the_row_and_denylists(backend: Backend) {
    let Some(s) = Scenario::start(backend, Opts::default()) else {
        return;
    };
    let (id, msg) = deliver_one(&s, ANA);
    report(&s, "fbl@bounces.test", &arf(ANA, &token(&msg)));
    s.wait_row(&id, ANA, "sent complained");
    s.wait_kpis(
        &id,
        "finished P0 T0 S1 F0 I0 | hard 0 soft 0 compl 1 unsub 0 newq 1 | success 100% legacy 100% final true",
    );
    assert_eq!(s.address_line(ANA), "denylisted errors 0 reason denylisted");
    next_delivery_ignores(&s, ANA, "denylisted", 8);
}

/// POSTs `List-Unsubscribe=One-Click` to `url` (RFC 8058); returns the status and body.
fn one_click(url: &str) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::Client::new()
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    })
}

/// A one-click unsubscribe with the URL the campaign message carried: the row stays Sent and
/// is marked unsubscribed, the unsubscribes KPI counts it, the address is Denylisted and a
/// later delivery excludes it (reason 8).
pub fn one_click_unsubscribe_marks_the_row_and_denylists(backend: Backend) {
    let opts = Opts {
        unsubscribe: true,
        ..Opts::default()
    };
    let Some(s) = Scenario::start(backend, opts) else {
        return;
    };
    let (id, msg) = deliver_one(&s, ANA);
    let header = msg.header("list-unsubscribe").unwrap_or_else(|| {
        panic!(
            "no List-Unsubscribe in the campaign message:\n{}",
            String::from_utf8_lossy(&msg.data)
        )
    });
    assert_eq!(
        msg.header("list-unsubscribe-post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let base = format!("<http://{}/unsubscribe/", s.mta.http);
    let start = header
        .find(&base)
        .unwrap_or_else(|| panic!("no {base} in {header:?}"));
    let url = &header[start + 1..];
    let url = &url[..url.find('>').expect("closing >")];
    let (code, body) = one_click(url);
    assert_eq!((code, body.as_str()), (200, r#"{"unsubscribed":true}"#));
    s.wait_row(&id, ANA, "sent unsubscribed");
    s.wait_kpis(
        &id,
        "finished P0 T0 S1 F0 I0 | hard 0 soft 0 compl 0 unsub 1 newq 1 | success 100% legacy 100% final true",
    );
    assert_eq!(s.address_line(ANA), "denylisted errors 0 reason denylisted");
    next_delivery_ignores(&s, ANA, "denylisted", 8);
}
