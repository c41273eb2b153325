//! Analysis (SPEC §3.2): the send list of a delivery and its exclusions, each kept as an
//! Ignored log row with its reason, checked in this order:
//!
//! 1. no address (reason 7), 2. invalid syntax (7, [`cartero_address::is_mailbox`]),
//! 3. duplicate in this delivery (10), 4. in quarantine (9), 5. denylisted (8).
//!
//! Streaming: candidates come from an iterator and leave as decisions one by one; the only
//! memory that grows is the duplicate set, one 64-bit hash per distinct address (about 16
//! bytes with the table's overhead, ~16 MiB for a million). Two distinct addresses share a
//! hash with probability about n²/2⁶⁵ (3·10⁻⁸ for a million); the hasher's keys are random
//! per analysis, so no list can be built to collide on purpose.

use crate::model::UnixMillis;
use crate::model::{
    AddressState, DeliveryId, FailureInfo, Feedback, LogId, LogRow, LogStatus, RecipientId,
};
use crate::quarantine::{self, QuarantineConfig};
use cartero_address::{Address, AddressError};
use cartero_bounce::{FailureType, Reason};
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

/// Why a recipient is not sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    NoAddress,
    InvalidSyntax(AddressError),
    /// The same address (domain compared case-insensitively, as routing does) came earlier.
    Duplicate,
    Quarantine,
    Denylisted,
}

impl Exclusion {
    pub fn reason(self) -> Reason {
        match self {
            Exclusion::NoAddress | Exclusion::InvalidSyntax(_) => Reason::AddressNotSpecified,
            Exclusion::Duplicate => Reason::Duplicate,
            Exclusion::Quarantine => Reason::Quarantine,
            Exclusion::Denylisted => Reason::Denylisted,
        }
    }

    /// The failure of the Ignored row.
    pub fn failure(self) -> FailureInfo {
        let (rule, text) = match self {
            Exclusion::NoAddress => ("analysis:no-address", "no address".to_string()),
            Exclusion::InvalidSyntax(e) => {
                ("analysis:invalid-syntax", format!("invalid address: {e}"))
            }
            Exclusion::Duplicate => ("analysis:duplicate", "duplicate in this delivery".into()),
            Exclusion::Quarantine => ("analysis:quarantine", "address in quarantine".into()),
            Exclusion::Denylisted => ("analysis:denylisted", "denylisted address".into()),
        };
        FailureInfo {
            r#type: FailureType::Ignored,
            reason: self.reason(),
            class: None,
            text,
            rule: rule.to_string(),
        }
    }
}

/// A recipient to consider: its address as imported and whatever else the caller carries
/// along (attributes, recipient id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<A> {
    pub address: String,
    pub attributes: A,
}

/// The verdict on one candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<A> {
    pub candidate: Candidate<A>,
    /// The address as targeted: trimmed.
    pub address: String,
    /// Its domain, lower-cased (empty without an `@`).
    pub domain: String,
    /// `None`: to deliver.
    pub exclusion: Option<Exclusion>,
}

impl<A> Decision<A> {
    /// The log row for this decision: Pending, or Ignored with its reason.
    pub fn log_row(
        &self,
        id: LogId,
        delivery: DeliveryId,
        recipient: Option<RecipientId>,
    ) -> LogRow {
        LogRow {
            id,
            delivery,
            recipient,
            address: self.address.clone(),
            domain: self.domain.clone(),
            status: match self.exclusion {
                None => LogStatus::Pending,
                Some(_) => LogStatus::Ignored,
            },
            failure: self.exclusion.map(Exclusion::failure),
            message_id: None,
            last_event_at: 0,
            attempts: Vec::new(),
            feedback: Feedback::default(),
        }
    }
}

/// The counts analysis shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Counts {
    pub candidates: u64,
    pub to_deliver: u64,
    pub no_address: u64,
    pub invalid_syntax: u64,
    pub duplicate: u64,
    pub quarantine: u64,
    pub denylisted: u64,
}

impl Counts {
    pub fn ignored(&self) -> u64 {
        self.candidates.saturating_sub(self.to_deliver)
    }

