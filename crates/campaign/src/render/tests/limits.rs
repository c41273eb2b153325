//! Hostile templates and data: each ends in an error, quickly, on a worker's stack; and
//! arbitrary input never panics nor yields a message that breaks the wire format.

use super::*;
use std::sync::mpsc;
use std::time::Duration;

/// Runs `f` on a thread with tokio's default worker stack (2 MiB) and waits a bounded time, so
/// a hostile template that hung or overflowed the stack fails the test instead of the run.
fn on_worker_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawns");
    rx.recv_timeout(Duration::from_secs(60))
        .expect("finished in time without crashing")
}

fn hostile(text: &'static str) -> TemplateError {
    on_worker_stack(move || {
        let t = with_limits(text, RenderLimits::default());
        match t.render("ana@example.org", &Map::new(), &[]) {
            Ok(m) => panic!("{text} rendered {} bytes", m.len()),
            Err(e) => template_error(e),
        }
    })
}

#[test]
fn a_loop_beyond_the_fuel_ends_in_an_out_of_fuel_error() {
    let e = hostile("{% for i in range(100000) %}{{ i }}{% endfor %}");
    assert_eq!(
        (e.field, e.kind.clone()),
        (Field::Text, TemplateErrorKind::OutOfFuel)
    );
    assert!(
        e.to_string().contains("ran out of fuel (50000 units)"),
        "{e}"
    );
}

#[test]
fn a_huge_range_is_refused() {
    let e = hostile("{% for i in range(100000000) %}x{% endfor %}");
    assert_eq!(e.field, Field::Text);
    assert!(e.to_string().contains("range"), "{e}");
}

#[test]
fn a_string_multiplied_into_gigabytes_runs_out_of_fuel() {
    for text in [
        r#"{{ "x" * 100000000 }}"#,
        r#"{% set s = "xxxxxxxxxx" * 1000 %}{% set t = s * 1000 %}{{ t * 1000 }}"#,
        r#"{{ ("x" * 1000) | replace("x", "yyyyyyyyyy") | replace("y", "zzzzzzzzzz") | replace("z", "wwwwwwwwww") | replace("w", "vvvvvvvvvv") }}"#,
    ] {
        let e = hostile(text);
        assert_eq!(e.kind, TemplateErrorKind::OutOfFuel, "{text}: {e}");
    }
}

