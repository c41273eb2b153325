//! Independent verification with dkimpy (`python3-dkim`), for this crate's tests and for other
//! crates whose tests check signatures end to end. Behind the `testing` feature.

use crate::SigningKey;
use std::io::Write;
use std::process::{Command, Stdio};

/// Reads the message on stdin, TXT records as `name value` argument pairs; exits 0 only
/// when every DKIM-Signature field verifies, 1 otherwise.
const VERIFY_SCRIPT: &str = r#"
import logging, sys
import dkim
records = {}
args = sys.argv[1:]
for i in range(0, len(args), 2):
    records[args[i].lower()] = args[i + 1].encode()
def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip('.').lower())
msg = sys.stdin.buffer.read()
head = msg.split(b'\r\n\r\n', 1)[0]
count = sum(1 for l in head.split(b'\r\n') if l.lower().startswith(b'dkim-signature:'))
logging.basicConfig(stream=sys.stderr, level=logging.DEBUG)
d = dkim.DKIM(msg, logger=logging.getLogger('dkim'))
ok = count > 0 and all(d.verify(idx=i, dnsfunc=dnsfunc) for i in range(count))
print('verified %d signature(s): %s' % (count, ok))
sys.exit(0 if ok is True else 1)
"#;

/// The interpreter that can import dkimpy (and PyNaCl, needed for Ed25519), if any.
pub fn python_with_dkimpy() -> Option<&'static str> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import dkim, nacl"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        let msg = "dkimpy not installed (apt-get install python3-dkim python3-nacl)";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but {msg}");
        }
        println!("SKIPPED: {msg}");
    }
    found
}

/// Runs dkimpy on `message` with `keys` published; true when all signatures verify.
pub fn dkimpy_verifies(python: &str, message: &[u8], keys: &[&SigningKey]) -> bool {
    let mut cmd = Command::new(python);
    cmd.args(["-c", VERIFY_SCRIPT]);
    for key in keys {
        cmd.arg(key.dns_name()).arg(key.txt_value());
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running dkimpy");
    child
        .stdin
        .take()
        .expect("running dkimpy")
        .write_all(message)
        .expect("running dkimpy");
    let out = child.wait_with_output().expect("running dkimpy");
    if !out.status.success() {
        eprintln!(
            "dkimpy rejected:\n{}\n--- dkimpy output ---\n{}{}",
            String::from_utf8_lossy(message),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}
