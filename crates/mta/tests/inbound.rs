//! The injection listener over real sockets: relay control, AUTH after STARTTLS, and bad input.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use cartero_events::EventType;
use cartero_mta::config::SmtpUser;
use cartero_mta::hash_password;
use support::{Env, RawClient};
use tokio::io::{AsyncRead, AsyncWrite};

/// EHLO, MAIL FROM and one RCPT; returns the RCPT reply code and text.
async fn envelope<S: AsyncRead + AsyncWrite + Unpin>(c: &mut RawClient<S>, rcpt: &str) -> String {
    c.ehlo().await;
    let m = c.cmd("MAIL FROM:<sender@origin.test>").await.unwrap();
    assert_eq!(m.code, 250, "{m}");
    c.cmd(&format!("RCPT TO:<{rcpt}>"))
        .await
        .unwrap()
        .to_string()
}

/// DATA with a small body; returns the final reply.
async fn data<S: AsyncRead + AsyncWrite + Unpin>(c: &mut RawClient<S>) -> String {
    let r = c.cmd("DATA").await.unwrap();
    assert_eq!(r.code, 354, "{r}");
    c.send_raw(b"Subject: t\r\n\r\nbody\r\n.\r\n")
        .await
        .unwrap();
    c.reply().await.unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_relay_networks_cannot_relay() {
    let env = Env::start(vec![], |c| c.smtp.relay_networks = vec![]).await;
    let (mut c, banner) = RawClient::connect(env.smtp_addr()).await;
    assert_eq!(banner.code, 220);
    let r = envelope(&mut c, "x@example.test").await;
    assert!(r.starts_with("554 5.7.1"), "{r}");
    // The refusal does not end the session.
    assert_eq!(c.cmd("NOOP").await.unwrap().code, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_relays_by_default() {
    let mut env = Env::start(vec![], |_| {}).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    let r = envelope(&mut c, "x@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(data(&mut c).await.starts_with("250 2.0.0"));
    env.events.wait_for(EventType::Delivery, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_offered_only_after_starttls_and_then_allows_relaying() {
    let mut env = Env::start(vec![], |c| {
        c.smtp.relay_networks = vec![];
        c.smtp.users = vec![SmtpUser {
            username: "app".into(),
            password_hash: hash_password("s3cret").unwrap(),
        }];
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    let ehlo = c.ehlo().await;
    assert!(ehlo.text.contains("STARTTLS"), "{ehlo}");
    assert!(
        !ehlo.text.contains("AUTH"),
        "AUTH offered in clear text: {ehlo}"
    );
    let creds = B64.encode(b"\0app\0s3cret");
    let r = c.cmd(&format!("AUTH PLAIN {creds}")).await.unwrap();
    assert_eq!(r.code / 100, 5, "AUTH before TLS must fail: {r}");

    let mut c = c.starttls().await;
    let ehlo = c.ehlo().await;
    assert!(ehlo.text.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    let bad = B64.encode(b"\0app\0wrong");
    let r = c.cmd(&format!("AUTH PLAIN {bad}")).await.unwrap();
    assert!(r.to_string().starts_with("535 5.7.8"), "{r}");
    // Over TLS but not authenticated: still no relaying.
    let m = c.cmd("MAIL FROM:<sender@origin.test>").await.unwrap();
    assert_eq!(m.code, 250);
    let r = c.cmd("RCPT TO:<y@example.test>").await.unwrap();
    assert!(r.to_string().starts_with("554 5.7.1"), "{r}");
    assert_eq!(c.cmd("RSET").await.unwrap().code, 250);

    let r = c.cmd(&format!("AUTH PLAIN {creds}")).await.unwrap();
    assert_eq!(r.code, 235, "{r}");
    let r = envelope(&mut c, "y@example.test").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(data(&mut c).await.starts_with("250 2.0.0"));
    let d = env.events.wait_for(EventType::Delivery, 1).await;
    assert_eq!(d[0].rcpt_to.as_deref(), Some("y@example.test"));
    let text = env.sink.messages()[0].text();
    assert!(text.contains("with ESMTPSA"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_10_mb_line_without_crlf_gets_500_5_5_2_and_the_session_goes_on() {
    let env = Env::start(vec![], |_| {}).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let line = vec![b'A'; 10 * 1024 * 1024];
    c.send_raw(&line).await.unwrap();
    let r = c.reply().await.expect("a reply, not a dropped connection");
    assert!(r.to_string().starts_with("500 5.5.2"), "{r}");
    // The rest of the line is discarded up to its end; the next command is served.
    c.send_raw(b"\r\n").await.unwrap();
    assert_eq!(c.cmd("NOOP").await.unwrap().code, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abrupt_disconnect_mid_data_spools_nothing() {
    let mut env = Env::start(vec![], |_| {}).await;
    let before = env.mta.spool_stats().live_messages;
    {
        let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
        envelope(&mut c, "lost@example.test").await;
        assert_eq!(c.cmd("DATA").await.unwrap().code, 354);
        c.send_raw(b"Subject: never finished\r\n\r\nhalf a bo")
            .await
            .unwrap();
    } // dropped: the connection closes mid-DATA
    // A complete message on a new connection afterwards, to have something to wait for.
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    envelope(&mut c, "defer-kept@example.test").await;
    assert!(data(&mut c).await.starts_with("250"));
    let rec = env.events.wait_for(EventType::Reception, 1).await;
    env.events.wait_for(EventType::Delay, 1).await;
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].rcpt_to.as_deref(), Some("defer-kept@example.test"));
    assert_eq!(env.mta.spool_stats().live_messages, before + 1);
    assert!(
        env.events
            .all()
            .iter()
            .all(|e| e.rcpt_to.as_deref() != Some("lost@example.test"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_bytes_in_a_command_get_501() {
    let env = Env::start(vec![], |_| {}).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    c.send_raw(b"MAIL FROM:<a\0b@origin.test>\r\n")
        .await
        .unwrap();
    let r = c.reply().await.unwrap();
    assert_eq!(r.code, 501, "{r}");
    assert_eq!(c.cmd("NOOP").await.unwrap().code, 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_recipients_get_452_4_5_3() {
    let env = Env::start(vec![], |c| c.smtp.max_recipients = 3).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    envelope(&mut c, "r0@example.test").await;
    for i in 1..3 {
        let r = c
            .cmd(&format!("RCPT TO:<r{i}@example.test>"))
            .await
            .unwrap();
        assert_eq!(r.code, 250, "{r}");
    }
    let r = c.cmd("RCPT TO:<r3@example.test>").await.unwrap();
    assert!(r.to_string().starts_with("452 4.5.3"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_ip_limit_get_421_4_7_0() {
    let env = Env::start(vec![], |c| c.smtp.max_connections_per_ip = 2).await;
    let (_a, b1) = RawClient::connect(env.smtp_addr()).await;
    let (_b, b2) = RawClient::connect(env.smtp_addr()).await;
    assert_eq!((b1.code, b2.code), (220, 220));
    let (mut third, b3) = RawClient::connect(env.smtp_addr()).await;
    assert!(b3.to_string().starts_with("421 4.7.0"), "{b3}");
    assert!(third.is_closed().await, "the refused connection is closed");
    // Closing one frees its slot.
    drop(_a);
    let mut tries = 0;
    loop {
        let (_c, b) = RawClient::connect(env.smtp_addr()).await;
        if b.code == 220 {
            break;
        }
        tries += 1;
        assert!(tries < 100, "slot never released: {b}");
        tokio::task::yield_now().await;
    }
}

/// Regression: after `220 Ready to start TLS` the listener awaited the TLS handshake without any
/// timeout, so a client that never started it held its connection slot forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_starttls_handshake_held_the_connection_forever() {
    // Also bounds the pauses between this client's own commands, so it must outlast a stall of
    // the test task on a loaded machine; the client still waits several times longer (10 s).
    let env = Env::start(vec![], |c| {
        c.smtp.command_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    assert_eq!(c.cmd("STARTTLS").await.unwrap().code, 220);
    // Say nothing more: the server must give up on its own, well within the client's wait.
    assert!(
        c.is_closed().await,
        "the stalled handshake was never timed out"
    );
}

/// Slow clients: an idle session is closed with 421 4.4.2 after `command_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_gets_421_4_4_2_after_the_command_timeout() {
    // Long enough that a stalled test task cannot hit it between connect and EHLO.
    let env = Env::start(vec![], |c| {
        c.smtp.command_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let r = c.reply().await.expect("a reply without asking");
    assert_eq!(
        (r.code, r.enhanced.map(|e| e.to_string())),
        (421, Some("4.4.2".into())),
        "{r}"
    );
    assert!(c.is_closed().await);
}

/// Slow clients: a client that stalls inside DATA is cut off after `data_timeout` (not the longer
/// command timeout) and its partial message is not spooled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_in_data_is_cut_off_by_the_data_timeout() {
    let mut env = Env::start(vec![], |c| {
        c.smtp.command_timeout = std::time::Duration::from_secs(60);
        c.smtp.data_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let before = env.mta.spool_stats().live_messages;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    envelope(&mut c, "slow@example.test").await;
    assert_eq!(c.cmd("DATA").await.unwrap().code, 354);
    // Not a single byte of data: the data timeout applies from the 354 on.
    let r = c.reply().await.expect("the server gives up");
    assert_eq!(r.code, 421, "{r}");
    assert!(c.is_closed().await);
    assert_eq!(env.mta.spool_stats().live_messages, before);
    assert!(
        env.events.all().is_empty(),
        "no reception for a message never finished"
    );
}

/// Regression: failed AUTH attempts were unlimited and each PBKDF2 check ran on an async thread,
/// so one pipelined burst of AUTH lines stalled the whole server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_failed_auth_attempts_could_stall_the_server() {
    let env = Env::start(vec![], |c| {
        c.smtp.users = vec![SmtpUser {
            username: "app".into(),
            password_hash: hash_password("s3cret").unwrap(),
        }];
    })
    .await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    c.ehlo().await;
    let mut c = c.starttls().await;
    c.ehlo().await;
    let bad = B64.encode(b"\0app\0wrong");
    // 50 attempts in one write: the session must stop after the third.
    let burst: String = (0..50).map(|_| format!("AUTH PLAIN {bad}\r\n")).collect();
    c.send_raw(burst.as_bytes()).await.unwrap();
    for _ in 0..3 {
        let r = c.reply().await.expect("a 535 per attempt");
        assert!(r.to_string().starts_with("535 5.7.8"), "{r}");
    }
    let r = c.reply().await.expect("the session is closed");
    assert!(r.to_string().starts_with("421 4.7.0"), "{r}");
    assert!(c.is_closed().await);
    // And the server still answers others at once.
    let (mut other, banner) = RawClient::connect(env.smtp_addr()).await;
    assert_eq!(banner.code, 220);
    assert_eq!(other.cmd("NOOP").await.unwrap().code, 250);
}

/// Regression: replies were written without a timeout, so a client that never reads held its
/// connection slot forever once the socket buffers filled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_held_its_slot_forever() {
    // Long enough that the stuck client is not dropped as idle before its flood starts: the slot
    // must come free through the reply write timing out, not through the idle timeout.
    let env = Env::start(vec![], |c| {
        c.smtp.command_timeout = std::time::Duration::from_secs(2);
        c.smtp.max_connections_per_ip = 1;
        c.smtp.max_errors = 1_000_000;
    })
    .await;
    let mut stuck = tokio::net::TcpStream::connect(env.smtp_addr())
        .await
        .unwrap();
    // Its banner proves the stuck connection holds the only slot before anything else happens.
    let banner = read_line(&mut stuck).await;
    assert!(banner.starts_with("220"), "{banner}");
    let (mut probe, refused) = RawClient::connect(env.smtp_addr()).await;
    assert!(refused.to_string().starts_with("421 4.7.0"), "{refused}");
    assert!(probe.is_closed().await);
    // ~3 MB of NOOPs: their replies overflow both socket buffers while we never read.
    let noops = "NOOP\r\n".repeat(500_000);
    let (_rd, mut wr) = stuck.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = wr.write_all(noops.as_bytes()).await;
        wr
    });
    // The slot must come free: a second connection from the same IP is admitted (220, not 421).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, banner) = RawClient::connect(env.smtp_addr()).await;
        if banner.code == 220 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot never released: {banner}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    writer.abort();
}

/// Reads one CRLF-terminated line (the server sends nothing else before it is spoken to).
async fn read_line(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("no banner in time")
            .unwrap();
        assert_eq!(n, 1, "closed before a full line: {line:?}");
        line.push(byte[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// Clients that may not relay can only send bounces: they get the report parser's 10 MiB limit
/// (advertised in SIZE and enforced), while relay clients keep `smtp.max_message_size`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_clients_get_the_bounce_size_limit() {
    let env = Env::start(vec![], |c| c.smtp.relay_networks = vec![]).await;
    let (mut c, _) = RawClient::connect(env.smtp_addr()).await;
    let ehlo = c.ehlo().await;
    assert!(ehlo.text.contains("SIZE 10485760"), "{ehlo}");
    let r = c.cmd("MAIL FROM:<a@b.test> SIZE=20000000").await.unwrap();
    assert!(r.to_string().starts_with("552 5.3.4"), "{r}");

    let relay = Env::start(vec![], |_| {}).await;
    let (mut c, _) = RawClient::connect(relay.smtp_addr()).await;
    let ehlo = c.ehlo().await;
    assert!(ehlo.text.contains("SIZE 52428800"), "{ehlo}");
}
