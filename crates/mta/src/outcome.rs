//! The one delivery-outcome type. Every attempt — SMTP reply, connection failure, DNS failure,
//! operator action, expiry — ends as an [`Outcome`], and only `queue::settle` turns outcomes into
//! requeues, spool updates, events and metrics.

use cartero_bounce::{BounceClass, Classification, Classifier, FailureInput};
use cartero_smtp::Reply;

/// Where the outcome came from, for events (`mx_host`, `sending_ip`) and logs.
#[derive(Debug, Clone, Default)]
pub struct AttemptContext {
    pub mx_host: Option<String>,
    pub sending_ip: Option<String>,
    pub tls: Option<bool>,
    /// The queue the recipient was admitted to; `None` when it never reached one (routing
    /// failures, expiry while scheduled). Outcomes with a lane are fed to shaping.
    pub lane: Option<Lane>,
    /// The recipient waited for a connection that could not be made. Shaping already observed
    /// the connection, so its reply is not fed to the response rules again per recipient.
    pub connection_failed: bool,
}

/// A ready queue as shaping knows it: (source, site) and the site's provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lane {
    pub key: cartero_shaping::QueueKey,
    pub provider: Option<std::sync::Arc<str>>,
}

impl AttemptContext {
    /// A context that only names the queue (outcomes decided without a connection).
    pub fn on_lane(lane: Lane) -> Self {
        Self {
            lane: Some(lane),
            ..Self::default()
        }
    }
}

/// A failure: the reply when there was one, else a description of the local failure.
#[derive(Debug, Clone)]
pub struct Failure {
    pub reply: Option<Reply>,
    /// Exact text for `raw_reason`: the reply on one line, or the local error.
    pub text: String,
    pub class: BounceClass,
    /// Rule that classified it.
    pub rule: String,
    /// The reply refused the sender (MAIL FROM), not the recipient: shaping reads a transient
    /// one as the site pushing back.
    pub session: bool,
}

impl Failure {
    /// Classifies a remote reply; `host` (the MX host) lets provider rules apply.
    pub fn from_reply(reply: Reply, classifier: &dyn Classifier, host: Option<&str>) -> Self {
        let enhanced = reply.enhanced.map(|e| (e.class, e.subject, e.detail));
        let text = reply.to_string();
        let Classification { class, rule, .. } = classifier.classify(&FailureInput {
            code: reply.code,
            enhanced,
            text: &reply.text,
            host,
        });
        Self {
            reply: Some(reply),
            text,
            class,
            rule,
            session: false,
        }
    }

    /// What shaping and response rules match: the remote reply on one line ("421 4.7.0 …") when
    /// there was one — `text` may say in which phase it came ("banner rejected: 421 …") — else
    /// the local error.
    pub fn reply_line(&self) -> std::borrow::Cow<'_, str> {
        match &self.reply {
            Some(r) => r.to_string().into(),
            None => self.text.as_str().into(),
        }
    }

    /// The reply refused the session or the sender rather than the recipient: a reply to MAIL
    /// FROM, or a 421 (the server closing the channel), whatever its words.
    pub fn refuses_session(&self) -> bool {
        self.session || self.reply.as_ref().is_some_and(|r| r.code == 421)
    }

    /// A failure with no remote reply (connection refused, timeout, DNS), with a class chosen by the
    /// caller, who knows what failed.
    pub fn local(text: impl Into<String>, class: BounceClass, rule: &str) -> Self {
        Self {
            reply: None,
            text: text.into(),
            class,
            rule: rule.to_string(),
            session: false,
        }
    }
}

/// The result of one attempt for one recipient.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// 2xx after the data: the receiving server took responsibility.
    Delivered { reply: Reply },
    /// Try again later (4xx, connection failure, timeout, DNS SERVFAIL).
    Transient(Failure),
    /// Never try again (5xx, Null MX, NXDOMAIN, operator drain).
    Permanent(Failure),
    /// The validity ended; carries the last transient failure.
    Expired(Failure),
}

impl Outcome {
    /// Builds the outcome of a remote reply by its severity.
    pub fn from_reply(reply: Reply, classifier: &dyn Classifier, host: Option<&str>) -> Self {
        match reply.severity() {
            cartero_smtp::Severity::Positive => Outcome::Delivered { reply },
            cartero_smtp::Severity::Transient => {
                Outcome::Transient(Failure::from_reply(reply, classifier, host))
            }
            cartero_smtp::Severity::Permanent => {
                Outcome::Permanent(Failure::from_reply(reply, classifier, host))
            }
        }
    }
}
