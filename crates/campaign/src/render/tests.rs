use super::*;
use cartero_clock::ManualClock;
use mail_parser::{MessageParser, MimeHeaders, PartType};
use serde_json::json;

mod limits;

/// 2023-11-14T22:13:20Z.
const NOW_MS: u64 = 1_700_000_000_000;

fn clock() -> SharedClock {
    Arc::new(ManualClock::new(NOW_MS))
}

fn attrs(value: serde_json::Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn template(subject: &str, text: Option<&str>, html: Option<&str>) -> MessageTemplate {
    MessageTemplate::compile(
        "News <news@example.test>",
        subject,
        text,
        html,
        RenderLimits::default(),
        clock(),
    )
    .expect("compiles")
}

fn with_limits(text: &str, limits: RenderLimits) -> MessageTemplate {
    MessageTemplate::compile("news@example.test", "Hi", Some(text), None, limits, clock())
        .expect("compiles")
}

fn compile_error(subject: &str, text: Option<&str>, html: Option<&str>) -> TemplateError {
    MessageTemplate::compile(
        "news@example.test",
        subject,
        text,
        html,
        RenderLimits::default(),
        clock(),
    )
    .expect_err("must not compile")
}

fn template_error(e: RenderError) -> TemplateError {
    match e {
        RenderError::Template(t) => t,
        other => panic!("not a template error: {other}"),
    }
}

fn render(t: &MessageTemplate, attributes: serde_json::Value) -> Vec<u8> {
    t.render("ana@example.org", &attrs(attributes), &[])
        .expect("renders")
}

fn parse(message: &[u8]) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(message)
        .expect("the output parses as a message")
}

