//! Driver tests against scripted fake SMTP servers on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cartero_smtp::client::{Phase, dot_unstuff};
use cartero_smtp::io::{ClientConfig, ClientError, Connection, Timeouts, TlsMode};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;

const STEP: Duration = Duration::from_secs(5);

/// The server side of one session, line by line.
struct Peer<S> {
    io: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    fn new(s: S) -> Self {
        Self {
            io: BufReader::new(s),
        }
    }

    async fn say(&mut self, text: &str) {
        let w = self.io.get_mut();
        w.write_all(text.as_bytes()).await.unwrap();
        w.flush().await.unwrap();
    }

    /// The next line without its line end, `None` at EOF.
    async fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        let n = timeout(STEP, self.io.read_line(&mut l))
            .await
            .unwrap()
            .ok()?;
        (n > 0).then(|| l.trim_end_matches(['\r', '\n']).to_string())
    }

    async fn expect(&mut self, prefix: &str) -> String {
        let l = self.line().await.expect("client closed early");
        assert!(l.starts_with(prefix), "expected {prefix:?}, got {l:?}");
        l
    }

    /// The dot-stuffed data up to and including the terminator line.
    async fn data(&mut self) -> Vec<u8> {
        let mut raw = Vec::new();
        loop {
            let mut l = Vec::new();
            timeout(STEP, self.io.read_until(b'\n', &mut l))
                .await
                .unwrap()
                .unwrap();
            assert!(!l.is_empty(), "EOF in data");
            raw.extend_from_slice(&l);
            if l == b".\r\n" {
                return raw;
            }
        }
    }

    async fn greet(&mut self, exts: &[&str]) {
        self.say("220 fake.test ESMTP\r\n").await;
        self.expect("EHLO client.test").await;
        self.say(&ehlo_reply(exts)).await;
    }
}

fn ehlo_reply(exts: &[&str]) -> String {
    let mut s = String::new();
    let lines: Vec<&str> = std::iter::once("fake.test")
        .chain(exts.iter().copied())
        .collect();
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        s.push_str(&format!("250{sep}{l}\r\n"));
    }
    s
}

async fn listen() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

async fn accept(l: &TcpListener) -> Peer<TcpStream> {
    let (s, _) = l.accept().await.unwrap();
    Peer::new(s)
}

fn cfg(tls: TlsMode) -> ClientConfig {
    let mut c = ClientConfig::new("client.test");
    c.tls = tls;
    c.timeouts = Timeouts::uniform(STEP);
    c
}

fn to(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn pipelined_transaction_gives_per_recipient_replies() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.greet(&["PIPELINING", "SIZE 100000", "8BITMIME"]).await;
        // All five commands must arrive before any reply: a client waiting for the MAIL
        // reply would deadlock here and time out.
        let mut batch = Vec::new();
        for _ in 0..5 {
            batch.push(p.line().await.unwrap());
        }
        p.say("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n250 2.1.5 ok\r\n")
            .await;
        p.say("354 go\r\n").await;
        let data = p.data().await;
        p.say("250 2.0.0 queued as 42\r\n").await;
        p.expect("QUIT").await;
        p.say("221 bye\r\n").await;
        (batch, data)
    });
    let mut c = Connection::connect(addr, "fake.test", &cfg(TlsMode::Opportunistic))
        .await
        .unwrap();
    assert!(c.capabilities().pipelining && !c.is_tls());
    assert_eq!(c.remote(), addr);
    let body = b"Subject: t\r\n\r\n.leading dot\r\nend".to_vec();
    let res = c
        .send("s@y", &to(&["a@x", "b@x", "c@x"]), &body)
        .await
        .unwrap();
    assert_eq!(
        res.rcpts.iter().map(|r| r.code).collect::<Vec<_>>(),
        vec![250, 550, 250]
    );
    assert_eq!(res.rcpts[1].text, "no such user");
    assert_eq!(
        res.data.as_ref().map(|r| r.text.as_str()),
        Some("queued as 42")
    );
    c.quit().await;
    let (batch, data) = server.await.unwrap();
    assert_eq!(
        batch,
        vec![
            "MAIL FROM:<s@y> SIZE=31",
            "RCPT TO:<a@x>",
            "RCPT TO:<b@x>",
            "RCPT TO:<c@x>",
            "DATA"
        ]
    );
    assert!(data.windows(15).any(|w| w == b"\r\n..leading dot"));
    assert_eq!(dot_unstuff(&data).unwrap(), [&body[..], b"\r\n"].concat());
}

