//! Who may move a complaint sweep: the configured feedback-loop sources (`inmail.fbl_sources`),
//! each at a capped rate. Anyone can send a report to a bounce domain; only a report from a
//! source the operator named, and within its rate, charges a sweep.

use super::InMailError;
use cartero_shaping::Rate;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Mutex;

/// Where an inbound message came from, as far as SMTP tells.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    /// The connecting client: the only part a remote sender cannot choose freely.
    pub peer: IpAddr,
    /// The envelope sender (MAIL FROM), possibly empty.
    pub sender: &'a str,
}

#[derive(Debug)]
enum Entry {
    Network(IpNet),
    Address(String),
    Domain(String),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// The configured feedback-loop sources with one token bucket each.
#[derive(Debug)]
pub(crate) struct FblSources {
    entries: Vec<(String, Entry)>,
    rate: Rate,
    buckets: Mutex<Vec<Option<Bucket>>>,
}

fn parse_entry(text: &str) -> Result<Entry, InMailError> {
    let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
    let bad = || InMailError::FblSource(text.to_string());
    if t.is_empty() || t.contains(char::is_whitespace) {
        return Err(bad());
    }
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(Entry::Network(net));
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return Ok(Entry::Network(IpNet::from(ip)));
    }
    match t.rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() => Ok(Entry::Address(t)),
        Some(_) => Err(bad()),
        None if t.contains('/') => Err(bad()),
        None => Ok(Entry::Domain(t)),
    }
}

/// The address in the report's own `From:` field, lower-cased: `Name <a@b>` or `a@b`.
fn header_from(data: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(crate::inject::header_block(data));
    let mut value: Option<String> = None;
    for line in head.split('\n').map(|l| l.trim_end_matches('\r')) {
        match value.as_mut() {
            Some(v) if line.starts_with([' ', '\t']) => {
                v.push(' ');
                v.push_str(line.trim());
            }
            Some(_) => break,
            None => {
                if let Some((name, v)) = line.split_once(':')
                    && name.trim().eq_ignore_ascii_case("from")
                {
                    value = Some(v.trim().to_string());
                }
            }
        }
    }
    let v = value?;
    let address = match (v.rfind('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.as_str(),
    };
    let address = address.trim();
    address.contains('@').then(|| address.to_ascii_lowercase())
}

impl FblSources {
    pub fn new(list: &[String], rate: Rate) -> Result<Self, InMailError> {
        let entries = list
            .iter()
            .map(|t| Ok((t.trim().to_string(), parse_entry(t)?)))
            .collect::<Result<Vec<_>, InMailError>>()?;
        Ok(Self {
            buckets: Mutex::new(vec![None; entries.len()]),
            entries,
            rate,
        })
    }

    /// The first configured source the report of `data` received from `origin` matches: by the
    /// client's IP, else by the envelope sender or the `From:` address (or their domains).
    pub fn matching(&self, origin: &Origin<'_>, data: &[u8]) -> Option<usize> {
        let sender = origin.sender.trim().to_ascii_lowercase();
        let mut from: Option<Option<String>> = None;
        self.entries.iter().position(|(_, e)| match e {
            Entry::Network(net) => net.contains(&origin.peer),
            Entry::Address(a) => {
                *a == sender || from.get_or_insert_with(|| header_from(data)).as_ref() == Some(a)
            }
            Entry::Domain(d) => {
                let f = from.get_or_insert_with(|| header_from(data));
                [Some(sender.as_str()), f.as_deref()]
                    .into_iter()
                    .flatten()
                    .any(|a| crate::queue::domain_of(a) == *d)
            }
        })
    }

    /// The entry as configured, for events and logs.
    pub fn name(&self, i: usize) -> &str {
        self.entries.get(i).map_or("", |(n, _)| n.as_str())
    }

    /// Takes one sweep charge from entry `i` at `now_ms`; `false` when its bucket is empty. The
    /// bucket holds `fbl_rate.count` charges and refills at that many per period.
    pub fn take(&self, i: usize, now_ms: u64) -> bool {
        let cap = f64::from(self.rate.count);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slot) = buckets.get_mut(i) else {
            return false;
        };
        let b = slot.get_or_insert(Bucket {
            tokens: cap,
            at_ms: now_ms,
        });
        let elapsed = now_ms.saturating_sub(b.at_ms) as f64;
        b.tokens = (b.tokens + elapsed * cap / self.rate.per_ms.max(1) as f64).min(cap);
        b.at_ms = b.at_ms.max(now_ms);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(list: &[&str]) -> FblSources {
        let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        FblSources::new(&list, "2/min".parse().unwrap()).unwrap()
    }

    fn origin(peer: &str, sender: &str) -> Origin<'static> {
        Origin {
            peer: peer.parse().unwrap(),
            sender: Box::leak(sender.to_string().into_boxed_str()),
        }
    }

    const REPORT: &[u8] =
        b"Received: x\r\nFrom: \"Feedback\r\n Loop\" <FBL@Provider.example>\r\nTo: a\r\n\r\nFrom: body@x.test\r\n";

    #[test]
    fn entries_match_by_network_address_or_domain() {
        let s = sources(&[
            "192.0.2.0/24",
            "2001:db8::1",
            "arf@isp.example",
            "provider.example",
        ]);
        assert_eq!(s.matching(&origin("192.0.2.77", ""), b""), Some(0));
        assert_eq!(s.matching(&origin("2001:db8::1", ""), b""), Some(1));
        assert_eq!(
            s.matching(&origin("127.0.0.1", "ARF@isp.example"), b""),
            Some(2)
        );
        // The report's From (folded, with a display name) and its domain.
        assert_eq!(s.matching(&origin("127.0.0.1", ""), REPORT), Some(3));
        assert_eq!(
            s.matching(&origin("127.0.0.1", "x@provider.example"), b""),
            Some(3)
        );
        // The body's From is not the report's.
        let s = sources(&["x.test"]);
        assert_eq!(s.matching(&origin("127.0.0.1", ""), REPORT), None);
        assert_eq!(s.matching(&origin("127.0.0.1", "a@sub.x.test"), b""), None);
        assert_eq!(header_from(REPORT).as_deref(), Some("fbl@provider.example"));
        assert_eq!(
            header_from(b"From: a@b.test\r\n\r\n").as_deref(),
            Some("a@b.test")
        );
        assert_eq!(header_from(b"From: nobody\r\n\r\n"), None);
    }

    #[test]
    fn bad_entries_are_refused_with_their_text() {
        for bad in [
            "",
            " ",
            "@isp.example",
            "arf@",
            "10.0.0.0/33",
            "a b.example",
        ] {
            let list = vec![bad.to_string()];
            let err = FblSources::new(&list, "1/min".parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn each_source_has_its_own_capped_rate() {
        let s = sources(&["a.example", "b.example"]);
        assert!(s.take(0, 0));
        assert!(s.take(0, 0));
        assert!(!s.take(0, 0), "2/min holds two");
        assert!(s.take(1, 0), "another source's bucket is full");
        assert!(!s.take(0, 29_000));
        assert!(s.take(0, 30_000), "one charge back after half a minute");
        assert!(!s.take(0, 30_000));
        assert!(s.take(0, 10 * 60_000));
        assert!(s.take(0, 10 * 60_000));
        assert!(!s.take(0, 10 * 60_000), "never more than the bucket holds");
        assert!(!s.take(7, 0));
    }
}