/// The decoded contents of the parts of `message`, in order, with their content types, without
/// the line end every body ends with. Line endings are the wire's business (decoders give CRLF
/// or LF): they read as LF here.
fn leaf_parts(message: &mail_parser::Message<'_>) -> Vec<(String, String)> {
    message
        .parts
        .iter()
        .filter_map(|part| {
            let ct = part.content_type()?;
            let mime = format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""));
            match &part.body {
                PartType::Text(t) | PartType::Html(t) => {
                    let t = t.replace("\r\n", "\n");
                    let t = t.strip_suffix('\n').expect("a body ends with a line end");
                    Some((mime, t.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Every line ends in CRLF, none is longer than 998 bytes (RFC 5322 §2.1.1).
fn assert_wire_safe(message: &[u8]) {
    assert!(message.ends_with(b"\r\n"), "the message ends with CRLF");
    for (i, line) in message.split(|&b| b == b'\n').enumerate() {
        if i + 1 == message.split(|&b| b == b'\n').count() {
            assert!(line.is_empty());
            continue;
        }
        let line = line
            .strip_suffix(b"\r")
            .unwrap_or_else(|| panic!("line {} ends in a bare LF", i + 1));
        assert!(!line.contains(&b'\r'), "line {} holds a bare CR", i + 1);
        assert!(!line.contains(&0), "line {} holds a NUL", i + 1);
        assert!(line.len() <= 998, "line {} is {} bytes", i + 1, line.len());
    }
}

#[test]
fn every_field_is_personalized() {
    let t = template(
        "Hello {{ first_name }}",
        Some("Dear {{ first_name }} ({{ email }}), your code is {{ code }}."),
        Some("<p>Dear {{ first_name }}, {{ recipient[\"city name\"] }}</p>"),
    );
    let out = render(
        &t,
        json!({"first_name": "Ana", "code": 42, "city name": "Lyon"}),
    );
    let m = parse(&out);
    assert_eq!(m.subject(), Some("Hello Ana"));
    assert_eq!(
        leaf_parts(&m),
        vec![
            (
                "text/plain".to_string(),
                "Dear Ana (ana@example.org), your code is 42.".to_string()
            ),
            ("text/html".to_string(), "<p>Dear Ana, Lyon</p>".to_string()),
        ]
    );
    let other = render(
        &t,
        json!({"first_name": "Bo", "code": 7, "city name": "Porto"}),
    );
    assert_eq!(parse(&other).subject(), Some("Hello Bo"));
}

#[test]
fn attribute_names_may_be_non_ascii_identifiers() {
    let t = template("Hi", Some("Bonjour {{ prénom }}"), None);
    let out = render(&t, json!({"prénom": "Zoë"}));
    assert_eq!(leaf_parts(&parse(&out))[0].1, "Bonjour Zoë");
}

#[test]
fn a_field_cannot_include_another() {
    let e = compile_error("Hi", Some("{% include 'subject' %}"), None);
    assert_eq!((e.field, e.kind), (Field::Text, TemplateErrorKind::Syntax));
}

#[test]
fn the_recipient_address_wins_over_an_email_attribute() {
    let t = template("Hi", Some("{{ email }}"), None);
    let out = render(&t, json!({"email": "someone@else.test"}));
    assert_eq!(leaf_parts(&parse(&out))[0].1, "ana@example.org");
}

#[test]
fn null_prints_nothing_and_nested_attributes_are_reachable() {
    let t = template(
        "Hi",
        Some("[{{ nickname }}] {{ address.city }} {{ tags[1] }}"),
        None,
    );
    let out = render(
        &t,
        json!({"nickname": null, "address": {"city": "Lyon"}, "tags": ["a", "b"]}),
    );
    assert_eq!(leaf_parts(&parse(&out))[0].1, "[] Lyon b");
}

#[test]
fn html_escapes_a_script_in_an_attribute_but_text_and_subject_do_not() {
    let t = template(
        "{{ name }}",
        Some("Hi {{ name }}"),
        Some("<p>Hi {{ name }}</p>"),
    );
    let name = "<script>alert(1)</script>";
    let out = render(&t, json!({ "name": name }));
    let m = parse(&out);
    assert_eq!(m.subject(), Some(name));
    let parts = leaf_parts(&m);
    assert_eq!(parts[0].1, format!("Hi {name}"));
    assert_eq!(
        parts[1].1,
        "<p>Hi &lt;script&gt;alert(1)&lt;&#x2f;script&gt;</p>"
    );
}

#[test]
fn an_undefined_variable_names_itself_its_field_and_its_line() {
    let t = template(
        "Hello {{ first_name }}",
        Some("Hello\n\n{{ last_name }}"),
        Some("<p>\n{{ city }}</p>"),
    );
    let cases = [
        (json!({}), Field::Subject, 1, "first_name"),
        (json!({"first_name": "A"}), Field::Text, 3, "last_name"),
        (
            json!({"first_name": "A", "last_name": "B"}),
            Field::Html,
            2,
            "city",
        ),
    ];
    for (attributes, field, line, name) in cases {
        let e = template_error(
            t.check("ana@example.org", &attrs(attributes))
                .expect_err("undefined"),
        );
        assert_eq!(e.field, field);
        assert_eq!(e.line, Some(line));
        assert_eq!(e.kind, TemplateErrorKind::Undefined(name.to_string()));
        assert_eq!(
            e.to_string(),
            format!("{field} line {line}: undefined variable '{name}'")
        );
    }
}

#[test]
fn an_undefined_attribute_of_a_variable_is_named_with_its_path() {
    let t = template("Hi", Some("x\n{{ user.city }}"), None);
    let e = template_error(
        t.check("ana@example.org", &attrs(json!({"user": {"name": "A"}})))
            .expect_err("undefined"),
    );
    assert_eq!(e.to_string(), "text line 2: undefined variable 'user.city'");
}

#[test]
fn optional_attributes_can_be_tested_or_defaulted() {
    let t = template(
        "Hi",
        Some("{% if vip is defined %}VIP {% endif %}{{ title | default('friend') }}"),
        None,
    );
    let out = render(&t, json!({}));
    assert_eq!(leaf_parts(&parse(&out))[0].1, "friend");
    let out = render(&t, json!({"vip": true, "title": "Dr"}));
    assert_eq!(leaf_parts(&parse(&out))[0].1, "VIP Dr");
}

#[test]
fn a_syntax_error_names_its_field_and_line() {
    let cases = [
        (
            compile_error("Hello {{ name", Some("ok"), None),
            Field::Subject,
            1,
        ),
        (
            compile_error("Hi", Some("a\nb\n{% if x %}"), None),
            Field::Text,
            3,
        ),
        (
            compile_error("Hi", None, Some("<p>\n{{ x | }}</p>")),
            Field::Html,
            2,
        ),
    ];
    for (e, field, line) in cases {
        assert_eq!(e.kind, TemplateErrorKind::Syntax, "{e}");
        assert_eq!((e.field, e.line), (field, Some(line)), "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("{field} line {line}: syntax error: ")),
            "{e}"
        );
    }
}

#[test]
fn a_message_without_any_body_is_refused_at_compile() {
    let e = compile_error("Hi", None, None);
    assert_eq!(e.kind, TemplateErrorKind::NoBody);
    assert!(
        e.to_string().contains("text body, an HTML body or both"),
        "{e}"
    );
}

#[test]
fn an_invalid_from_is_refused_at_compile() {
    for from in [
        "nobody",
        "News <not an address>",
        "a@b.test\r\nBcc: x@y.test",
    ] {
        let e = MessageTemplate::compile(
            from,
            "Hi",
            Some("x"),
            None,
            RenderLimits::default(),
            clock(),
        )
        .expect_err("invalid from");
        assert_eq!(
            (e.field, e.kind),
            (Field::From, TemplateErrorKind::InvalidFrom)
        );
    }
}

#[test]
fn a_template_over_the_source_limit_is_refused_at_compile() {
    let limits = RenderLimits {
        max_template_bytes: 100,
        ..RenderLimits::default()
    };
    let e = MessageTemplate::compile(
        "news@example.test",
        "Hi",
        None,
        Some(&"x".repeat(101)),
        limits,
        clock(),
    )
    .expect_err("too large");
    assert_eq!(
        (e.field, e.kind),
        (Field::Html, TemplateErrorKind::TemplateTooLarge)
    );
}

#[test]
fn the_headers_are_from_to_subject_date_message_id_and_mime_version() {
    let t = template("Hi {{ n }}", Some("x"), None);
    let out = render(&t, json!({"n": 1}));
    let m = parse(&out);
    let from = m.from().and_then(|a| a.first()).expect("from");
    assert_eq!(from.name(), Some("News"));
    assert_eq!(from.address(), Some("news@example.test"));
    let to = m.to().and_then(|a| a.first()).expect("to");
    assert_eq!(to.address(), Some("ana@example.org"));
    assert_eq!(
        m.header_raw("Date").map(str::trim),
        Some("Tue, 14 Nov 2023 22:13:20 +0000"),
        "dated by the template's clock"
    );
    let id = m.message_id().expect("message id");
    assert!(id.ends_with("@example.test"), "{id}");
    let again = render(&t, json!({"n": 1}));
    assert_ne!(parse(&again).message_id(), Some(id), "ids are unique");
    assert_eq!(m.header_raw("MIME-Version").map(str::trim), Some("1.0"));
    assert_wire_safe(&out);
}

#[test]
fn a_non_ascii_subject_is_encoded_and_decodes_back() {
    let t = template("Bonjour {{ name }}, votre reçu — 🎉", Some("x"), None);
    let out = render(&t, json!({"name": "Zoë"}));
    let head = &out[..out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header section")];
    assert!(head.is_ascii(), "headers are ASCII on the wire");
    assert!(
        String::from_utf8_lossy(head).contains("=?utf-8?"),
        "the subject is an RFC 2047 encoded word"
    );
    assert_eq!(parse(&out).subject(), Some("Bonjour Zoë, votre reçu — 🎉"));
}

#[test]
fn long_lines_are_wrapped_by_the_transfer_encoding_and_decode_back() {
    let long_ascii = "word ".repeat(1000) + &"x".repeat(3000);
    let long_utf8 = "é".repeat(2500);
    let t = template(
        "{{ subject }}",
        Some("{{ a }}\n{{ b }}\nend"),
        Some("<p>{{ a }}</p><p>{{ b }}</p>"),
    );
    let out = render(
        &t,
        json!({"subject": "s".repeat(1500), "a": long_ascii, "b": long_utf8}),
    );
    assert_wire_safe(&out);
    let m = parse(&out);
    assert_eq!(m.subject(), Some("s".repeat(1500).as_str()));
    let parts = leaf_parts(&m);
    assert_eq!(parts[0].1, format!("{long_ascii}\n{long_utf8}\nend"));
    assert_eq!(parts[1].1, format!("<p>{long_ascii}</p><p>{long_utf8}</p>"));
}

#[test]
fn a_line_break_in_the_rendered_subject_is_refused() {
    let t = template("Hi {{ name }}", Some("x"), None);
    for name in ["A\r\nBcc: evil@example.net", "A\nB", "A\rB"] {
        let e = template_error(
            t.render("ana@example.org", &attrs(json!({ "name": name })), &[])
                .expect_err("line break"),
        );
        assert_eq!(e.field, Field::Subject);
        assert_eq!(e.kind, TemplateErrorKind::LineBreakInSubject);
    }
}

#[test]
fn body_line_endings_become_crlf_and_a_nul_is_refused() {
    let t = template("Hi", Some("{{ a }}"), None);
    let out = render(&t, json!({"a": "one\rtwo\r\nthree\nfour"}));
    assert_wire_safe(&out);
    assert_eq!(leaf_parts(&parse(&out))[0].1, "one\ntwo\nthree\nfour");
    let e = template_error(
        t.render("ana@example.org", &attrs(json!({"a": "x\u{0}y"})), &[])
            .expect_err("NUL"),
    );
    assert_eq!(
        (e.field, e.kind),
        (Field::Text, TemplateErrorKind::NulInBody)
    );
}

#[test]
fn the_body_is_alternative_text_then_html_or_a_single_part() {
    let both = render(&template("Hi", Some("t"), Some("<b>h</b>")), json!({}));
    let m = parse(&both);
    let root = m.root_part().content_type().expect("content type");
    assert_eq!(
        (root.ctype(), root.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(
        leaf_parts(&m),
        vec![
            ("text/plain".into(), "t".into()),
            ("text/html".into(), "<b>h</b>".into())
        ]
    );
    for (t, mime) in [
        (template("Hi", Some("t"), None), "text/plain"),
        (template("Hi", None, Some("<b>h</b>")), "text/html"),
    ] {
        let out = render(&t, json!({}));
        let m = parse(&out);
        assert_eq!(m.parts.len(), 1);
        assert_eq!(leaf_parts(&m)[0].0, mime);
        let ct = m.root_part().content_type().expect("content type");
        assert_eq!(ct.attribute("charset"), Some("utf-8"));
    }
}

#[test]
fn extra_headers_are_added_as_given() {
    let t = template("Hi", Some("x"), None);
    let unsubscribe = format!(
        "<https://example.test/u/{}>, <mailto:u@example.test>",
        "a".repeat(120)
    );
    let headers = vec![
        ("List-Unsubscribe".to_string(), unsubscribe.clone()),
        (
            "List-Unsubscribe-Post".to_string(),
            "List-Unsubscribe=One-Click".to_string(),
        ),
    ];
    let out = t
        .render("ana@example.org", &Map::new(), &headers)
        .expect("renders");
    assert_wire_safe(&out);
    let m = parse(&out);
    let raw = m.header_raw("List-Unsubscribe").expect("header");
    let unfolded: String = raw.replace("\r\n", "");
    assert_eq!(unfolded.trim(), unsubscribe);
    assert_eq!(
        m.header_raw("List-Unsubscribe-Post").map(str::trim),
        Some("List-Unsubscribe=One-Click")
    );
}

#[test]
fn extra_headers_that_would_break_the_message_are_refused() {
    let t = template("Hi", Some("x"), None);
    let cases = [
        ("X-Tag", "a\r\nBcc: evil@example.net"),
        ("X-Tag", "a\nb"),
        ("X-Bad Name", "v"),
        ("X-Bad:Name", "v"),
        ("", "v"),
        ("Subject", "second subject"),
        ("content-type", "text/html"),
        ("X-Tag", "nul\u{0}"),
    ];
    for (name, value) in cases {
        let e = t
            .render(
                "ana@example.org",
                &Map::new(),
                &[(name.to_string(), value.to_string())],
            )
            .expect_err("refused");
        assert!(
            matches!(&e, RenderError::Header { name: n, .. } if n == name),
            "{name}: {e}"
        );
    }
    let long = "x".repeat(901);
    assert!(
        t.render("ana@example.org", &Map::new(), &[("X-Long".into(), long)])
            .is_err()
    );
}

#[test]
fn an_invalid_recipient_address_is_refused() {
    let t = template("Hi", Some("x"), None);
    for email in ["nobody", "a@b.test\r\nBcc: evil@example.net", ""] {
        let e = t.check(email, &Map::new()).expect_err("invalid");
        assert!(matches!(e, RenderError::Recipient { .. }), "{e}");
    }
}

#[test]
fn check_reports_what_render_would() {
    let t = template("Hi {{ a }}", Some("{{ b }}"), None);
    let good = attrs(json!({"a": 1, "b": 2}));
    assert!(t.check("ana@example.org", &good).is_ok());
    let bad = attrs(json!({"a": 1}));
    assert_eq!(
        t.check("ana@example.org", &bad).expect_err("undefined"),
        t.render("ana@example.org", &bad, &[])
            .expect_err("undefined")
    );
}

#[test]
fn a_template_is_shared_across_threads() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<MessageTemplate>();
    let t = template("Hi {{ n }}", Some("{{ n }}"), None);
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let t = t.clone();
            std::thread::spawn(move || {
                let out = render(&t, json!({ "n": i }));
                parse(&out).subject().map(str::to_string)
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("joins"), Some(format!("Hi {i}")));
    }
}

/// Renders per second for a typical newsletter; prints, asserts nothing about speed.
/// `cargo test --release -p cartero-campaign --lib render::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let html = format!(
        "<html><body><h1>Hello {{{{ first_name }}}}</h1>{}<p>{{% for t in tags %}}{{{{ t }}}} {{% endfor %}}</p>\
         <a href=\"https://example.test/u?e={{{{ email }}}}\">unsubscribe</a></body></html>",
        "<p>Some static paragraph of a newsletter, with enough text to look real.</p>\n".repeat(60)
    );
    let text = "Hello {{ first_name }},\n\n".to_string()
        + &"Some static paragraph of a newsletter, with enough text to look real.\n".repeat(60);
    let t = template(
        "News for {{ first_name }} {{ last_name }}",
        Some(&text),
        Some(&html),
    );
    let a = attrs(
        json!({"first_name": "Ana", "last_name": "Lopez", "city": "Lyon",
        "tags": ["a", "b", "c"], "plan": "gold", "id": "123456"}),
    );
    let headers = [(
        "List-Unsubscribe".to_string(),
        "<https://example.test/u/123456>".to_string(),
    )];
    let n = 20_000;
    let start = std::time::Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += t
            .render("ana@example.org", &a, &headers)
            .expect("renders")
            .len();
    }
    let elapsed = start.elapsed();
    println!(
        "{n} messages of {} bytes in {elapsed:?}: {:.0} renders/s",
        bytes / n,
        n as f64 / elapsed.as_secs_f64()
    );
    let start = std::time::Instant::now();
    for _ in 0..n {
        t.check("ana@example.org", &a).expect("checks");
    }
    let elapsed = start.elapsed();
    println!("check: {:.0}/s", n as f64 / elapsed.as_secs_f64());
}