#[tokio::test]
async fn without_pipelining_commands_wait_for_replies() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.greet(&["8BITMIME"]).await;
        p.expect("MAIL FROM:<> BODY=8BITMIME").await;
        // A correct client sends nothing more until it has the reply.
        let early = timeout(Duration::from_millis(200), p.io.fill_buf()).await;
        assert!(early.is_err(), "client pipelined without PIPELINING");
        p.say("250 ok\r\n").await;
        p.expect("RCPT TO:<a@x>").await;
        p.say("451 4.3.0 try later\r\n").await;
        p.expect("RCPT TO:<b@x>").await;
        p.say("250 ok\r\n").await;
        p.expect("DATA").await;
        p.say("354 go\r\n").await;
        let data = p.data().await;
        p.say("250 done\r\n").await;
        data
    });
    let mut c = Connection::connect(addr, "fake.test", &cfg(TlsMode::Opportunistic))
        .await
        .unwrap();
    let body = "Subject: x\r\n\r\ncaf\u{e9}\r\n".as_bytes();
    let res = c.send("", &to(&["a@x", "b@x"]), body).await.unwrap();
    assert_eq!(res.rcpts[0].code, 451);
    assert_eq!(res.rcpts[1].code, 250);
    assert_eq!(res.outcome(1).unwrap().text, "done");
    assert_eq!(server.await.unwrap(), [body, b".\r\n"].concat());
}

#[tokio::test]
async fn banner_421_is_a_connection_level_rejection() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.say("421 4.7.0 too busy\r\n").await;
    });
    let err = Connection::connect(addr, "fake.test", &cfg(TlsMode::Disabled))
        .await
        .unwrap_err();
    match &err {
        ClientError::Rejected {
            phase: Phase::Banner,
            reply,
        } => assert_eq!(reply.code, 421),
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.is_connection_level());
    server.await.unwrap();
}

#[tokio::test]
async fn ehlo_502_falls_back_to_helo() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.say("220 old.test SMTP\r\n").await;
        p.expect("EHLO client.test").await;
        p.say("502 5.5.1 what\r\n").await;
        p.expect("HELO client.test").await;
        p.say("250 old.test\r\n").await;
        p.expect("MAIL FROM:<s@y>").await;
        p.say("250 ok\r\n").await;
        p.expect("RCPT TO:<a@x>").await;
        p.say("250 ok\r\n").await;
        p.expect("DATA").await;
        p.say("354 go\r\n").await;
        p.data().await;
        p.say("250 ok\r\n").await;
    });
    let mut c = Connection::connect(addr, "old.test", &cfg(TlsMode::Opportunistic))
        .await
        .unwrap();
    assert!(!c.capabilities().esmtp);
    let res = c.send("s@y", &to(&["a@x"]), b"hi").await.unwrap();
    assert!(res.data.unwrap().is_positive());
    server.await.unwrap();
}

struct TestCert {
    chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
    /// The trust anchor that verifies `chain` for "localhost".
    ca: CertificateDer<'static>,
}

fn test_cert() -> TestCert {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    TestCert {
        chain: vec![leaf.der().clone()],
        key: leaf_key.serialize_der(),
        ca: ca.der().clone(),
    }
}

