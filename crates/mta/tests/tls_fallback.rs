//! Opportunistic STARTTLS that fails its handshake: the MTA retries the same host in plain text at
//! once, remembers the host for an hour (no TLS attempt meanwhile), and tries TLS again afterwards.

mod support;

use cartero_clock::ManualClock;
use cartero_dns::testing::TestDnsServer;
use cartero_events::EventType;
use cartero_smtp::server::{Event, ServerConfig, Session};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use support::{T0, example_zone, message, start_mta, test_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Counts STARTTLS commands; answers each with 220 and then garbage instead of a TLS handshake.
#[derive(Default)]
struct Counts {
    starttls: AtomicUsize,
    connections: AtomicUsize,
    messages: AtomicUsize,
}

async fn serve_one(mut s: TcpStream, counts: Arc<Counts>) {
    counts.connections.fetch_add(1, Ordering::SeqCst);
    let cfg = ServerConfig {
        hostname: "broken-tls.test".into(),
        starttls: true,
        ..ServerConfig::default()
    };
    let mut session = Session::new(cfg, false);
    let mut out = session.greeting().to_wire();
    let mut buf = vec![0u8; 8192];
    loop {
        let reply = match session.next_event() {
            Event::NeedMore => {
                if s.write_all(&out).await.is_err() {
                    return;
                }
                out.clear();
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => session.feed(&buf[..n]),
                }
                continue;
            }
            Event::Reply(r) => r,
            Event::StartTls => {
                counts.starttls.fetch_add(1, Ordering::SeqCst);
                out.extend_from_slice(&session.accept().to_wire());
                out.extend_from_slice(b"this is not a TLS server hello\r\n");
                let _ = s.write_all(&out).await;
                return;
            }
            Event::Message { .. } => {
                counts.messages.fetch_add(1, Ordering::SeqCst);
                session.accept_message(cartero_smtp::Reply::with_code(250, (2, 0, 0), "ok"))
            }
            Event::Quit(r) | Event::Close(r) => {
                let _ = s.write_all(&r.to_wire()).await;
                return;
            }
            _ => session.accept(),
        };
        reply.write_to(&mut out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_opportunistic_starttls_falls_back_to_plain_and_is_remembered() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_one(s, c.clone()));
        }
    });
    let dns = TestDnsServer::start(vec![example_zone()]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path(), dns.addr(), port);
    // One message per connection, so every message shows whether a new connection tried TLS
    // (an idle timeout alone races with the next injection).
    cfg.shaping.default.max_messages_per_connection = Some(1);
    let clock = ManualClock::new(T0);
    let (mta, mut events) = start_mta(cfg, &clock).await;
    let send = |to: &'static str| {
        let mta = mta.clone();
        async move {
            mta.inject(cartero_mta::Injection {
                sender: "s@origin.test".into(),
                recipients: vec![to.into()],
                body: message(to, "tls"),
                ..Default::default()
            })
            .await
            .unwrap()
        }
    };

    send("a@example.test").await;
    let ev = events
        .wait_rcpt(EventType::Delivery, "a@example.test")
        .await;
    assert_eq!(
        ev.tls,
        Some(false),
        "delivered in plain text after the failed handshake"
    );
    assert_eq!(counts.starttls.load(Ordering::SeqCst), 1);

    send("b@example.test").await;
    events
        .wait_rcpt(EventType::Delivery, "b@example.test")
        .await;
    assert_eq!(
        counts.starttls.load(Ordering::SeqCst),
        1,
        "the broken host is remembered"
    );

    clock.advance(Duration::from_secs(3601));
    send("c@example.test").await;
    events
        .wait_rcpt(EventType::Delivery, "c@example.test")
        .await;
    assert_eq!(
        counts.starttls.load(Ordering::SeqCst),
        2,
        "TLS is tried again after an hour"
    );
    assert_eq!(counts.messages.load(Ordering::SeqCst), 3);
    // a: failed TLS + plain, b: plain only, c: failed TLS + plain.
    assert_eq!(counts.connections.load(Ordering::SeqCst), 5);
    assert!(
        events.of(EventType::Delay).is_empty(),
        "no attempt was wasted"
    );
    mta.shutdown().await;
}
