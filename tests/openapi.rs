//! The OpenAPI document `cartero serve` publishes against the routes it serves: every documented
//! operation is routed with its method (and no other method is), the token is required exactly
//! where the document says, and the document is the MTA's and the campaign layer's together.

mod support;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::{ConfigBuilder, DEADLINE, Serve};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

struct Op {
    method: Method,
    /// As documented, e.g. `/api/v1/deliveries/{id}`.
    path: String,
    /// With every parameter replaced by a value of its schema.
    url_path: String,
    /// `security: [{}]`: open to anyone.
    open: bool,
}

/// A value the parameter's schema accepts: routing must be reached, not the handler's success.
fn sample(doc: &Value, param: &Value) -> String {
    let mut schema = &param["schema"];
    if let Some(name) = schema["$ref"].as_str().and_then(|r| r.rsplit('/').next()) {
        schema = &doc["components"]["schemas"][name];
    }
    if let Some(first) = schema["enum"].get(0).and_then(Value::as_str) {
        first.to_string()
    } else if schema["type"] == "integer" {
        "987654".into()
    } else {
        "probe".into()
    }
}

fn operations(doc: &Value) -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let mut url_path = path.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                if p["in"] == "path" {
                    let name = p["name"].as_str().expect("parameter name");
                    url_path = url_path.replace(&format!("{{{name}}}"), &sample(doc, p));
                }
            }
            assert!(
                !url_path.contains('{'),
                "{m} {path}: undocumented path parameter"
            );
            ops.push(Op {
                method: m.to_uppercase().parse().unwrap(),
                path: path.clone(),
                url_path,
                open: op["security"] == serde_json::json!([{}]),
            });
        }
    }
    ops
}

async fn call(base: &str, method: Method, path: &str, token: Option<&str>) -> (StatusCode, String) {
    let client = reqwest::Client::builder()
        .timeout(DEADLINE)
        .build()
        .unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    // A live stream (`events/tail`) never ends: its status and headers are the answer.
    let streaming = r
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/x-ndjson"));
    if streaming {
        return (r.status(), String::new());
    }
    (r.status(), r.text().await.unwrap())
}

/// Our handlers answer a 404 with a JSON error; the router's own 404 (no route) has no body.
fn routed(status: StatusCode, body: &str) -> bool {
    let handler_404 = serde_json::from_str::<Value>(body).is_ok_and(|v| v["error"].is_string());
    status != StatusCode::METHOD_NOT_ALLOWED && (status != StatusCode::NOT_FOUND || handler_404)
}

fn serve() -> (tempfile::TempDir, Serve) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = ConfigBuilder::new(&data).write(&dir.path().join("cartero.toml"));
    let mta = Serve::start(&config, &data);
    (dir, mta)
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| collect_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

fn paths(doc: &utoipa::openapi::OpenApi) -> Vec<String> {
    doc.paths.paths.keys().cloned().collect()
}

#[test]
fn every_documented_operation_is_routed_with_its_method_and_token_rule() {
    let (_dir, mta) = serve();
    let base = format!("http://{}", mta.http);
    let token = mta.token();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (status, text) = call(&base, Method::GET, "/api/v1/openapi.json", Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let ops = operations(&doc);
        let own = |d: utoipa::openapi::OpenApi| operations(&serde_json::to_value(d).unwrap()).len();
        let expected = own(cartero_mta::api::openapi()) + own(cartero_campaign::api::openapi());
        assert_eq!(ops.len(), expected);
        for op in &ops {
            let what = format!("{} {} ({})", op.method, op.path, op.url_path);
            let (status, body) = call(&base, op.method.clone(), &op.url_path, None).await;
            if op.open {
                assert_ne!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} is documented open"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{what} needs the token: {body}"
                );
            }
            let (status, body) = call(&base, op.method.clone(), &op.url_path, Some(&token)).await;
            assert!(
                routed(status, &body),
                "{what} is not routed: {status} {body:?}"
            );
            // Every other method on the path is refused by the router.
            let documented: Vec<Method> = ops
                .iter()
                .filter(|o| o.path == op.path)
                .map(|o| o.method.clone())
                .collect();
            for m in METHODS {
                let m: Method = m.to_uppercase().parse().unwrap();
                if documented.contains(&m) {
                    continue;
                }
                let (status, _) = call(&base, m.clone(), &op.url_path, Some(&token)).await;
                assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {}", op.path);
            }
        }
    });
}

#[test]
fn served_document_is_both_layers_under_the_binarys_name_and_needs_the_token() {
    let (_dir, mta) = serve();
    let base = format!("http://{}", mta.http);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (anon, text) = rt.block_on(call(&base, Method::GET, "/api/v1/openapi.json", None));
    assert_eq!(anon, StatusCode::UNAUTHORIZED, "{text}");
    let (status, text) = rt.block_on(call(
        &base,
        Method::GET,
        "/api/v1/openapi.json",
        Some(&mta.token()),
    ));
    assert_eq!(status, StatusCode::OK, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["title"], "cartero");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let bearer = &doc["components"]["securitySchemes"][cartero_mta::api::BEARER];
    assert_eq!(bearer["scheme"], "bearer", "{bearer}");

    let (mta_doc, campaign_doc) = (
        cartero_mta::api::openapi(),
        cartero_campaign::api::openapi(),
    );
    let mut expected = paths(&mta_doc);
    expected.extend(paths(&campaign_doc));
    expected.sort();
    let mut served: Vec<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    served.sort();
    assert_eq!(served, expected);
    let mut ids: Vec<&str> = operations(&doc)
        .iter()
        .map(|o| &doc["paths"][&o.path][o.method.as_str().to_lowercase()]["operationId"])
        .map(|id| id.as_str().expect("every operation has an operationId"))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "operationIds must be unique: {ids:?}");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{r} does not resolve"
        );
    }
    // A schema name both layers define must be the same schema: merging keeps only one.
    let schemas = |d: &utoipa::openapi::OpenApi| d.components.clone().unwrap().schemas;
    let theirs = schemas(&campaign_doc);
    for (name, schema) in schemas(&mta_doc) {
        if let Some(other) = theirs.get(&name) {
            assert_eq!(
                serde_json::to_value(&schema).unwrap(),
                serde_json::to_value(other).unwrap(),
                "schema {name} differs between the MTA and the campaign layer"
            );
        }
    }
}

/// A route added with axum's own methods would be served without being documented (the probe
/// above only walks the document); every one goes through utoipa-axum's `routes!`, which takes
/// its method and path from the handler's `#[utoipa::path]`.
#[test]
fn every_route_is_registered_from_its_documented_path() {
    let bypasses = [
        concat!(".", "route("),
        concat!(".", "route_service("),
        concat!(".", "nest("),
        concat!(".", "nest_service("),
    ];
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("crates");
    let mut files = vec![root.join("mta/src/api.rs")];
    for dir in ["mta/src/api", "campaign/src/api"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            files.push(entry.unwrap().path());
        }
    }
    let sources: Vec<_> = files
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect();
    assert!(sources.len() >= 8, "{sources:?}");
    for (file, text) in &sources {
        for b in bypasses {
            let file = file.display();
            assert!(!text.contains(b), "{file} registers a route with `{b}`");
        }
    }
}
