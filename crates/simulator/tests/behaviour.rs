mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Client, start};

fn provider(extra: &str) -> String {
    format!(
        "seed = 3\n[[provider]]\nname = \"p\"\nlisten = \"127.0.0.1:0\"\nstyle = \"gmail\"\n{extra}\n"
    )
}

#[tokio::test]
async fn over_connection_limit_gets_421_at_banner() {
    let (sim, _clock) = start(&provider("max_connections = 2")).await;
    let addr = sim.addr("p").unwrap();
    let (_a, b1) = Client::connect("127.0.0.2", addr).await;
    let (_b, b2) = Client::connect("127.0.0.2", addr).await;
    assert!(
        b1.starts_with("220 ") && b2.starts_with("220 "),
        "{b1} / {b2}"
    );
    let (mut c, b3) = Client::connect("127.0.0.2", addr).await;
    assert!(
        b3.starts_with("421 4.7.0 Try again later, closing connection"),
        "{b3}"
    );
    assert_eq!(c.reply().await, "", "connection must be closed after 421");
    let s = sim.stats("p").unwrap();
    assert_eq!((s.connections, s.throttled), (3, 1));
    // Another source IP has its own connection budget.
    let (_d, b4) = Client::connect("127.0.0.3", addr).await;
    assert!(b4.starts_with("220 "), "{b4}");
    sim.shutdown().await;
}

#[tokio::test]
async fn over_rate_gets_throttle_reply_until_the_window_passes() {
    let (sim, clock) = start(&provider(
        "messages_per_second = 3\nmessages_per_minute = 5",
    ))
    .await;
    let addr = sim.addr("p").unwrap();
    let (mut c, _) = Client::connect("127.0.0.2", addr).await;
    c.ehlo().await;
    for _ in 0..3 {
        let r = c.send("s@sender.test", "u@p.test").await;
        assert!(r.starts_with("250 2.0.0"), "{r}");
    }
    let r = c.send("s@sender.test", "u@p.test").await;
    assert!(
        r.starts_with("451 4.7.1") && r.contains("rate limited"),
        "{r}"
    );
    // The session stays usable; after one second the per-second window has room again.
    clock.advance(Duration::from_secs(1));
    for _ in 0..2 {
        let r = c.send("s@sender.test", "u@p.test").await;
        assert!(r.starts_with("250"), "{r}");
    }
    // Now the per-minute limit (5) bites, even in a fresh second.
    clock.advance(Duration::from_secs(1));
    let r = c.send("s@sender.test", "u@p.test").await;
    assert!(r.starts_with("451 4.7.1"), "{r}");
    clock.advance(Duration::from_secs(60));
    let r = c.send("s@sender.test", "u@p.test").await;
    assert!(r.starts_with("250"), "{r}");
    let s = sim.stats("p").unwrap();
    assert_eq!((s.accepted, s.throttled), (6, 2));
    sim.shutdown().await;
}

#[tokio::test]
async fn limits_are_per_source_ip() {
    let (sim, _clock) = start(&provider("messages_per_second = 2")).await;
    let addr = sim.addr("p").unwrap();
    let (mut a, _) = Client::connect("127.0.0.2", addr).await;
    let (mut b, _) = Client::connect("127.0.0.3", addr).await;
    a.ehlo().await;
    b.ehlo().await;
    for _ in 0..2 {
        assert!(a.send("s@x.test", "u@p.test").await.starts_with("250"));
    }
    let r = a.send("s@x.test", "u@p.test").await;
    assert!(r.starts_with("451 4.7.1") && r.contains("127.0.0.2"), "{r}");
    for _ in 0..2 {
        let r = b.send("s@x.test", "u@p.test").await;
        assert!(
            r.starts_with("250"),
            "127.0.0.3 must have its own budget: {r}"
        );
    }
    let r = b.send("s@x.test", "u@p.test").await;
    assert!(r.starts_with("451 4.7.1") && r.contains("127.0.0.3"), "{r}");
    let s = sim.stats("p").unwrap();
    assert_eq!((s.accepted, s.throttled), (4, 2));
    sim.shutdown().await;
}

