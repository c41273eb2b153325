//! Errors of compiling and rendering a message template, worded for the operator who wrote it:
//! each names the field and, when known, the line (`html line 3: undefined variable 'first_name'`).

use std::fmt;

/// The part of a delivery's content an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    From,
    Subject,
    Text,
    Html,
}

impl Field {
    /// The name operators see: `from`, `subject`, `text`, `html`.
    pub fn name(self) -> &'static str {
        match self {
            Field::From => "from",
            Field::Subject => "subject",
            Field::Text => "text",
            Field::Html => "html",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What went wrong, for callers that count or group errors (analysis groups recipients by it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateErrorKind {
    /// The template does not parse.
    Syntax,
    /// The template source is longer than `max_template_bytes`.
    TemplateTooLarge,
    /// The From value is not `address` or `Name <address>`.
    InvalidFrom,
    /// Neither a text nor an HTML body was given.
    NoBody,
    /// A variable (or an attribute of one) the template uses is not defined for this recipient.
    /// Holds the expression as written, e.g. `first_name` or `user.city`.
    Undefined(String),
    /// The render took more steps or built more data than its fuel allows.
    OutOfFuel,
    /// The rendered fields together exceed `max_output_bytes`.
    OutputTooLarge,
    /// The rendered subject holds a CR or LF, which would end the header field.
    LineBreakInSubject,
    /// A rendered body holds a NUL character, which no transfer encoding of text may carry.
    NulInBody,
    /// Any other error the template raised while rendering (a bad operation, an unknown filter...).
    Runtime,
}

/// A template problem, at compile time or for one recipient at render time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub field: Field,
    /// 1-based line in the field's template, when the engine knows it.
    pub line: Option<usize>,
    pub kind: TemplateErrorKind,
    pub message: String,
}

impl TemplateError {
    pub(crate) fn new(
        field: Field,
        line: Option<usize>,
        kind: TemplateErrorKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field,
            line,
            kind,
            message: message.into(),
        }
    }
}

/// `html line 3: ...`, or `html: ...` when the line is unknown.
impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{} line {line}: {}", self.field, self.message),
            None => write!(f, "{}: {}", self.field, self.message),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Why one recipient's message could not be rendered. Nothing here is a reason to stop the
/// delivery: the recipient's row fails with this text and the others go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("recipient address {address:?}: {reason}")]
    Recipient {
        address: String,
        reason: cartero_address::AddressError,
    },
    #[error("attribute {name:?}: {reason}")]
    Attribute { name: String, reason: String },
    #[error("header {name:?}: {reason}")]
    Header { name: String, reason: String },
}
