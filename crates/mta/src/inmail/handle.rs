//! Turning what arrives at the bounce domains into events, with `cartero_bounce::report` reading
//! the message and the operator's inbound rules deciding before the classifier.

use super::{InMail, Local, TokenData};
use cartero_bounce::report::{ClassifiedRecipient, Outcome, ParsedReport, ReportKind};
use cartero_bounce::{FailureType, Reason, classify_report_with, parse_report};
use cartero_events::{Event, EventType};
use serde_json::{Map, Value, json};

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

impl InMail {
    /// Handles one message accepted for `local` recipients (all at bounce domains). Emits the
    /// events it warrants; never fails, so the SMTP reply cannot reveal anything about tokens.
    pub(crate) fn handle_message(&self, local: &[String], data: &[u8]) {
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
                    self.unsubscribe(t, "mailto");
                }
                Some(Local::Bounce(t)) => {
                    if let Some(token) = self.verify(t, "return path")
                        && let Some(r) = read()
                    {
                        self.report_events(&token, &r, "envelope");
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
                        self.report_events(&token, &r, "report");
                    }
                }
                None => tracing::debug!(%rcpt, "inMail: unknown mailbox"),
            }
        }
    }

    /// `list_unsubscribe` for a valid token; `false` (and no event) otherwise.
    pub(crate) fn unsubscribe(&self, token: &str, method: &str) -> bool {
        let Some(t) = self.verify(token, method) else {
            return false;
        };
        let mut meta = Map::new();
        meta.insert("method".into(), json!(method));
        let mut e = self.event(EventType::ListUnsubscribe, &t, meta);
        e.bounce_class = Some(cartero_bounce::BounceClass::UNSUBSCRIBE.0);
        self.events.emit(&e);
        metrics::counter!("cartero_inmail_events_total", "type" => "list_unsubscribe").increment(1);
        true
    }

    fn event(&self, kind: EventType, t: &TokenData, mut meta: Map<String, Value>) -> Event {
        let mut e = Event::new(kind, self.clock.as_ref());
        e.message_id = Some(format!("{:016x}", t.message_id));
        meta.insert("recipient_id".into(), json!(recipient_id(t)));
        e.metadata = meta;
        e
    }

    /// One event per report: a token names one recipient of one message (VERP), so the first
    /// recipient that failed or complained is the one. Delays and successes produce nothing.
    fn report_events(&self, token: &TokenData, r: &ParsedReport, token_source: &str) {
        let classified = classify_report_with(r, self.classifier.as_ref(), &self.qualifier);
        let Some(c) = classified
            .iter()
            .find(|c| matches!(c.outcome, Outcome::OutOfBand | Outcome::Complaint))
        else {
            tracing::info!(
                kind = kind_name(r.kind),
                "inMail: no failure in this report, no event"
            );
            return;
        };
        let mut meta = Map::new();
        meta.insert("report".into(), json!(kind_name(r.kind)));
        meta.insert("token_source".into(), json!(token_source));
        if let ReportKind::NonStandardBounce { family } = r.kind {
            meta.insert("report_family".into(), json!(family));
        }
        let (e, kind) = if c.outcome == Outcome::Complaint {
            (self.complaint(token, r, c, meta), "spam_complaint")
        } else {
            (self.out_of_band(token, r, c, meta), "out_of_band")
        };
        metrics::counter!("cartero_inmail_events_total", "type" => kind).increment(1);
        self.events.emit(&e);
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
        e.rcpt_to = c.report.address.clone();
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
        mut meta: Map<String, Value>,
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
        e.rcpt_to = arf.original_rcpt_to.or_else(|| c.report.address.clone());
        e.reason = Some(c.rule.clone());
        self.feed_sweep(
            t,
            arf.source_ip.as_deref(),
            e.rcpt_to.as_deref(),
            &mut e.metadata,
        );
        e
    }

    /// Counts the complaint in the sweep of (source, recipient domain). The source comes from
    /// the token (v2), else from the report's Source-IP when it is one of ours (v1 tokens). The
    /// event says which source it was charged to, or why it was not (`sweep` in the metadata).
    fn feed_sweep(
        &self,
        t: &TokenData,
        source_ip: Option<&str>,
        rcpt: Option<&str>,
        meta: &mut Map<String, Value>,
    ) {
        let by_tag = t.source.and_then(|tag| self.sources.by_tag.get(&tag));
        let by_ip = || {
            let ip: std::net::IpAddr = source_ip?.trim().parse().ok()?;
            self.sources.by_ip.get(&ip)
        };
        let source = by_tag.or_else(by_ip);
        // The same domain the queue keys the recipient by, so the complaint meets its sweep.
        let domain = rcpt
            .map(|r| crate::queue::domain_of(r.trim()))
            .filter(|d| !d.is_empty() && d.len() <= 255);
        let (Some(source), Some(domain)) = (source, domain) else {
            let why = if source.is_none() {
                "unknown_source"
            } else {
                "no_recipient_domain"
            };
            meta.insert("sweep".into(), json!(why));
            metrics::counter!("cartero_inmail_complaints_unswept_total").increment(1);
            tracing::info!(why, "inMail: complaint not counted in a sweep");
            return;
        };
        meta.insert("source".into(), json!(source.as_ref()));
        self.complaints.complaint(source, &domain);
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
