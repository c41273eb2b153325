//! An in-process authoritative DNS server for tests (feature `testing`).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use cartero_dns::testing::{TestDnsServer, Zone};
//! use cartero_dns::{DnsConfig, MxResolver};
//!
//! let zone = Zone::new("example.test")
//!     .mx("example.test", 10, "mx1.example.test")
//!     .a("mx1.example.test", "127.0.0.1")
//!     .null_mx("nullmx.example.test")
//!     .servfail("broken.example.test");
//! let server = TestDnsServer::start(vec![zone]).await?;
//! let cfg = DnsConfig { nameservers: vec![server.addr()], ..DnsConfig::default() };
//! let resolver = MxResolver::new(&cfg).expect("resolver");
//! # Ok(()) }
//! ```
//!
//! Semantics: a query is answered from the zone whose origin is the longest suffix of the
//! name (no such zone: REFUSED). Names marked `servfail` answer SERVFAIL. A name with records
//! of the asked type answers them; a CNAME is followed inside the zone (up to 8 steps); a name
//! that exists (owns records, has names below it, or is the origin) but lacks the type answers
//! NODATA; anything else answers NXDOMAIN. Negative answers carry the zone's SOA so resolvers
//! cache them for the zone's negative TTL.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use parking_lot::Mutex;
use tokio::net::{TcpListener, UdpSocket};

/// Default TTL of records and of negative answers, in seconds.
pub const DEFAULT_TTL: u32 = 300;
/// Longest CNAME chain the server follows.
const MAX_CNAME_STEPS: usize = 8;
/// How often `start` retries to find a port free for both UDP and TCP.
const BIND_TRIES: usize = 32;

/// An in-memory zone, built by chaining. Names are absolute (`"mx1.example.test"`, a
/// trailing dot is optional). An invalid name or address is remembered and reported by
/// [`TestDnsServer::start`], so building never panics.
#[derive(Debug, Clone)]
pub struct Zone {
    origin: Option<Name>,
    ttl: u32,
    negative_ttl: u32,
    records: Vec<Record>,
    servfail: Vec<Name>,
    error: Option<String>,
}

impl Zone {
    /// A zone for `origin` with no records (the origin itself exists: it has an SOA).
    pub fn new(origin: &str) -> Self {
        let mut zone = Self {
            origin: None,
            ttl: DEFAULT_TTL,
            negative_ttl: DEFAULT_TTL,
            records: Vec::new(),
            servfail: Vec::new(),
            error: None,
        };
        zone.origin = zone.name(origin);
        zone
    }

    /// TTL (seconds) of the records added after this call.
    pub fn ttl(mut self, secs: u32) -> Self {
        self.ttl = secs;
        self
    }

    /// TTL (seconds) of negative answers (SOA TTL and minimum).
    pub fn negative_ttl(mut self, secs: u32) -> Self {
        self.negative_ttl = secs;
        self
    }

    /// Adds `name MX preference exchange`.
    pub fn mx(mut self, name: &str, preference: u16, exchange: &str) -> Self {
        if let Some(exchange) = self.name(exchange) {
            self.add(name, RData::MX(MX::new(preference, exchange)));
        }
        self
    }

    /// Adds a Null MX (`name MX 0 .`, RFC 7505).
    pub fn null_mx(mut self, name: &str) -> Self {
        self.add(name, RData::MX(MX::new(0, Name::root())));
        self
    }

    /// Adds `name A ip`.
    pub fn a(mut self, name: &str, ip: &str) -> Self {
        match ip.parse::<Ipv4Addr>() {
            Ok(ip) => self.add(name, RData::A(A(ip))),
            Err(_) => self.fail(format!("invalid IPv4 address {ip:?}")),
        }
        self
    }

    /// Adds `name AAAA ip`.
    pub fn aaaa(mut self, name: &str, ip: &str) -> Self {
        match ip.parse::<Ipv6Addr>() {
            Ok(ip) => self.add(name, RData::AAAA(AAAA(ip))),
            Err(_) => self.fail(format!("invalid IPv6 address {ip:?}")),
        }
        self
    }

    /// Adds `name CNAME target`.
    pub fn cname(mut self, name: &str, target: &str) -> Self {
        if let Some(target) = self.name(target) {
            self.add(name, RData::CNAME(CNAME(target)));
        }
        self
    }

