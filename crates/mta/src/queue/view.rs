//! Read-only views of the queues for operators (`cartero queue`, the API).

use super::QRcpt;
use super::state::Scheduler;
use cartero_spool::MessageId;
use serde::Serialize;
use std::collections::BTreeMap;

/// One line per destination domain, like `mailq` summarised.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct DomainRow {
    pub domain: String,
    pub recipients: usize,
    /// Reception time (ms since epoch) of the oldest queued recipient.
    pub oldest: u64,
    /// Earliest next attempt among its scheduled recipients (ms), if any are waiting.
    pub next_attempt: Option<u64>,
    pub last_reply: Option<String>,
}

/// One line per ready queue.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct SiteRow {
    pub source: String,
    pub site: String,
    pub ready: usize,
    pub connections: u32,
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct QueueSummary {
    pub recipients: usize,
    pub domains: Vec<DomainRow>,
    pub sites: Vec<SiteRow>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct RcptView {
    pub index: u32,
    pub address: String,
    /// `scheduled`, `routing` or `ready`; recipients not listed are final.
    #[schema(value_type = String)]
    pub state: &'static str,
    pub attempts: u16,
    pub next_attempt: u64,
    pub last_reply: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub sender: String,
    pub received_at: u64,
    pub expires_at: u64,
    pub size: u64,
    /// As injected (request-wide merged with the recipient's).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub queued: Vec<RcptView>,
}

fn all(s: &Scheduler) -> impl Iterator<Item = (&'static str, &QRcpt)> {
    let scheduled = s.scheduled.values().map(|r| ("scheduled", r));
    let routing = s
        .domains
        .values()
        .flat_map(|d| d.awaiting.iter().map(|r| ("routing", r)));
    let ready = s
        .ready
        .values()
        .flat_map(|q| q.items.iter().map(|r| ("ready", r)));
    scheduled.chain(routing).chain(ready)
}

impl Scheduler {
    pub(super) fn summary(&self) -> QueueSummary {
        summary(self)
    }

    pub(super) fn inspect(&self, id: MessageId) -> Option<MessageView> {
        inspect(self, id)
    }
}

fn summary(s: &Scheduler) -> QueueSummary {
    let mut domains: BTreeMap<&str, DomainRow> = BTreeMap::new();
    let mut total = 0;
    for (state, r) in all(s) {
        total += 1;
        let row = domains.entry(&r.domain).or_insert_with(|| DomainRow {
            domain: r.domain.to_string(),
            recipients: 0,
            oldest: u64::MAX,
            next_attempt: None,
            last_reply: None,
        });
        row.recipients += 1;
        row.oldest = row.oldest.min(r.msg.env.received_at);
        if state == "scheduled" {
            row.next_attempt = Some(
                row.next_attempt
                    .map_or(r.next_attempt, |n| n.min(r.next_attempt)),
            );
        }
        if let Some(l) = &r.last {
            row.last_reply = Some(l.text.to_string());
        }
    }
    let mut sites: Vec<SiteRow> = s
        .ready
        .iter()
        .map(|(k, q)| SiteRow {
            source: k.source.to_string(),
            site: k.site.to_string(),
            ready: q.items.len(),
            connections: q.active,
            hosts: q
                .dest
                .hosts
                .iter()
                .map(|h| format!("{}:{}", h.name, h.port))
                .collect(),
        })
        .collect();
    sites.sort_by(|a, b| (&a.source, &a.site).cmp(&(&b.source, &b.site)));
    QueueSummary {
        recipients: total,
        domains: domains.into_values().collect(),
        sites,
    }
}

fn inspect(s: &Scheduler, id: MessageId) -> Option<MessageView> {
    let mut view: Option<MessageView> = None;
    for (state, r) in all(s).filter(|(_, r)| r.msg.id == id) {
        let v = view.get_or_insert_with(|| MessageView {
            id: id.to_string(),
            sender: r.msg.env.sender.clone(),
            received_at: r.msg.env.received_at,
            expires_at: r.msg.env.expires_at,
            size: r.msg.size,
            metadata: r.msg.env.metadata.clone(),
            queued: Vec::new(),
        });
        v.queued.push(RcptView {
            index: r.idx,
            address: r.address().to_string(),
            state,
            attempts: r.attempts,
            next_attempt: r.next_attempt,
            last_reply: r.last.as_ref().map(|l| l.text.to_string()),
        });
    }
    if let Some(v) = view.as_mut() {
        v.queued.sort_by_key(|r| r.index);
    }
    view
}
