//! Turning what arrives at the bounce domains into events, with `cartero_bounce::report` reading
//! the message and the operator's inbound rules deciding before the classifier.

use super::seen::{Key, Kind};
use super::{InMail, Local, Named, Origin, TokenData};
use cartero_bounce::report::{ClassifiedRecipient, Outcome, ParsedReport, ReportKind};
use cartero_bounce::{FailureType, Reason, classify_report_with, parse_report};
use cartero_events::{Event, EventType};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// The id the injection API returned for this recipient (`<message id>.<index>`).
pub(crate) fn recipient_id(t: &TokenData) -> String {
    format!("{:016x}.{}", t.message_id, t.rcpt_index)
}

fn kind_name(k: ReportKind) -> &'static str {
    match k {
        ReportKind::Dsn => "dsn",
        ReportKind::NonStandardBounce { .. } => "bounce",
        ReportKind::Arf => "arf",
        ReportKind::AutoReply => "auto_reply",
        ReportKind::ChallengeResponse => "challenge_response",
        ReportKind::Unknown => "unknown",
    }
}

/// `smtp; 550 5.1.1 ...` → `550 5.1.1 ...`; `dns; mx.example` → `mx.example`.
fn strip_type(v: &str) -> &str {
    match v.split_once(';') {
        Some((t, rest)) if !t.contains(' ') => rest.trim(),
        _ => v.trim(),
    }
}

/// `550 5.1.1 ...` → 550.
fn reply_code(text: &str) -> Option<u16> {
    let t = text.trim_start();
    let code: u16 = t.get(..3)?.parse().ok()?;
    let next_is_digit = t
        .get(3..)
        .unwrap_or("")
        .starts_with(|c: char| c.is_ascii_digit());
    ((200..600).contains(&code) && !next_is_digit).then_some(code)
}

/// What decided the type and reason of an `out_of_band` event.
struct Decision {
    r#type: FailureType,
    reason: Reason,
    /// The inbound rule's name, or the classifier's rule.
    rule: String,
    by_inbound_rule: bool,
}

/// What became of an unsubscribe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsubscribed {
    /// The event was emitted, now or for an earlier request with the same token.
    Done,
    /// The token did not verify.
    Invalid,
    /// The request could not be recorded, so no event was emitted; asking again may work.
    Failed,
}

/// Why a first report's event was not emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotStored {
    /// The outbox could not store it: the sender should retry.
    Outbox,
    /// No outbox, and `inmail-seen` could not record the report.
    Seen,
}

/// What a report's token proves about the recipient the report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Proven {
    /// The report names the token's recipient.
    Address(String),
    /// The report names an address at the token recipient's domain (a redacted complaint).
    Domain(String),
    /// Nothing: the report names no address, or the token (v1, v2) cannot tell.
    Nothing,
}

impl Proven {
    fn rank(&self) -> u8 {
        match self {
            Proven::Address(_) => 2,
            Proven::Domain(_) => 1,
            Proven::Nothing => 0,
        }
    }

    fn address(&self) -> Option<String> {
        match self {
            Proven::Address(a) => Some(a.clone()),
            _ => None,
        }
    }

    /// The domain as the queue keys it (lower-case, no trailing dot).
    fn domain(&self) -> Option<String> {
        let d = match self {
            Proven::Address(a) => crate::queue::domain_of(a),
            Proven::Domain(d) => d.clone(),
            Proven::Nothing => return None,
        };
        let d = d.trim_end_matches('.');
        (!d.is_empty() && d.len() <= 255).then(|| d.to_string())
    }
}