    /// Makes every query for `name` answer SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        if let Some(name) = self.name(name) {
            self.servfail.push(name);
        }
        self
    }

    fn add(&mut self, name: &str, rdata: RData) {
        if let Some(name) = self.name(name) {
            self.records.push(Record::from_rdata(name, self.ttl, rdata));
        }
    }

    fn name(&mut self, text: &str) -> Option<Name> {
        let fqdn = format!("{}.", text.trim_end_matches('.'));
        match Name::from_ascii(&fqdn) {
            Ok(name) => Some(name.to_lowercase()),
            Err(e) => {
                self.fail(format!("invalid name {text:?}: {e}"));
                None
            }
        }
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn soa(&self, origin: &Name) -> Record {
        let mname = Name::from_ascii("ns.invalid.").unwrap_or_else(|_| Name::root());
        let rname = Name::from_ascii("hostmaster.invalid.").unwrap_or_else(|_| Name::root());
        let soa = SOA::new(mname, rname, 1, 3600, 600, 86400, self.negative_ttl);
        Record::from_rdata(origin.clone(), self.negative_ttl, RData::SOA(soa))
    }

    /// Computes the answer for one question.
    fn answer(&self, origin: &Name, qname: &Name, qtype: RecordType) -> Answer {
        if self.servfail.contains(qname) {
            return Answer::code(ResponseCode::ServFail);
        }
        let mut answers = Vec::new();
        let mut name = qname.clone();
        for _ in 0..MAX_CNAME_STEPS {
            if qtype == RecordType::SOA && name == *origin {
                answers.push(self.soa(origin));
                return Answer::records(answers);
            }
            let here = self.records.iter().filter(|r| r.name == name);
            let matching: Vec<Record> = here
                .clone()
                .filter(|r| r.record_type() == qtype)
                .cloned()
                .collect();
            if !matching.is_empty() {
                answers.extend(matching);
                return Answer::records(answers);
            }
            let alias = here.clone().find_map(|r| match &r.data {
                RData::CNAME(target) if qtype != RecordType::CNAME => {
                    Some((r.clone(), target.0.clone()))
                }
                _ => None,
            });
            if let Some((record, target)) = alias {
                answers.push(record);
                if self.servfail.contains(&target) || !origin.zone_of(&target) {
                    return Answer::records(answers);
                }
                name = target;
                continue;
            }
            let exists = name == *origin || self.records.iter().any(|r| name.zone_of(&r.name));
            let code = if exists {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            };
            return Answer {
                code,
                answers,
                soa: vec![self.soa(origin)],
            };
        }
        Answer::code(ResponseCode::ServFail)
    }
}

/// The response to one question.
struct Answer {
    code: ResponseCode,
    answers: Vec<Record>,
    soa: Vec<Record>,
}

impl Answer {
    fn code(code: ResponseCode) -> Self {
        Self {
            code,
            answers: Vec::new(),
            soa: Vec::new(),
        }
    }

    fn records(answers: Vec<Record>) -> Self {
        Self {
            code: ResponseCode::NoError,
            answers,
            soa: Vec::new(),
        }
    }
}

/// One query as received: lowercase name without the trailing dot, and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedQuery {
    /// Queried name, lowercase, no trailing dot.
    pub name: String,
    /// Record type as text (`"MX"`, `"A"`, `"AAAA"`, ...).
    pub rtype: String,
}

struct Handler {
    zones: Vec<(Name, Zone)>,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
}

impl Handler {
    fn answer(&self, qname: &Name, qtype: RecordType) -> Answer {
        let zone = self
            .zones
            .iter()
            .filter(|(origin, _)| origin.zone_of(qname))
            .max_by_key(|(origin, _)| origin.num_labels());
        match zone {
            Some((origin, zone)) => zone.answer(origin, qname, qtype),
            None => Answer::code(ResponseCode::Refused),
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        let answer = match request.request_info() {
            Ok(info) => {
                let qname = Name::from(info.query.name().clone()).to_lowercase();
                let qtype = info.query.query_type();
                let text = qname.to_ascii();
                self.log.lock().push(LoggedQuery {
                    name: text.trim_end_matches('.').to_owned(),
                    rtype: qtype.to_string(),
                });
                self.answer(&qname, qtype)
            }
            Err(_) => Answer::code(ResponseCode::FormErr),
        };
        metadata.authoritative = true;
        metadata.response_code = answer.code;
        let response = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            answer.answers.iter(),
            std::iter::empty::<&Record>(),
            answer.soa.iter(),
            std::iter::empty::<&Record>(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(_) => ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            }),
        }
    }
}

/// A running test DNS server on 127.0.0.1 (UDP and TCP, same port). Stops when dropped.
pub struct TestDnsServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<LoggedQuery>>>,
    _server: Server<Handler>,
}

impl std::fmt::Debug for TestDnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestDnsServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestDnsServer {
    /// Binds UDP and TCP on a free loopback port and serves `zones`. Must run inside a tokio
    /// runtime, which then drives the server. Fails on an invalid zone description.
    pub async fn start(zones: Vec<Zone>) -> io::Result<Self> {
        let mut served = Vec::with_capacity(zones.len());
        for zone in zones {
            if let Some(err) = &zone.error {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, err.clone()));
            }
            let origin = zone.origin.clone().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "zone without a valid origin")
            })?;
            served.push((origin, zone));
        }
        let (udp, tcp) = bind_pair().await?;
        let addr = udp.local_addr()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut server = Server::new(Handler {
            zones: served,
            log: log.clone(),
        });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64);
        Ok(Self {
            addr,
            log,
            _server: server,
        })
    }

    /// Address to put in [`DnsConfig::nameservers`](crate::DnsConfig::nameservers).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Number of queries received so far.
    pub fn query_count(&self) -> usize {
        self.log.lock().len()
    }

    /// Number of queries received so far for `name` (any type; case and trailing dot ignored).
    pub fn queries_for(&self, name: &str) -> usize {
        let wanted = name.trim_end_matches('.').to_ascii_lowercase();
        self.log.lock().iter().filter(|q| q.name == wanted).count()
    }

    /// Every query received so far, in order.
    pub fn query_log(&self) -> Vec<LoggedQuery> {
        self.log.lock().clone()
    }
}

/// A UDP socket and a TCP listener on the same free loopback port.
async fn bind_pair() -> io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..BIND_TRIES {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let port = udp.local_addr()?.port();
        match TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free port")))
}