fn acceptor(cert: &TestCert) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.key.clone()));
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// Serves `sessions` connections: STARTTLS, then EHLO and one transaction or QUIT over TLS.
/// Returns how many sessions completed the handshake.
async fn tls_server(l: TcpListener, acc: TlsAcceptor, sessions: usize) -> usize {
    let mut secured = 0;
    for _ in 0..sessions {
        let mut p = accept(&l).await;
        p.greet(&["PIPELINING", "STARTTLS"]).await;
        p.expect("STARTTLS").await;
        p.say("220 2.0.0 ready\r\n").await;
        let Ok(tls) = acc.accept(p.io.into_inner()).await else {
            continue;
        };
        secured += 1;
        let mut p = Peer::new(tls);
        p.expect("EHLO client.test").await;
        p.say(&ehlo_reply(&["PIPELINING"])).await;
        let line = p.line().await.unwrap();
        if line.starts_with("QUIT") {
            p.say("221 bye\r\n").await;
            continue;
        }
        assert_eq!(line, "MAIL FROM:<s@y>");
        p.expect("RCPT TO:<a@x>").await;
        p.expect("DATA").await;
        p.say("250 ok\r\n250 ok\r\n354 go\r\n").await;
        p.data().await;
        p.say("250 2.0.0 sent over tls\r\n").await;
    }
    secured
}

#[tokio::test]
async fn opportunistic_starttls_upgrades_with_a_self_made_cert() {
    let cert = test_cert();
    let (l, addr) = listen().await;
    let server = tokio::spawn(tls_server(l, acceptor(&cert), 1));
    let mut c = Connection::connect(addr, "localhost", &cfg(TlsMode::Opportunistic))
        .await
        .unwrap();
    assert!(c.is_tls());
    // The capabilities are those of the EHLO after the handshake.
    assert!(!c.capabilities().starttls);
    let res = c.send("s@y", &to(&["a@x"]), b"secret").await.unwrap();
    assert_eq!(res.data.unwrap().text, "sent over tls");
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn required_verified_checks_the_certificate_name() {
    let cert = test_cert();
    let (l, addr) = listen().await;
    let server = tokio::spawn(tls_server(l, acceptor(&cert), 2));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.ca.clone()).unwrap();
    let mut config = cfg(TlsMode::RequiredVerified);
    config.tls_roots = Some(Arc::new(roots));
    let c = Connection::connect(addr, "localhost", &config)
        .await
        .unwrap();
    assert!(c.is_tls());
    c.quit().await;
    let err = Connection::connect(addr, "mx.other.test", &config)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    assert!(err.is_connection_level());
    assert_eq!(server.await.unwrap(), 1);
}

#[tokio::test]
async fn required_tls_fails_when_starttls_is_not_offered() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.greet(&["PIPELINING"]).await;
        // The client must not go on in plaintext: next is EOF (or at most QUIT).
        let next = p.line().await;
        assert!(
            next.is_none() || next.as_deref() == Some("QUIT"),
            "{next:?}"
        );
    });
    let err = Connection::connect(addr, "fake.test", &cfg(TlsMode::Required))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TlsUnavailable), "{err:?}");
    assert!(err.is_connection_level());
    server.await.unwrap();
}

