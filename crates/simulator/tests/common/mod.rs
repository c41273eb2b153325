//! A raw-line SMTP client bound to a chosen source IP, with bounded waits.

#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cartero_clock::ManualClock;
use cartero_simulator::{Scenario, Simulator};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const WAIT: Duration = Duration::from_secs(5);

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    /// Connects from `source` (e.g. "127.0.0.2") and returns the client and the first reply.
    pub async fn connect(source: &str, addr: SocketAddr) -> (Client, String) {
        let ip: IpAddr = source.parse().unwrap();
        let sock = TcpSocket::new_v4().unwrap();
        sock.bind(SocketAddr::new(ip, 0)).unwrap();
        let stream = tokio::time::timeout(WAIT, sock.connect(addr))
            .await
            .unwrap()
            .unwrap();
        let (r, w) = stream.into_split();
        let mut c = Client {
            reader: BufReader::new(r),
            writer: w,
        };
        let banner = c.reply().await;
        (c, banner)
    }

    /// Reads one (possibly multi-line) reply; returns its last line, or "" at EOF.
    pub async fn reply(&mut self) -> String {
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("reply timed out")
                .unwrap();
            if n == 0 {
                return String::new();
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return line.trim_end().to_string();
            }
        }
    }

    pub async fn cmd(&mut self, line: &str) -> String {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
        self.reply().await
    }

    /// EHLO, expecting 250.
    pub async fn ehlo(&mut self) {
        let r = self.cmd("EHLO client.test").await;
        assert!(r.starts_with("250"), "EHLO: {r}");
    }

    /// One full transaction; returns the first non-2xx/3xx reply, or the final reply.
    pub async fn send(&mut self, from: &str, to: &str) -> String {
        let r = self.cmd(&format!("MAIL FROM:<{from}>")).await;
        if !r.starts_with('2') {
            return r;
        }
        let r = self.cmd(&format!("RCPT TO:<{to}>")).await;
        if !r.starts_with('2') {
            self.cmd("RSET").await;
            return r;
        }
        let r = self.cmd("DATA").await;
        assert!(r.starts_with("354"), "DATA: {r}");
        self.cmd("Subject: t\r\n\r\nhello\r\n.").await
    }
}

/// Starts a simulator from TOML with a manual clock at a fixed time.
pub async fn start(toml: &str) -> (Simulator, ManualClock) {
    let clock = ManualClock::new(1_700_000_000_000);
    let scenario = Scenario::parse(toml).unwrap();
    let sim = Simulator::start_with_clock(scenario, Arc::new(clock.clone()))
        .await
        .unwrap();
    (sim, clock)
}
