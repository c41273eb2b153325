//! Turning what arrives at the bounce domains into events.

use super::report::{Kind, ParsedReport, RecipientReport, parse_report};
use super::{InMail, Local, TokenData};
use cartero_bounce::qualify::default_qualification;
use cartero_bounce::{BounceClass, FailureInput, FailureType, QualifyContext, Reason};
use cartero_events::{Event, EventType};
use serde_json::{Map, Value, json};

/// The id the injection API returned for this recipient (`<message id>.<index>`).
pub(crate) fn recipient_id(t: &TokenData) -> String {
    format!("{:016x}.{}", t.message_id, t.rcpt_index)
}

/// How an event about a recipient was decided.
struct Verdict {
    class: BounceClass,
    r#type: FailureType,
    reason: Reason,
    /// Inbound rule name, or the classifier rule.
    rule: String,
    by_inbound_rule: bool,
}

/// `550 5.1.1 ...` → 550.
fn reply_code(text: &str) -> u16 {
    let t = text.trim_start();
    match t.get(..3).map(|c| c.parse::<u16>()) {
        Some(Ok(c)) if (200..600).contains(&c) && !t[3..].starts_with(|c: char| c.is_ascii_digit()) => c,
        _ => 0,
    }
}

/// `5.1.1` → (5, 1, 1).
fn enhanced(status: &str) -> Option<(u8, u16, u16)> {
    let mut it = status.trim().splitn(3, '.');
    let class = it.next()?.parse().ok()?;
    let subject = it.next()?.parse().ok()?;
    let detail = it.next()?.parse().ok()?;
    Some((class, subject, detail))
}

