//! Personalized messages (SPEC §3.1): a delivery's From, subject, text and HTML templates are
//! compiled once into a [`MessageTemplate`], then rendered per recipient into a complete
//! RFC 5322 message for the MTA.
//!
//! Templates are written by operators and fed by imported data, so both are untrusted:
//!
//! * **Strict undefined**: a variable the recipient does not have is an error naming it and
//!   its line (`html line 3: undefined variable 'first_name'`), found by analysis
//!   ([`MessageTemplate::check`]) before anything is sent, never an empty hole in a sent message.
//! * **Escaping**: the HTML body escapes what it prints (`<script>` in an attribute arrives as
//!   text); the subject and the text body print values as they are.
//! * **Limits** ([`RenderLimits`]): fuel bounds the steps and the data of each field's render,
//!   the output limit bounds the rendered fields together, the template limit bounds each
//!   source. A hostile template ends in an error, never a hang or unbounded memory.
//! * **The message** cannot be broken from inside: a rendered subject with a line break is
//!   refused, headers are encoded and folded by `mail-builder`, bodies are transfer-encoded so
//!   that no line exceeds 998 bytes.
//!
//! The variables of a recipient are `email` (the address the message goes to), each attribute
//! by name, and `recipient`, a map of all of them for names that are not identifiers
//! (`{{ recipient["first name"] }}`). A JSON `null` prints as nothing.

mod engine;
mod error;
mod mime;
#[cfg(test)]
mod tests;

pub use error::{Field, RenderError, TemplateError, TemplateErrorKind};

use cartero_clock::SharedClock;
use engine::Engine;
use mime::{Rendered, Sender};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;

/// Bounds on what one template may cost (`[campaign.templates]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RenderLimits {
    /// Per field and recipient: roughly one unit per instruction executed and per 64 bytes of
    /// data built or printed (minijinja's fuel). Default 50,000: a 100 KiB static newsletter
    /// uses about 1,600, a loop over 100 items a few hundred.
    pub fuel: u64,
    /// The rendered subject, text and HTML together, in bytes. Default 1 MiB.
    pub max_output_bytes: usize,
    /// Each template's source, in bytes. Default 256 KiB.
    pub max_template_bytes: usize,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            fuel: 50_000,
            max_output_bytes: 1 << 20,
            max_template_bytes: 256 << 10,
        }
    }
}

/// A delivery's compiled content. Cloning is cheap (one `Arc`); it is `Send + Sync`, so every
/// sending task can render from the same one.
#[derive(Clone)]
pub struct MessageTemplate {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    sender: Sender,
    limits: RenderLimits,
    clock: SharedClock,
}

impl fmt::Debug for MessageTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageTemplate")
            .field("from", &self.inner.sender.address())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl MessageTemplate {
    /// Compiles the subject and the bodies (at least one of text and HTML) and parses the From
    /// value (`address` or `Name <address>`). Messages are dated by `clock`.
    ///
    /// Errors name the field (`from`, `subject`, `text`, `html`) and, for syntax errors, the line.
    pub fn compile(
        from: &str,
        subject: &str,
        text: Option<&str>,
        html: Option<&str>,
        limits: RenderLimits,
        clock: SharedClock,
    ) -> Result<Self, TemplateError> {
        let sender = Sender::parse(from)?;
        if text.is_none() && html.is_none() {
            return Err(TemplateError::new(
                Field::Text,
                None,
                TemplateErrorKind::NoBody,
                "a message needs a text body, an HTML body or both",
            ));
        }
        let fields: Vec<(Field, &str)> = [
            (Field::Subject, Some(subject)),
            (Field::Text, text),
            (Field::Html, html),
        ]
        .into_iter()
        .filter_map(|(field, source)| Some((field, source?)))
        .collect();
        let engine = Engine::compile(&fields, &limits)?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                sender,
                limits,
                clock,
            }),
        })
    }

    /// The envelope sender: the From address.
    pub fn sender(&self) -> &str {
        self.inner.sender.address()
    }

    /// The complete message for one recipient: From, To, Subject, Date, Message-ID,
    /// MIME-Version, then `extra_headers` as given (e.g. List-Unsubscribe), then the body:
    /// `multipart/alternative` (text, then HTML) or a single part, UTF-8. CRLF line endings.
    pub fn render(
        &self,
        email: &str,
        attributes: &Map<String, Value>,
        extra_headers: &[(String, String)],
    ) -> Result<Vec<u8>, RenderError> {
        mime::check_extra_headers(extra_headers)?;
        let content = self.render_fields(email, attributes)?;
        let now_ms = self.inner.clock.now_ms();
        Ok(mime::build(
            &self.inner.sender,
            email,
            &content,
            extra_headers,
            now_ms,
        ))
    }

    /// What [`render`](Self::render) would refuse for this recipient, without building the
    /// message: analysis reports template errors per recipient with it before anything is sent.
    pub fn check(&self, email: &str, attributes: &Map<String, Value>) -> Result<(), RenderError> {
        self.render_fields(email, attributes).map(|_| ())
    }

    fn render_fields(
        &self,
        email: &str,
        attributes: &Map<String, Value>,
    ) -> Result<Rendered, RenderError> {
        cartero_address::check_mailbox(email).map_err(|reason| RenderError::Recipient {
            address: email.to_string(),
            reason,
        })?;
        let vars = engine::variables(email, attributes)?;
        let engine = &self.inner.engine;
        let mut room = self.inner.limits.max_output_bytes;
        let subject = engine
            .render(Field::Subject, &vars, &mut room)?
            .unwrap_or_default();
        mime::check_subject(&subject)?;
        let mut body = |field| {
            engine
                .render(field, &vars, &mut room)?
                .map(|b| mime::normalize_body(field, b))
                .transpose()
        };
        let text = body(Field::Text)?;
        let html = body(Field::Html)?;
        Ok(Rendered {
            subject,
            text,
            html,
        })
    }
}
