//! Hostile SMTP clients against the injection listener: AUTH brute force from many sessions,
//! commands dripped a byte at a time, and the domainless `<postmaster>` recipient.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cartero_events::EventType;
use cartero_mta::MtaConfig;
use cartero_mta::config::SmtpUser;
use cartero_mta::hash_password;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;
use support::{Env, RawClient};

const RIGHT: &[u8] = b"\0app\0s3cret";
const WRONG: &[u8] = b"\0app\0wrong";

/// An MTA with one account and AUTH offered in clear text (the limiter does not care about TLS).
fn with_account(c: &mut MtaConfig) {
    c.smtp.auth_requires_tls = false;
    c.smtp.users = vec![SmtpUser {
        username: "app".into(),
        password_hash: hash_password("s3cret").unwrap(),
    }];
}

async fn client_from(env: &Env, last_octet: u8) -> RawClient<tokio::net::TcpStream> {
    let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet));
    let (mut c, banner) = RawClient::connect_from(env.smtp_addr(), ip).await;
    assert_eq!(banner.code, 220, "{banner}");
    c.ehlo().await;
    c
}

/// AUTH PLAIN with `creds`; returns the reply as text.
async fn auth(c: &mut RawClient<tokio::net::TcpStream>, creds: &[u8]) -> String {
    let line = format!("AUTH PLAIN {}", B64.encode(creds));
    c.cmd(&line).await.expect("an AUTH reply").to_string()
}

/// Regression: 3 failures closed a session, but nothing limited a client IP across sessions (40
/// parallel sessions made ~48 guesses/s). Now the client's bucket runs dry after its burst and
/// the right password gets `454 4.7.0` too, unchecked, until the back-off has passed; other IPs
/// are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_brute_force_from_many_sessions_is_limited_per_client_ip() {
    let env = Env::start(vec![], |c| {
        with_account(c);
        c.smtp.auth_limit.per_ip = 3;
        c.smtp.auth_limit.per_ip_refill = Duration::from_secs(60);
        c.smtp.auth_limit.global = 0;
    })
    .await;
    let mut a = client_from(&env, 1).await;
    let mut b = client_from(&env, 1).await;
    assert!(auth(&mut a, WRONG).await.starts_with("535 5.7.8"));
    assert!(auth(&mut a, WRONG).await.starts_with("535 5.7.8"));
    assert!(auth(&mut b, WRONG).await.starts_with("535 5.7.8"));
    let r = auth(&mut b, RIGHT).await;
    assert!(
        r.starts_with("454 4.7.0"),
        "the right password, unchecked: {r}"
    );
    // Another client IP still authenticates.
    let mut other = client_from(&env, 2).await;
    assert!(auth(&mut other, RIGHT).await.starts_with("235"));
    // Refusals count against the session like failures: this third one closes it.
    env.clock.advance(Duration::from_millis(59_999));
    assert!(auth(&mut a, RIGHT).await.starts_with("454 4.7.0"));
    let closing = a.reply().await.expect("421 after the third failure");
    assert!(closing.to_string().starts_with("421 4.7.0"), "{closing}");
    // One refill interval after the burst the client has one attempt again.
    env.clock.advance(Duration::from_millis(1));
    let r = auth(&mut b, RIGHT).await;
    assert!(r.starts_with("235"), "{r}");
}

/// Regression: the same brute force spread over many client IPs was not limited at all. The
/// global bucket refuses every client once it is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_brute_force_from_many_ips_is_limited_globally() {
    let env = Env::start(vec![], |c| {
        with_account(c);
        c.smtp.auth_limit.per_ip = 0;
        c.smtp.auth_limit.global = 4;
        c.smtp.auth_limit.global_refill = Duration::from_secs(10);
    })
    .await;
    for octet in 1..=4 {
        let mut c = client_from(&env, octet).await;
        assert!(auth(&mut c, WRONG).await.starts_with("535 5.7.8"));
    }
    let mut late = client_from(&env, 5).await;
    let r = auth(&mut late, RIGHT).await;
    assert!(r.starts_with("454 4.7.0"), "{r}");
    env.clock.advance(Duration::from_secs(10));
    assert!(auth(&mut late, RIGHT).await.starts_with("235"));
}

