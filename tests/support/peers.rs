//! Real third-party peers: swaks (client), Postfix's smtp-sink/smtp-source, python aiosmtpd.

use super::{DEADLINE, missing, wait_until};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub const SWAKS: &str = "/usr/bin/swaks";
pub const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
pub const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";
/// Debian's python3-* packages are installed for this interpreter, not for any other python3.
pub const PYTHON: &str = "/usr/bin/python3";

/// True when the executable exists; otherwise reports it missing (fails in CI).
pub fn have(path: &str, name: &str) -> bool {
    Path::new(path).exists() || missing(name)
}

/// True when /usr/bin/python3 can import aiosmtpd; otherwise reports it missing.
pub fn have_aiosmtpd() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || missing("python3-aiosmtpd (for /usr/bin/python3)")
}

/// Runs swaks against `server` with `args`; returns its exit code and its whole transcript.
pub fn swaks(server: SocketAddr, args: &[&str]) -> (i32, String) {
    let out = Command::new(SWAKS)
        .args(["--server", &server.to_string(), "--timeout", "30"])
        .args(args)
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Postfix `smtp-sink` dumping every transaction into its own file under `dir`.
pub struct SmtpSink {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _proc: Proc,
}

impl SmtpSink {
    /// Starts smtp-sink on a loopback port the kernel picks; `dir` must be writable by the
    /// postfix user when root.
    ///
    /// smtp-sink cannot report its port, and binding a port found free beforehand is a race it
    /// can lose without noticing: it sets SO_REUSEPORT, so it shares a port with another
    /// smtp-sink (of a concurrent test) instead of failing. So it binds port 0 and the port is
    /// read from its own listening socket; the greeting on that port must be its own.
    pub fn start(dir: &Path) -> SmtpSink {
        std::fs::create_dir_all(dir).unwrap();
        if is_root() {
            make_world_writable(dir);
        }
        let mut errors = Vec::new();
        for _ in 0..SMTP_SINK_ATTEMPTS {
            match spawn_smtp_sink(dir) {
                Ok((addr, proc)) => {
                    return SmtpSink {
                        addr,
                        dir: dir.to_path_buf(),
                        _proc: proc,
                    };
                }
                Err(e) => errors.push(e),
            }
        }
        panic!("smtp-sink did not start: {errors:#?}");
    }

    /// Transactions received so far per recipient address (each dump's `X-Rcpt-Args`).
    pub fn rcpt_counts(&self) -> std::collections::HashMap<String, usize> {
        let mut counts = std::collections::HashMap::new();
        for d in self.dumps() {
            for line in d.lines() {
                if let Some(addr) = line
                    .strip_prefix("X-Rcpt-Args: <")
                    .and_then(|r| r.strip_suffix('>'))
                {
                    *counts.entry(addr.to_string()).or_insert(0) += 1;
                }
            }
        }
        counts
    }

    /// Contents of every dump file so far.
    pub fn dumps(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_files(&self.dir, &mut out);
        out.iter()
            .filter_map(|p| std::fs::read(p).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .collect()
    }
}

const SMTP_SINK_ATTEMPTS: usize = 3;
/// smtp-sink greets with the hostname given by `-h`.
const SMTP_SINK_GREETING: &str = "220 smtp-sink.test ";

/// One try at starting smtp-sink: its address once it greets as itself, or why not.
fn spawn_smtp_sink(dir: &Path) -> Result<(SocketAddr, Proc), String> {
    let mut cmd = Command::new(SMTP_SINK);
    if is_root() {
        // smtp-sink refuses to run as root without a user to drop privileges to.
        cmd.args(["-u", "postfix"]);
    }
    let template = format!("{}/%H%M%S.", dir.display());
    cmd.args([
        "-d",
        &template,
        "-h",
        "smtp-sink.test",
        "127.0.0.1:0",
        "100",
    ])
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let mut proc = Proc(cmd.spawn().map_err(|e| format!("spawn: {e}"))?);
    let pid = proc.0.id();
    let mut exited = None;
    let mut port = None;
    wait_until(DEADLINE, || {
        exited = proc.0.try_wait().ok().flatten();
        port = listening_port(pid);
        exited.is_some() || port.is_some()
    });
    if let Some(status) = exited {
        let mut err = String::new();
        if let Some(mut e) = proc.0.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        return Err(format!("exited with {status}: {err}"));
    }
    let addr: SocketAddr = ([127, 0, 0, 1], port.ok_or("no listening socket")?).into();
    let greeting = first_line(addr).map_err(|e| format!("greeting on {addr}: {e}"))?;
    if !greeting.starts_with(SMTP_SINK_GREETING) {
        return Err(format!("{addr} greeted with {greeting:?}"));
    }
    Ok((addr, proc))
}

/// The TCP port process `pid` listens on, found through its socket descriptors' inodes in
/// /proc/net/tcp.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?;
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        let f: Vec<&str> = line.split_whitespace().collect();
        let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
        let listening = *state == "0A" && inodes.iter().any(|i| i == inode);
        let port = local.rsplit_once(':')?.1;
        listening.then(|| u16::from_str_radix(port, 16).ok())?
    })
}

/// Connects to `addr` and reads the first line the server sends.
fn first_line(addr: SocketAddr) -> std::io::Result<String> {
    let conn = std::net::TcpStream::connect_timeout(&addr, DEADLINE)?;
    conn.set_read_timeout(Some(DEADLINE))?;
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line)?;
    Ok(line)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn make_world_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let perm = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    perm(dir, 0o777).unwrap();
    // The postfix user must also be able to traverse the tempdir that holds `dir`.
    let mut p = dir.parent();
    while let Some(parent) = p {
        if parent.starts_with(std::env::temp_dir()) && parent != std::env::temp_dir() {
            perm(parent, 0o755).unwrap();
        }
        p = parent.parent();
    }
}

/// The aiosmtpd sink script in `interop/`: writes every message to `dir/N.eml` (exact bytes)
/// with its envelope in `dir/N.json`.
pub struct Aiosmtpd {
    pub addr: SocketAddr,
    pub dir: PathBuf,
    _proc: Proc,
}

impl Aiosmtpd {
    pub fn start(dir: &Path, delay: f64) -> Aiosmtpd {
        std::fs::create_dir_all(dir).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/aiosmtpd_sink.py");
        let mut child = Command::new(PYTHON)
            .arg(script)
            .args(["--dir", &dir.display().to_string()])
            .args(["--delay", &delay.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut first = String::new();
        let stdout = child.stdout.take().unwrap();
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let port: u16 = first
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("aiosmtpd sink said {first:?}"));
        Aiosmtpd {
            addr: ([127, 0, 0, 1], port).into(),
            dir: dir.to_path_buf(),
            _proc: Proc(child),
        }
    }

    /// (envelope JSON, exact message bytes) of every complete message so far.
    pub fn messages(&self) -> Vec<(serde_json::Value, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "eml") {
                let env = std::fs::read_to_string(p.with_extension("json")).unwrap();
                out.push((
                    serde_json::from_str(&env).unwrap(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
        out
    }
}

/// Runs smtp-source to completion against `server`; panics with its output on failure.
pub fn smtp_source(server: SocketAddr, args: &[&str]) {
    let out = Command::new(SMTP_SOURCE)
        .args(args)
        .arg(server.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtp-source failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