impl InMail {
    /// Handles one message accepted for `local` recipients (all at bounce domains) from
    /// `origin`. Emits the events it warrants. Returns `false` only when an event could not be
    /// stored in the outbox (then the sender is asked to retry; its replay is not ignored):
    /// otherwise the reply is the same whatever the tokens, so it reveals nothing about them.
    pub(crate) async fn handle_message(
        &self,
        local: &[String],
        data: &[u8],
        origin: &Origin<'_>,
    ) -> bool {
        let mut stored = true;
        let mut report: Option<Option<ParsedReport>> = None;
        let mut read = || {
            report
                .get_or_insert_with(|| match parse_report(data) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::info!(error = %e, "inMail: unreadable message, no event");
                        None
                    }
                })
                .clone()
        };
        for rcpt in local {
            match self.local_part(rcpt) {
                Some(Local::Unsubscribe(t)) => {
                    stored &= self.unsubscribe(t, "mailto").await != Unsubscribed::Failed;
                }
                Some(Local::Bounce(t)) => {
                    if let Some(token) = self.verify(t, "return path")
                        && let Some(r) = read()
                    {
                        stored &= self
                            .report_events(&token, &r, "envelope", origin, data)
                            .await;
                    }
                }
                Some(Local::Mailbox) => {
                    let Some(r) = read() else { continue };
                    let Some(t) = r.token.as_deref() else {
                        metrics::counter!("cartero_inmail_rejected_total").increment(1);
                        tracing::info!(
                            kind = kind_name(r.kind),
                            "inMail: report without a token, no event"
                        );
                        continue;
                    };
                    if let Some(token) = self.verify(t, "report") {
                        stored &= self.report_events(&token, &r, "report", origin, data).await;
                    }
                }
                None => tracing::debug!(%rcpt, "inMail: unknown mailbox"),
            }
        }
        stored
    }

    /// `list_unsubscribe` for a valid token, once per recipient.
    pub(crate) async fn unsubscribe(&self, token: &str, method: &str) -> Unsubscribed {
        let Some(t) = self.verify(token, method) else {
            return Unsubscribed::Invalid;
        };
        let Some(key) = self.claim(&t, Kind::Unsubscribe) else {
            return Unsubscribed::Done;
        };
        let mut meta = Map::new();
        meta.insert("method".into(), json!(method));
        let mut e = self.event(EventType::ListUnsubscribe, &t, meta);
        e.bounce_class = Some(cartero_bounce::BounceClass::UNSUBSCRIBE.0);
        if self.publish(key, e).await.is_err() {
            return Unsubscribed::Failed;
        }
        metrics::counter!("cartero_inmail_events_total", "type" => "list_unsubscribe").increment(1);
        Unsubscribed::Done
    }

    /// Claims (the token's recipient, `kind`) for a first report within the replay horizon;
    /// `None` for a replay, which gets no event.
    fn claim(&self, t: &TokenData, kind: Kind) -> Option<Key> {
        let key = Key {
            kind,
            message_id: t.message_id,
            rcpt_index: t.rcpt_index,
        };
        if self.seen.claim(key, self.clock.now_ms()) {
            return Some(key);
        }
        metrics::counter!("cartero_inmail_duplicates_total", "kind" => kind_label(kind))
            .increment(1);
        tracing::info!(
            recipient_id = %recipient_id(t),
            kind = kind_label(kind),
            "inMail: already reported for this recipient, no event"
        );
        None
    }

    /// Stores and emits the event of a claimed first report. With an outbox the event is made
    /// durable there first and the report recorded in `inmail-seen` after, so a crash in between
    /// repeats the event on a replay rather than losing it; without one the record is synced
    /// before the event is emitted, and a crash can lose a record only of an event that was not
    /// emitted. Errors: nothing was emitted, and the claim is given back.
    async fn publish(&self, key: Key, e: Event) -> Result<(), NotStored> {
        if self.outbox.enabled() {
            if let Err(err) = self.outbox.persist(std::slice::from_ref(&e)).await {
                self.seen.release(key);
                metrics::counter!("cartero_inmail_record_errors_total").increment(1);
                tracing::error!(error = %err, "inMail: cannot store the event in the outbox, no event");
                return Err(NotStored::Outbox);
            }
            if let Err(err) = self.seen.commit(key, self.clock.now_ms()) {
                metrics::counter!("cartero_inmail_record_errors_total").increment(1);
                tracing::error!(error = %err,
                    "inMail: cannot record the report; the event is stored, a replay repeats it");
            }
        } else if let Err(err) = self.seen.commit(key, self.clock.now_ms()) {
            metrics::counter!("cartero_inmail_record_errors_total").increment(1);
            tracing::error!(error = %err, "inMail: cannot record the report, no event");
            return Err(NotStored::Seen);
        }
        self.events.emit(&e);
        Ok(())
    }

    fn event(&self, kind: EventType, t: &TokenData, mut meta: Map<String, Value>) -> Event {
        let mut e = Event::new(kind, self.clock.as_ref());
        e.message_id = Some(format!("{:016x}", t.message_id));
        meta.insert("recipient_id".into(), json!(recipient_id(t)));
        e.metadata = meta;
        e
    }

    /// What the token proves about failed recipient `c` of report `r`; `None` when the report
    /// names another address than the token's recipient (at another domain, for complaints,
    /// whose local part providers may redact; never for auto-replies).
    fn proof(&self, t: &TokenData, r: &ParsedReport, c: &ClassifiedRecipient) -> Option<Proven> {
        let arf = r.arf.as_ref().and_then(|a| a.original_rcpt_to.as_deref());
        let named: Vec<&str> = [
            arf,
            c.report.address.as_deref(),
            c.report.final_recipient.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
        let verdicts: Vec<(&str, Named)> =
            named.iter().map(|a| (*a, self.key.named(t, a))).collect();
        if let Some((a, _)) = verdicts.iter().find(|(_, v)| *v == Named::Recipient) {
            return Some(Proven::Address(a.to_string()));
        }
        if verdicts.is_empty() || verdicts.iter().any(|(_, v)| *v == Named::Unknown) {
            return Some(Proven::Nothing);
        }
        let redacted = verdicts.iter().find(|(_, v)| *v == Named::SameDomain);
        match (redacted, r.kind) {
            (Some((a, _)), _) if c.outcome == Outcome::Complaint => {
                Some(Proven::Domain(crate::queue::domain_of(a)))
            }
            // An auto-reply's address is whoever answered (an alias, an assistant), and its class
            // (60, 100) fails nobody: another address there is no sign of forgery.
            (_, ReportKind::AutoReply | ReportKind::ChallengeResponse) => Some(Proven::Nothing),
            _ => None,
        }
    }

    /// One event per report: a token names one recipient of one message (VERP), so the failed
    /// or complaining recipient the token proves best is the one. Delays and successes produce
    /// nothing; nor does a report naming only other addresses, or a replay.
    /// Returns `false` when the event could not be stored in the outbox.
    async fn report_events(
        &self,
        token: &TokenData,
        r: &ParsedReport,
        token_source: &str,
        origin: &Origin<'_>,
        data: &[u8],
    ) -> bool {
        let classified = classify_report_with(r, self.classifier.as_ref(), &self.qualifier);
        let failed: Vec<&ClassifiedRecipient> = classified
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::OutOfBand | Outcome::Complaint))
            .collect();
        if failed.is_empty() {
            tracing::info!(
                kind = kind_name(r.kind),
                "inMail: no failure in this report, no event"
            );
            return true;
        }
        // The first of those the token proves best.
        let mut best: Option<(&ClassifiedRecipient, Proven)> = None;
        for c in failed {
            if let Some(p) = self.proof(token, r, c)
                && best.as_ref().is_none_or(|(_, b)| p.rank() > b.rank())
            {
                best = Some((c, p));
            }
        }
        let Some((c, proven)) = best else {
            metrics::counter!("cartero_inmail_suspicious_total", "why" => "other_address")
                .increment(1);
            tracing::info!(
                recipient_id = %recipient_id(token),
                kind = kind_name(r.kind),
                "inMail: report names another address than its token's recipient, no event"
            );
            return true;
        };
        let kind = match (c.outcome, r.kind) {
            (Outcome::Complaint, _) => Kind::Complaint,
            (_, ReportKind::AutoReply | ReportKind::ChallengeResponse) => Kind::AutoReply,
            _ => Kind::Bounce,
        };
        let Some(key) = self.claim(token, kind) else {
            return true;
        };
        let mut meta = Map::new();
        meta.insert("report".into(), json!(kind_name(r.kind)));
        meta.insert("token_source".into(), json!(token_source));
        if let ReportKind::NonStandardBounce { family } = r.kind {
            meta.insert("report_family".into(), json!(family));
        }
        let (e, kind) = if kind == Kind::Complaint {
            let e = self.complaint(token, r, c, &proven, meta, (origin, data));
            (e, "spam_complaint")
        } else {
            (self.out_of_band(token, r, c, &proven, meta), "out_of_band")
        };
        match self.publish(key, e).await {
            Ok(()) => {
                metrics::counter!("cartero_inmail_events_total", "type" => kind).increment(1);
                true
            }
            Err(NotStored::Outbox) => false,
            // As before the outbox: the report is acknowledged without an event.
            Err(NotStored::Seen) => true,
        }
    }

    /// The operator's inbound rules first (over diagnostic, status, subject), then the classifier.
    fn decide(&self, r: &ParsedReport, c: &ClassifiedRecipient) -> Decision {
        let texts = [
            c.report.diagnostic.as_deref().unwrap_or(""),
            c.report.status.as_deref().unwrap_or(""),
            r.subject.as_deref().unwrap_or(""),
        ];
        if let Some((rule, _)) = self
            .rules
            .iter()
            .find(|(_, re)| texts.iter().any(|t| !t.is_empty() && re.is_match(t)))
        {
            return Decision {
                r#type: rule.r#type,
                reason: rule.reason,
                rule: rule.name.clone(),
                by_inbound_rule: true,
            };
        }
        let (r#type, reason) = c
            .qualification
            .map_or((FailureType::Soft, Reason::NotDefined), |q| {
                (q.r#type, q.reason)
            });
        Decision {
            r#type,
            reason,
            rule: c.rule.clone(),
            by_inbound_rule: false,
        }
    }

    fn out_of_band(
        &self,
        t: &TokenData,
        r: &ParsedReport,
        c: &ClassifiedRecipient,
        proven: &Proven,
        mut meta: Map<String, Value>,
    ) -> Event {
        let d = self.decide(r, c);
        meta.insert("type".into(), json!(d.r#type));
        meta.insert("failure_reason".into(), json!(d.reason));
        meta.insert("failure_reason_code".into(), json!(d.reason.value()));
        let by = if d.by_inbound_rule {
            "inbound_rule"
        } else {
            "classifier"
        };
        meta.insert("decided_by".into(), json!(by));
        if let Some(a) = &c.report.action {
            meta.insert("action".into(), json!(a));
        }
        if let Some(m) = &r.original_message_id {
            meta.insert("original_message_id".into(), json!(m));
        }
        let mut e = self.event(EventType::OutOfBand, t, meta);
        e.rcpt_to = proven.address();
        e.bounce_class = c.class.map(|b| b.0);
        let diag = c.report.diagnostic.as_deref().map(strip_type);
        e.raw_reason = diag.map(str::to_string).or_else(|| c.report.status.clone());
        e.error_code = diag.and_then(reply_code);
        e.enhanced_code = c.report.status.clone();
        e.reason = Some(d.rule);
        e.mx_host = c
            .report
            .remote_mta
            .as_deref()
            .map(|m| strip_type(m).to_string());
        e
    }

    fn complaint(
        &self,
        t: &TokenData,
        r: &ParsedReport,
        c: &ClassifiedRecipient,
        proven: &Proven,
        mut meta: Map<String, Value>,
        (origin, data): (&Origin<'_>, &[u8]),
    ) -> Event {
        let arf = r.arf.clone().unwrap_or_default();
        if let Some(q) = c.qualification {
            meta.insert("type".into(), json!(q.r#type));
            meta.insert("failure_reason".into(), json!(q.reason));
            meta.insert("failure_reason_code".into(), json!(q.reason.value()));
        }
        if let Some(f) = &arf.feedback_type {
            meta.insert("feedback_type".into(), json!(f));
        }
        if let Some(ip) = &arf.source_ip {
            meta.insert("source_ip".into(), json!(ip));
        }
        if let Some(ua) = &arf.user_agent {
            meta.insert("user_agent".into(), json!(ua));
        }
        let mut e = self.event(EventType::SpamComplaint, t, meta);
        e.rcpt_to = proven.address();
        e.reason = Some(c.rule.clone());
        match self.sweep_charge(t, proven, origin, data) {
            Ok((source, domain, fbl)) => {
                e.metadata.insert("source".into(), json!(source.as_ref()));
                e.metadata.insert("fbl_source".into(), json!(fbl));
                self.complaints.complaint(&source, &domain);
            }
            Err(why) => {
                e.metadata.insert("sweep".into(), json!(why));
                metrics::counter!("cartero_inmail_complaints_unswept_total", "why" => why)
                    .increment(1);
                tracing::info!(why, "inMail: complaint not counted in a sweep");
            }
        }
        e
    }

    /// The (egress source, recipient domain) a complaint is charged to in the complaint sweep,
    /// and the feedback-loop source it is charged on, or why it is not charged. Everything comes
    /// from the token (the source it names, the domain it proves) except who reported it; the
    /// rate cap is taken last, so only a charge that happens uses it.
    fn sweep_charge(
        &self,
        t: &TokenData,
        proven: &Proven,
        origin: &Origin<'_>,
        data: &[u8],
    ) -> Result<(Arc<str>, String, String), &'static str> {
        const DAY_MS: u64 = 86_400_000;
        let now = self.clock.now_ms();
        if t.recipient.is_none() {
            return Err("unproven_recipient");
        }
        if t.age_days(now).saturating_mul(DAY_MS) > self.horizon_ms {
            return Err("token_too_old");
        }
        let source = t
            .source
            .and_then(|tag| self.sources.by_tag.get(&tag))
            .ok_or("unknown_source")?;
        let domain = proven.domain().ok_or("no_recipient_domain")?;
        let fbl = self.fbl.matching(origin, data).ok_or("not_fbl_source")?;
        if !self.fbl.take(fbl, now) {
            return Err("rate_limited");
        }
        Ok((source.clone(), domain, self.fbl.name(fbl).to_string()))
    }
}

fn kind_label(k: Kind) -> &'static str {
    match k {
        Kind::Bounce => "bounce",
        Kind::AutoReply => "auto_reply",
        Kind::Complaint => "spam_complaint",
        Kind::Unsubscribe => "list_unsubscribe",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_and_type_prefixes_are_read() {
        assert_eq!(reply_code("550 5.1.1 no such user"), Some(550));
        assert_eq!(reply_code("550-5.1.1 no"), Some(550));
        assert_eq!(reply_code("5501 no"), None);
        assert_eq!(reply_code("user unknown"), None);
        assert_eq!(reply_code(""), None);
        assert_eq!(reply_code("é"), None);
        assert_eq!(strip_type("smtp; 550 5.1.1 x; y"), "550 5.1.1 x; y");
        assert_eq!(strip_type("dns; mx.example"), "mx.example");
        assert_eq!(strip_type("550 a; b"), "550 a; b");
    }
}