impl InMail {
    /// Handles one message accepted for `local` recipients (all at bounce domains). Emits the
    /// events it warrants; never fails, so the SMTP reply cannot reveal anything about tokens.
    pub(crate) fn handle_message(&self, local: &[String], data: &[u8]) {
        let mut report: Option<ParsedReport> = None;
        for rcpt in local {
            match self.local_part(rcpt) {
                Some(Local::Unsubscribe(t)) => {
                    self.unsubscribe(t, "mailto");
                }
                Some(Local::Bounce(t)) => {
                    let Some(token) = self.verify(t, "return path") else {
                        continue;
                    };
                    let r = report.get_or_insert_with(|| parse_report(data));
                    self.report_events(&token, r, "envelope");
                }
                Some(Local::Mailbox) => {
                    let r = report.get_or_insert_with(|| parse_report(data));
                    let Some(t) = r.token.clone() else {
                        metrics::counter!("cartero_inmail_rejected_total").increment(1);
                        tracing::info!(kind = r.kind.as_str(), "inMail: report without a token, no event");
                        continue;
                    };
                    if let Some(token) = self.verify(&t, "report") {
                        self.report_events(&token, r, "report");
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
        e.bounce_class = Some(BounceClass::UNSUBSCRIBE.0);
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

    fn report_events(&self, token: &TokenData, r: &ParsedReport, token_source: &str) {
        let mut meta = Map::new();
        meta.insert("report".into(), json!(r.kind.as_str()));
        meta.insert("token_source".into(), json!(token_source));
        let event = match r.kind {
            Kind::Arf => self.complaint(token, r, meta),
            Kind::AutoReply => {
                let verdict = self.fixed(BounceClass::AUTO_REPLY, "auto-reply");
                Some(self.out_of_band(token, &RecipientReport::default(), verdict, meta))
            }
            Kind::Dsn | Kind::NonStandardBounce => {
                // Delays, relays and successes are reported too; only failures are bounces.
                let failed = r
                    .recipients
                    .iter()
                    .find(|rc| rc.action.as_deref().is_none_or(|a| a == "failed"));
                match (failed, r.recipients.is_empty()) {
                    (Some(rc), _) => {
                        let v = self.decide(rc, r.subject.as_deref());
                        Some(self.out_of_band(token, rc, v, meta))
                    }
                    (None, true) => {
                        let rc = RecipientReport {
                            diagnostic: r.subject.clone(),
                            ..RecipientReport::default()
                        };
                        let v = self.decide(&rc, r.subject.as_deref());
                        Some(self.out_of_band(token, &rc, v, meta))
                    }
                    (None, false) => None,
                }
            }
            Kind::Unknown => None,
        };
        match event {
            Some(e) => {
                let kind = if e.r#type == EventType::SpamComplaint { "spam_complaint" } else { "out_of_band" };
                metrics::counter!("cartero_inmail_events_total", "type" => kind).increment(1);
                self.events.emit(&e);
            }
            None => tracing::info!(kind = r.kind.as_str(), "inMail: nothing to report in this message"),
        }
    }

    fn fixed(&self, class: BounceClass, rule: &str) -> Verdict {
        let q = default_qualification(class, QualifyContext::default());
        Verdict {
            class,
            r#type: q.r#type,
            reason: q.reason,
            rule: rule.into(),
            by_inbound_rule: false,
        }
    }

    /// The operator's inbound rules first (over diagnostic, status, subject), then the classifier.
    fn decide(&self, rc: &RecipientReport, subject: Option<&str>) -> Verdict {
        let diag = rc.diagnostic.as_deref().unwrap_or("");
        let status = rc.status.as_deref().unwrap_or("");
        let input = FailureInput {
            code: reply_code(diag),
            enhanced: enhanced(status),
            text: diag,
            host: rc.remote_mta.as_deref(),
        };
        let c = self.classifier.classify(&input);
        let texts = [diag, status, subject.unwrap_or("")];
        if let Some((rule, _)) = self
            .rules
            .iter()
            .find(|(_, re)| texts.iter().any(|t| !t.is_empty() && re.is_match(t)))
        {
            return Verdict {
                class: c.class,
                r#type: rule.r#type,
                reason: rule.reason,
                rule: rule.name.clone(),
                by_inbound_rule: true,
            };
        }
        let mut v = self.fixed(c.class, &c.rule);
        v.rule = c.rule;
        v
    }

    fn out_of_band(
        &self,
        t: &TokenData,
        rc: &RecipientReport,
        v: Verdict,
        mut meta: Map<String, Value>,
    ) -> Event {
        meta.insert("type".into(), json!(v.r#type));
        meta.insert("failure_reason".into(), json!(v.reason));
        meta.insert("failure_reason_code".into(), json!(v.reason.value()));
        meta.insert(
            "decided_by".into(),
            json!(if v.by_inbound_rule { "inbound_rule" } else { "classifier" }),
        );
        if let Some(a) = &rc.action {
            meta.insert("action".into(), json!(a));
        }
        let mut e = self.event(EventType::OutOfBand, t, meta);
        e.rcpt_to = (!rc.address.is_empty()).then(|| rc.address.clone());
        e.bounce_class = Some(v.class.0);
        e.raw_reason = rc.diagnostic.clone().or_else(|| rc.status.clone());
        let code = reply_code(rc.diagnostic.as_deref().unwrap_or(""));
        e.error_code = (code != 0).then_some(code);
        e.enhanced_code = rc.status.clone();
        e.reason = Some(v.rule);
        e.mx_host = rc.remote_mta.clone();
        e
    }

    fn complaint(&self, t: &TokenData, r: &ParsedReport, mut meta: Map<String, Value>) -> Option<Event> {
        let arf = r.arf.clone().unwrap_or_default();
        let q = default_qualification(
            BounceClass::UNDETERMINED,
            QualifyContext {
                spam_complaint: true,
                ..QualifyContext::default()
            },
        );
        meta.insert("type".into(), json!(q.r#type));
        meta.insert("failure_reason".into(), json!(q.reason));
        meta.insert("failure_reason_code".into(), json!(q.reason.value()));
        if let Some(f) = &arf.feedback_type {
            meta.insert("feedback_type".into(), json!(f));
        }
        if let Some(ip) = &arf.source_ip {
            meta.insert("source_ip".into(), json!(ip));
        }
        let mut e = self.event(EventType::SpamComplaint, t, meta);
        e.rcpt_to = arf.original_rcpt_to;
        e.reason = arf.feedback_type;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_codes_and_enhanced_codes_are_read() {
        assert_eq!(reply_code("550 5.1.1 no such user"), 550);
        assert_eq!(reply_code("550-5.1.1 no"), 550);
        assert_eq!(reply_code("5501 no"), 0);
        assert_eq!(reply_code("user unknown"), 0);
        assert_eq!(reply_code(""), 0);
        assert_eq!(reply_code("é"), 0);
        assert_eq!(enhanced("5.1.1"), Some((5, 1, 1)));
        assert_eq!(enhanced("5.7"), None);
        assert_eq!(enhanced("x.1.1"), None);
    }
}