/// Regression: the command timeout restarted with every byte read, so a client dripping one byte
/// every 20 s held its session (and connection slot) forever. The whole command is bounded now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_dripping_a_command_is_cut_off_by_the_command_timeout() {
    // Long enough that a stalled test task cannot hit it between connect and EHLO.
    let timeout = Duration::from_secs(2);
    let env = Env::start(vec![], |c| c.smtp.command_timeout = timeout).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let start = tokio::time::Instant::now();
    let mut drip = b"NOOP ".iter().copied().chain(std::iter::repeat(b'x'));
    // 50 drips of 200 ms: five times the timeout, each gap well inside it.
    let reply = 'drip: {
        for _ in 0..50 {
            let byte = drip.next().unwrap_or(b'x');
            if c.send_raw(&[byte]).await.is_err() {
                break 'drip None;
            }
            if let Ok(r) = c.reply_within(Duration::from_millis(200)).await {
                break 'drip r;
            }
        }
        panic!("still open after 10 s of dripping past a 2 s command timeout");
    };
    let r = reply.expect("a 421 before the close");
    assert!(r.to_string().starts_with("421 4.4.2"), "{r}");
    assert!(c.is_closed().await);
    let took = start.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_secs(3),
        "cut off after {took:?}"
    );
}

/// A complete message to `<postmaster>` from `client`; returns the RCPT and final replies.
async fn mail_to_postmaster(c: &mut RawClient<tokio::net::TcpStream>) -> (String, String) {
    c.ehlo().await;
    let m = c.cmd("MAIL FROM:<someone@origin.test>").await.unwrap();
    assert_eq!(m.code, 250, "{m}");
    let rcpt = c.cmd("RCPT TO:<Postmaster>").await.unwrap().to_string();
    if !rcpt.starts_with("250") {
        return (rcpt, String::new());
    }
    assert_eq!(c.cmd("DATA").await.unwrap().code, 354);
    c.send_raw(b"Subject: your server\r\n\r\nhello postmaster\r\n.\r\n")
        .await
        .unwrap();
    (rcpt, c.reply().await.unwrap().to_string())
}

/// Regression: `RCPT TO:<postmaster>` (no domain) got 501; RFC 5321 §4.5.1 says accept it. It
/// goes to `smtp.postmaster`, from any client, without making the listener a relay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rcpt_to_bare_postmaster_is_accepted_and_reaches_the_configured_address() {
    let mut env = Env::start(vec![], |c| {
        c.smtp.relay_networks = vec![];
        c.smtp.postmaster = "pm@example.test".into();
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    let (rcpt, done) = mail_to_postmaster(&mut c).await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(done.starts_with("250 2.0.0"), "{done}");
    let d = env
        .events
        .wait_rcpt(EventType::Delivery, "pm@example.test")
        .await;
    assert_eq!(d.mail_from.as_deref(), Some("someone@origin.test"));
    // Still no relay: the same client may not name that address (or any other) itself.
    let m = c.cmd("MAIL FROM:<someone@origin.test>").await.unwrap();
    assert_eq!(m.code, 250);
    for rcpt in ["pm@example.test", "postmaster@example.test"] {
        let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await.unwrap();
        assert!(r.to_string().starts_with("554 5.7.1"), "{rcpt}: {r}");
    }
}

/// Without `smtp.postmaster`, inMail's own `postmaster@<first bounce domain>` receives it: it is
/// read like any report to that mailbox and never queued for delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_postmaster_goes_to_the_bounce_domain_mailbox_with_inmail_on() {
    let env = Env::start(vec![], |c| {
        c.smtp.relay_networks = vec![];
        c.inmail.bounce_domains = vec!["Bounces.Test".into()];
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    let (rcpt, done) = mail_to_postmaster(&mut c).await;
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(done.starts_with("250 2.0.0 Ok: received"), "{done}");
    assert_eq!(env.mta.spool_stats().live_messages, 0);
}