#[tokio::test]
async fn greylisting_passes_after_the_delay() {
    let (sim, clock) = start(&provider("greylist = \"60s\"")).await;
    let addr = sim.addr("p").unwrap();
    let (mut c, _) = Client::connect("127.0.0.2", addr).await;
    c.ehlo().await;
    let r = c.send("s@x.test", "u@p.test").await;
    assert!(
        r.starts_with("451 4.7.1") && r.contains("Greylisted"),
        "{r}"
    );
    clock.advance(Duration::from_secs(59));
    assert!(
        c.send("s@x.test", "u@p.test")
            .await
            .starts_with("451 4.7.1")
    );
    clock.advance(Duration::from_secs(1));
    let r = c.send("s@x.test", "u@p.test").await;
    assert!(r.starts_with("250"), "{r}");
    // Another triple (other source IP) starts its own greylisting.
    let (mut d, _) = Client::connect("127.0.0.3", addr).await;
    d.ehlo().await;
    assert!(
        d.send("s@x.test", "u@p.test")
            .await
            .starts_with("451 4.7.1")
    );
    let s = sim.stats("p").unwrap();
    assert_eq!((s.greylisted, s.accepted), (3, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_users_and_full_mailboxes() {
    let extra = "unknown_users = [\"ghost\"]\nunknown_user_prefixes = [\"nouser\"]\nfull_mailboxes = [\"full\"]";
    let (sim, _clock) = start(&provider(extra)).await;
    let (mut c, _) = Client::connect("127.0.0.2", sim.addr("p").unwrap()).await;
    c.ehlo().await;
    for to in ["Ghost@p.test", "nouser42@p.test"] {
        let r = c.send("s@x.test", to).await;
        assert!(r.starts_with("550 5.1.1"), "{to}: {r}");
    }
    let r = c.send("s@x.test", "full@p.test").await;
    assert!(r.starts_with("452 4.2.2"), "{r}");
    let r = c.send("s@x.test", "ghostly@p.test").await;
    assert!(r.starts_with("250"), "{r}");
    let s = sim.stats("p").unwrap();
    assert_eq!((s.rejected, s.deferred, s.accepted), (2, 1, 1));
    sim.shutdown().await;
}

#[tokio::test]
async fn ignoring_throttling_ends_in_a_block_that_expires() {
    let extra = "messages_per_second = 4\n[provider.reputation]\ninitial = 100\npenalty = 25\n\
                 shrink_below = 60\nshrink_factor = 0.5\nblock_below = 20\nblock_for = \"10m\"\nafter_block = 40";
    let (sim, clock) = start(&provider(extra)).await;
    let addr = sim.addr("p").unwrap();
    let ip: IpAddr = "127.0.0.2".parse().unwrap();
    let (mut c, _) = Client::connect("127.0.0.2", addr).await;
    c.ehlo().await;
    for _ in 0..4 {
        assert!(c.send("s@x.test", "u@p.test").await.starts_with("250"));
    }
    // Two over-limit attempts: 100 -> 75 -> 50, now under shrink_below.
    for _ in 0..2 {
        assert!(
            c.send("s@x.test", "u@p.test")
                .await
                .starts_with("451 4.7.1")
        );
    }
    assert_eq!(sim.reputation("p", ip), Some(50));
    // Shrunk limit: 2 per second instead of 4.
    clock.advance(Duration::from_secs(1));
    for _ in 0..2 {
        assert!(c.send("s@x.test", "u@p.test").await.starts_with("250"));
    }
    assert!(
        c.send("s@x.test", "u@p.test")
            .await
            .starts_with("451 4.7.1")
    );
    assert!(
        c.send("s@x.test", "u@p.test")
            .await
            .starts_with("451 4.7.1")
    );
    // 50 -> 25 -> 0: blocked. Everything now gets 554 5.7.1 and the session ends.
    let r = c.send("s@x.test", "u@p.test").await;
    assert!(r.starts_with("554 5.7.1") && r.contains("blocked"), "{r}");
    assert_eq!(c.reply().await, "");
    let (_, banner) = Client::connect("127.0.0.2", addr).await;
    assert!(banner.starts_with("554 5.7.1"), "{banner}");
    // Other sources are not affected.
    let (_, other) = Client::connect("127.0.0.3", addr).await;
    assert!(other.starts_with("220"), "{other}");
    clock.advance(Duration::from_secs(599));
    let (_, banner) = Client::connect("127.0.0.2", addr).await;
    assert!(banner.starts_with("554 5.7.1"), "{banner}");
    clock.advance(Duration::from_secs(1));
    let (_, banner) = Client::connect("127.0.0.2", addr).await;
    assert!(banner.starts_with("220"), "{banner}");
    assert_eq!(sim.reputation("p", ip), Some(40));
    let s = sim.stats("p").unwrap();
    assert_eq!((s.blocks, s.throttled, s.accepted), (1, 4, 6));
    sim.shutdown().await;
}

#[tokio::test]
async fn random_4xx_follows_the_seed() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (sim, _clock) = start(&provider("random_4xx = 0.5")).await;
        let (mut c, _) = Client::connect("127.0.0.2", sim.addr("p").unwrap()).await;
        c.ehlo().await;
        let mut outcomes = Vec::new();
        for _ in 0..24 {
            let r = c.cmd("MAIL FROM:<s@x.test>").await;
            assert!(r.starts_with("250") || r.starts_with("451 4.3.0"), "{r}");
            outcomes.push(r.starts_with("250"));
            c.cmd("RSET").await;
        }
        let s = sim.stats("p").unwrap();
        assert_eq!(
            s.deferred as usize,
            outcomes.iter().filter(|ok| !**ok).count()
        );
        runs.push(outcomes);
        sim.shutdown().await;
    }
    assert_eq!(runs[0], runs[1]);
    assert!(
        runs[0].contains(&true) && runs[0].contains(&false),
        "{:?}",
        runs[0]
    );
}

#[tokio::test]
async fn workspace_client_from_a_chosen_source() {
    use cartero_smtp::io::{ClientConfig, Connection, TlsMode};
    let (sim, _clock) = start(&provider("messages_per_second = 1")).await;
    let addr = sim.addr("p").unwrap();
    let mut cfg = ClientConfig::new("client.test");
    cfg.local_ip = Some("127.0.0.4".parse().unwrap());
    cfg.tls = TlsMode::Disabled;
    let mut conn = Connection::connect(addr, "p", &cfg).await.unwrap();
    assert_eq!(conn.local().ip().to_string(), "127.0.0.4");
    let rcpts = vec!["u@p.test".to_string()];
    let ok = conn
        .send("s@x.test", &rcpts, b"Subject: a\r\n\r\nbody\r\n")
        .await
        .unwrap();
    assert_eq!(ok.outcome(0).map(|r| r.code), Some(250));
    let throttled = conn
        .send("s@x.test", &rcpts, b"Subject: b\r\n\r\nbody\r\n")
        .await
        .unwrap();
    assert_eq!(throttled.mail.code, 451);
    assert!(
        throttled.mail.text.contains("127.0.0.4"),
        "{}",
        throttled.mail
    );
    conn.quit().await;
    sim.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_open_sessions() {
    let (sim, _clock) = start(&provider("")).await;
    let (mut c, _) = Client::connect("127.0.0.2", sim.addr("p").unwrap()).await;
    c.ehlo().await;
    assert!(sim.stats("nope").is_none());
    sim.shutdown().await;
    assert_eq!(c.reply().await, "");
}
