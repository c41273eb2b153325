//! The template side: one minijinja environment per delivery holding its compiled fields, the
//! recipient's variables as template values, and one field's render within the limits.

use super::RenderLimits;
use super::error::{Field, RenderError, TemplateError, TemplateErrorKind};
use minijinja::value::{Enumerator, Object, ObjectExt, ObjectRepr, Value};
use minijinja::{AutoEscape, Environment, ErrorKind, Output, State, UndefinedBehavior};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

/// Deeper attribute documents are refused: no personalization needs them, and the conversion
/// recurses once per level.
pub(crate) const MAX_ATTRIBUTE_DEPTH: usize = 32;

/// minijinja's own cap is 500 levels, a macro call costing about 10. Messages need far less:
/// 100 still allows a few nested macros and loops, and leaves most of a 2 MiB thread stack
/// (tokio's default, on which a test runs a runaway recursive macro) to the caller.
const RECURSION_LIMIT: usize = 100;

/// The whole recipient, as a map, for attributes whose names are not identifiers
/// (`{{ recipient["first name"] }}`).
pub(crate) const RECIPIENT_VARIABLE: &str = "recipient";

/// The compiled fields of one message template.
pub(crate) struct Engine {
    env: Environment<'static>,
    fuel: u64,
    max_output_bytes: usize,
}

impl Engine {
    /// Compiles each given field; `text`/`html` may be absent (the caller checks one is there).
    pub(crate) fn compile(
        fields: &[(Field, &str)],
        limits: &RenderLimits,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(limits.fuel));
        // Debug mode records where an undefined value came from, so the error can name the
        // variable; its cost is paid only when an error is raised.
        env.set_debug(true);
        env.set_recursion_limit(RECURSION_LIMIT);
        env.set_auto_escape_callback(|name| {
            if name == Field::Html.name() {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.set_formatter(format_value);
        // It prints the engine's state, nothing a recipient should receive.
        env.remove_global("debug");
        for &(field, source) in fields {
            if source.len() > limits.max_template_bytes {
                return Err(TemplateError::new(
                    field,
                    None,
                    TemplateErrorKind::TemplateTooLarge,
                    format!(
                        "the template is {} bytes long, the limit is {}",
                        source.len(),
                        limits.max_template_bytes
                    ),
                ));
            }
            env.add_template_owned(field.name(), source.to_owned())
                .map_err(|e| engine_error(field, &e, limits.fuel))?;
        }
        Ok(Self {
            env,
            fuel: limits.fuel,
            max_output_bytes: limits.max_output_bytes,
        })
    }

    /// Renders `field` for the recipient `vars`, taking its output from `room` (the bytes the
    /// whole message may still use). `None` when the field was not compiled.
    pub(crate) fn render(
        &self,
        field: Field,
        vars: &Value,
        room: &mut usize,
    ) -> Result<Option<String>, TemplateError> {
        let Ok(template) = self.env.get_template(field.name()) else {
            return Ok(None);
        };
        let mut out = Capped {
            buf: Vec::with_capacity(256),
            room: *room,
            overflowed: false,
        };
        let rendered = template.render_captured_to(vars, &mut out);
        if out.overflowed {
            return Err(TemplateError::new(
                field,
                None,
                TemplateErrorKind::OutputTooLarge,
                format!(
                    "the rendered subject, text and HTML together exceed {} bytes",
                    self.max_output_bytes
                ),
            ));
        }
        if let Err(e) = rendered {
            return Err(engine_error(field, &e, self.fuel));
        }
        *room -= out.buf.len();
        // minijinja only ever writes whole `str`s, so this never fails; if it did, saying so
        // beats a panic.
        String::from_utf8(out.buf).map(Some).map_err(|_| {
            TemplateError::new(
                field,
                None,
                TemplateErrorKind::Runtime,
                "the engine produced invalid UTF-8",
            )
        })
    }
}

/// `none` (a JSON `null` attribute) prints as nothing rather than as the word "none".
fn format_value(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() {
        return Ok(());
    }
    minijinja::escape_formatter(out, state, value)
}

/// The render's writer: refuses the write that would pass the room left, which stops the
/// render there instead of after the whole output was built.
struct Capped {
    buf: Vec<u8>,
    room: usize,
    overflowed: bool,
}

impl io::Write for Capped {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > self.room - self.buf.len() {
            self.overflowed = true;
            return Err(io::Error::other("output limit reached"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An engine error as the operator reads it.
fn engine_error(field: Field, e: &minijinja::Error, fuel: u64) -> TemplateError {
    let detail = e.detail().unwrap_or_default();
    let (kind, message) = match e.kind() {
        ErrorKind::SyntaxError => (TemplateErrorKind::Syntax, format!("syntax error: {detail}")),
        ErrorKind::UndefinedError => {
            let name = undefined_name(detail).unwrap_or("?").to_string();
            let message = format!("undefined variable '{name}'");
            (TemplateErrorKind::Undefined(name), message)
        }
        ErrorKind::OutOfFuel => (
            TemplateErrorKind::OutOfFuel,
            format!(
                "the template ran out of fuel ({fuel} units): it takes too many steps or builds \
                 too much data"
            ),
        ),
        kind if detail.is_empty() => (TemplateErrorKind::Runtime, kind.to_string()),
        kind => (TemplateErrorKind::Runtime, format!("{kind}: {detail}")),
    };
    TemplateError::new(field, e.line(), kind, message)
}

/// The expression minijinja's debug mode names in "`first_name` is undefined".
fn undefined_name(detail: &str) -> Option<&str> {
    let start = detail.find('`')? + 1;
    let len = detail[start..].find("` is undefined")?;
    Some(&detail[start..start + len])
}

/// The variables of one recipient: `email`, then the attributes (an attribute named `email`
/// does not replace the address the message goes to), and `recipient` for all of them.
pub(crate) fn variables(email: &str, attributes: &Map<String, Json>) -> Result<Value, RenderError> {
    let mut map = BTreeMap::new();
    for (name, value) in attributes {
        let value = to_value(value, 1).ok_or_else(|| RenderError::Attribute {
            name: name.clone(),
            reason: format!("nested deeper than {MAX_ATTRIBUTE_DEPTH} levels"),
        })?;
        map.insert(Value::from(name.as_str()), value);
    }
    map.insert(Value::from("email"), Value::from(email));
    Ok(Value::from_object(Recipient(map)))
}

/// `None` when the value nests deeper than [`MAX_ATTRIBUTE_DEPTH`].
fn to_value(json: &Json, depth: usize) -> Option<Value> {
    Some(match json {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(items) if depth < MAX_ATTRIBUTE_DEPTH => Value::from(
            items
                .iter()
                .map(|item| to_value(item, depth + 1))
                .collect::<Option<Vec<_>>>()?,
        ),
        Json::Object(members) if depth < MAX_ATTRIBUTE_DEPTH => Value::from(
            members
                .iter()
                .map(|(k, v)| Some((Value::from(k.as_str()), to_value(v, depth + 1)?)))
                .collect::<Option<BTreeMap<_, _>>>()?,
        ),
        Json::Array(_) | Json::Object(_) => return None,
    })
}

/// The template's root: the recipient's variables, plus `recipient` naming them all.
#[derive(Debug)]
struct Recipient(BTreeMap<Value, Value>);

impl Object for Recipient {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        if key.as_str() == Some(RECIPIENT_VARIABLE) {
            return Some(Value::from_dyn_object(self.clone()));
        }
        self.0.get(key).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        self.mapped_enumerator(|this| Box::new(this.0.keys().cloned()))
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.0.len())
    }
}