#[tokio::test]
async fn silent_servers_time_out_in_the_right_phase() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        // First session: never greets.
        let mut silent = accept(&l).await;
        // Second session: goes silent after the body.
        let mut p = accept(&l).await;
        p.greet(&["PIPELINING"]).await;
        for _ in 0..3 {
            p.line().await.unwrap();
        }
        p.say("250 ok\r\n250 ok\r\n354 go\r\n").await;
        p.data().await;
        // Keep both sockets open until the client gave up on them.
        assert!(silent.line().await.is_none());
        assert!(p.line().await.is_none());
    });
    // Only the phase under test has a short limit: a stall of this task in another phase must
    // not fire that phase's timeout instead. The long limit is still far below the elapsed bound
    // below, so a client that ignored the banner limit would fail it.
    let short = Duration::from_millis(300);
    let long = Timeouts::uniform(Duration::from_secs(30));
    let mut config = cfg(TlsMode::Disabled);
    config.timeouts = Timeouts {
        banner: short,
        ..long
    };
    let started = Instant::now();
    let err = Connection::connect(addr, "fake.test", &config)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                phase: Phase::Banner
            }
        ),
        "{err:?}"
    );
    assert!(err.is_connection_level());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(15),
        "banner timeout took {took:?}"
    );

    config.timeouts = Timeouts {
        data_end: short,
        ..long
    };
    let mut c = Connection::connect(addr, "fake.test", &config)
        .await
        .unwrap();
    let err = c.send("s@y", &to(&["a@x"]), b"x").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                phase: Phase::DataEnd
            }
        ),
        "{err:?}"
    );
    assert!(!err.is_connection_level());
    assert!(!c.is_reusable());
    assert!(matches!(
        c.send("s@y", &to(&["a@x"]), b"x").await,
        Err(ClientError::NotReusable)
    ));
    drop(c);
    server.await.unwrap();
}

#[tokio::test]
async fn connection_is_reused_after_a_refused_transaction() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = accept(&l).await;
        p.greet(&["PIPELINING"]).await;
        p.expect("MAIL FROM:<s@y>").await;
        p.expect("RCPT TO:<gone@x>").await;
        p.expect("DATA").await;
        p.say("250 ok\r\n550 5.1.1 gone\r\n554 5.5.1 no valid recipients\r\n")
            .await;
        p.expect("RSET").await;
        p.say("250 flushed\r\n").await;
        p.expect("MAIL FROM:<s@y>").await;
        p.expect("RCPT TO:<here@x>").await;
        p.expect("DATA").await;
        p.say("250 ok\r\n250 ok\r\n354 go\r\n").await;
        let data = p.data().await;
        p.say("250 second ok\r\n").await;
        p.expect("QUIT").await;
        p.say("221 bye\r\n").await;
        data
    });
    let mut c = Connection::connect(addr, "fake.test", &cfg(TlsMode::Disabled))
        .await
        .unwrap();
    let first = c.send("s@y", &to(&["gone@x"]), b"one").await.unwrap();
    assert_eq!(first.rcpts[0].code, 550);
    assert_eq!(first.data, None);
    assert!(c.is_reusable());
    let second = c.send("s@y", &to(&["here@x"]), b"two").await.unwrap();
    assert_eq!(second.data.unwrap().text, "second ok");
    c.quit().await;
    assert_eq!(server.await.unwrap(), b"two\r\n.\r\n");
}

#[tokio::test]
async fn local_ip_is_the_source_address_the_server_sees() {
    let (l, addr) = listen().await;
    let server = tokio::spawn(async move {
        let (s, peer) = l.accept().await.unwrap();
        let mut p = Peer::new(s);
        p.greet(&[]).await;
        p.expect("QUIT").await;
        p.say("221 bye\r\n").await;
        peer.ip()
    });
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let mut config = cfg(TlsMode::Opportunistic);
    config.local_ip = Some(source);
    let c = Connection::connect(addr, "fake.test", &config)
        .await
        .unwrap();
    assert_eq!(c.local().ip(), source);
    c.quit().await;
    assert_eq!(server.await.unwrap(), source);
}

#[tokio::test]
async fn connect_refused_is_connection_level() {
    // Bound but never listening: connections are refused, and unlike a dropped listener the port
    // stays ours, so no concurrent test can start listening on it.
    let reserved = tokio::net::TcpSocket::new_v4().unwrap();
    reserved.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = reserved.local_addr().unwrap();
    let err = Connection::connect(addr, "fake.test", &cfg(TlsMode::Disabled))
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err:?}");
    assert!(err.is_connection_level());
    drop(reserved);
}