#[test]
fn a_recursive_macro_ends_in_an_error() {
    let e = hostile("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    assert_eq!(e.field, Field::Text);
    assert!(
        matches!(
            e.kind,
            TemplateErrorKind::Runtime | TemplateErrorKind::OutOfFuel
        ),
        "{e}"
    );
}

#[test]
fn deeply_nested_template_syntax_is_refused_at_compile() {
    let e = on_worker_stack(|| {
        let nested = "(".repeat(10_000) + "1" + &")".repeat(10_000);
        compile_error("Hi", Some(&format!("{{{{ {nested} }}}}")), None)
    });
    assert_eq!((e.field, e.kind), (Field::Text, TemplateErrorKind::Syntax));
    let e = on_worker_stack(|| {
        let nested = "{% if true %}".repeat(5_000) + &"{% endif %}".repeat(5_000);
        compile_error("Hi", Some(&nested), None)
    });
    assert_eq!((e.field, e.kind), (Field::Text, TemplateErrorKind::Syntax));
}

#[test]
fn deeply_nested_attributes_are_refused() {
    let mut value = json!("leaf");
    for _ in 0..100 {
        value = json!([value]);
    }
    let t = template("Hi", Some("x"), None);
    let e = t
        .check("ana@example.org", &attrs(json!({ "deep": value })))
        .expect_err("too deep");
    assert!(
        matches!(&e, RenderError::Attribute { name, .. } if name == "deep"),
        "{e}"
    );
}

#[test]
fn output_past_the_limit_is_an_error_for_the_fields_together() {
    let limits = RenderLimits {
        max_output_bytes: 1000,
        ..RenderLimits::default()
    };
    let t = MessageTemplate::compile(
        "news@example.test",
        "{{ s }}",
        Some("{{ t }}"),
        Some("{{ h }}"),
        limits,
        clock(),
    )
    .expect("compiles");
    let ok = json!({"s": "s".repeat(300), "t": "t".repeat(300), "h": "h".repeat(400)});
    assert!(t.check("ana@example.org", &attrs(ok)).is_ok());
    let over = json!({"s": "s".repeat(300), "t": "t".repeat(300), "h": "h".repeat(401)});
    let e = template_error(
        t.check("ana@example.org", &attrs(over))
            .expect_err("over the limit"),
    );
    assert_eq!(
        (e.field, e.kind.clone()),
        (Field::Html, TemplateErrorKind::OutputTooLarge)
    );
    assert_eq!(
        e.to_string(),
        "html: the rendered subject, text and HTML together exceed 1000 bytes"
    );
}

#[test]
fn output_past_the_limit_stops_the_render_early() {
    // With fuel to spare, only the output limit can stop this.
    let limits = RenderLimits {
        fuel: 10_000_000,
        max_output_bytes: 10_000,
        ..RenderLimits::default()
    };
    let e = on_worker_stack(move || {
        let t = with_limits(
            "{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}",
            limits,
        );
        template_error(
            t.check("ana@example.org", &Map::new())
                .expect_err("too large"),
        )
    });
    assert_eq!(e.kind, TemplateErrorKind::OutputTooLarge);
}

mod arbitrary {
    use super::*;
    use proptest::prelude::*;

    /// Template-ish text: fragments of the syntax mixed with arbitrary characters.
    fn template_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{{ a }}".to_string()),
            Just("{{ b.c }}".to_string()),
            Just("{{ ".to_string()),
            Just(" }}".to_string()),
            Just("{% for x in a %}".to_string()),
            Just("{% endfor %}".to_string()),
            Just("{% if b %}".to_string()),
            Just("{% endif %}".to_string()),
            Just("{{ a * 3 }}".to_string()),
            Just("{{ a | upper }}".to_string()),
            Just("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}".to_string()),
            Just("\r\n".to_string()),
            Just("\r".to_string()),
            Just("=\n".to_string()),
            "\\PC{0,20}",
            ".{0,20}",
            "[a-z ]{0,2000}",
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    fn attribute() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(serde_json::Value::from),
            ".{0,30}".prop_map(serde_json::Value::from),
            "[a-z\r\n ]{0,1200}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-c]", inner, 0..3)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_from_value_compiles_or_is_refused_as_from(from in prop_oneof![
            "(\\PC|[\"<>@ \r\n]){0,60}",
            ("(\\PC|[\"\\\\<>,;: ]){0,40}", "[a-z.]{1,8}@[a-z]{1,8}\\.test")
                .prop_map(|(name, address)| format!("{name} <{address}>")),
        ]) {
            match MessageTemplate::compile(
                &from, "Hi", Some("x"), None, RenderLimits::default(), clock(),
            ) {
                Ok(t) => {
                    let message = t.render("ana@example.org", &Map::new(), &[])
                        .expect("renders");
                    assert_wire_safe(&message);
                    let m = MessageParser::default().parse(&message).expect("parses");
                    let sent = m.from().and_then(|a| a.first()).and_then(|a| a.address());
                    prop_assert_eq!(sent, Some(t.sender()));
                }
                Err(e) => prop_assert_eq!(
                    (e.field, e.kind), (Field::From, TemplateErrorKind::InvalidFrom)
                ),
            }
        }

        #[test]
        fn any_template_and_attributes_end_in_a_message_or_an_error(
            subject in template_text(),
            text in proptest::option::of(template_text()),
            html in proptest::option::of(template_text()),
            a in attribute(),
            b in attribute(),
            header in ".{0,40}",
        ) {
            let limits = RenderLimits { fuel: 5_000, ..RenderLimits::default() };
            let Ok(t) = MessageTemplate::compile(
                "News <news@example.test>", &subject, text.as_deref(), html.as_deref(),
                limits, clock(),
            ) else {
                return Ok(());
            };
            let mut attributes = Map::new();
            attributes.insert("a".into(), a);
            attributes.insert("b".into(), b);
            let headers = [("X-Test".to_string(), header)];
            let checked = t.check("ana@example.org", &attributes);
            match t.render("ana@example.org", &attributes, &headers) {
                Ok(message) => {
                    prop_assert!(checked.is_ok());
                    assert_wire_safe(&message);
                    prop_assert!(MessageParser::default().parse(&message).is_some());
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    if !matches!(e, RenderError::Header { .. }) {
                        prop_assert_eq!(checked, Err(e));
                    }
                }
            }
        }
    }
}