    fn add(&mut self, exclusion: Option<Exclusion>) {
        self.candidates += 1;
        let n = match exclusion {
            None => &mut self.to_deliver,
            Some(Exclusion::NoAddress) => &mut self.no_address,
            Some(Exclusion::InvalidSyntax(_)) => &mut self.invalid_syntax,
            Some(Exclusion::Duplicate) => &mut self.duplicate,
            Some(Exclusion::Quarantine) => &mut self.quarantine,
            Some(Exclusion::Denylisted) => &mut self.denylisted,
        };
        *n += 1;
    }
}

/// Decides candidates one at a time, remembering the addresses seen.
#[derive(Debug)]
pub struct Analyzer {
    seen: HashSet<u64>,
    hasher: RandomState,
    counts: Counts,
    now: UnixMillis,
    cfg: QuarantineConfig,
}

impl Analyzer {
    /// Quarantine time rules are read at `now`.
    pub fn new(now: UnixMillis, cfg: &QuarantineConfig) -> Self {
        Self {
            seen: HashSet::new(),
            hasher: RandomState::new(),
            counts: Counts::default(),
            now,
            cfg: cfg.clone(),
        }
    }

    /// Decides one candidate; `lookup` gets the address's record key
    /// ([`quarantine::address_key`]) and is called only for a first, valid occurrence.
    pub fn decide<A>(
        &mut self,
        candidate: Candidate<A>,
        lookup: impl FnOnce(&str) -> Option<AddressState>,
    ) -> Decision<A> {
        let address = candidate.address.trim().to_string();
        let domain = cartero_address::routing_domain(&address);
        let exclusion = self.exclusion(&address, lookup);
        self.counts.add(exclusion);
        Decision {
            candidate,
            address,
            domain,
            exclusion,
        }
    }

    fn exclusion(
        &mut self,
        address: &str,
        lookup: impl FnOnce(&str) -> Option<AddressState>,
    ) -> Option<Exclusion> {
        if address.is_empty() {
            return Some(Exclusion::NoAddress);
        }
        let parsed = match Address::parse(address) {
            Ok(a) => a,
            Err(e) => return Some(Exclusion::InvalidSyntax(e)),
        };
        let hash = self
            .hasher
            .hash_one((parsed.local_part(), parsed.domain().as_str()));
        if !self.seen.insert(hash) {
            return Some(Exclusion::Duplicate);
        }
        let state = lookup(&quarantine::address_key(address))?;
        match quarantine::is_excluded(&state, self.now, &self.cfg) {
            Some(Reason::Denylisted) => Some(Exclusion::Denylisted),
            Some(_) => Some(Exclusion::Quarantine),
            None => None,
        }
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

/// Analysis as an iterator adapter: `analyze(candidates, lookup, now, cfg)` yields one
/// [`Decision`] per candidate, in order; [`Analysis::counts`] reads the counts so far.
pub struct Analysis<I, L> {
    inner: I,
    lookup: L,
    analyzer: Analyzer,
}

pub fn analyze<A, I, L>(
    candidates: I,
    lookup: L,
    now: UnixMillis,
    cfg: &QuarantineConfig,
) -> Analysis<I::IntoIter, L>
where
    I: IntoIterator<Item = Candidate<A>>,
    L: FnMut(&str) -> Option<AddressState>,
{
    Analysis {
        inner: candidates.into_iter(),
        lookup,
        analyzer: Analyzer::new(now, cfg),
    }
}

impl<I, L> Analysis<I, L> {
    pub fn counts(&self) -> &Counts {
        self.analyzer.counts()
    }
}

impl<A, I, L> Iterator for Analysis<I, L>
where
    I: Iterator<Item = Candidate<A>>,
    L: FnMut(&str) -> Option<AddressState>,
{
    type Item = Decision<A>;

    fn next(&mut self) -> Option<Decision<A>> {
        let c = self.inner.next()?;
        let lookup = &mut self.lookup;
        Some(self.analyzer.decide(c, |k| lookup(k)))
    }
}
