//! Remote MTA mode (`[campaign] mta = "http://…"`, docs/transactional.md): the campaign layer
//! hands its messages to another cartero's `POST /api/v1/messages`, one request per message
//! (each is personalized), each recipient with its row's idempotency key, so a hand-over
//! repeated after a timeout, a crash or a lost answer is answered with the original message
//! and spooled once. The MTA's events come back through its webhook to `POST /api/v1/events`.

use cartero_campaign::inject::{BoxFuture, Handed, Injector, Outgoing, Unavailable, hand_each};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Requests on their way to the MTA at once.
const IN_FLIGHT: usize = 32;
/// How long one injection may take before it counts as "MTA unavailable" (and is retried).
const TIMEOUT: Duration = Duration::from_secs(30);

pub struct RemoteInjector {
    url: String,
    token: String,
    http: reqwest::Client,
    slots: Arc<Semaphore>,
}

impl RemoteInjector {
    /// `base` is the MTA's API base URL (`http://mta-host:8025`), `token` one of its API tokens,
    /// `ca` a PEM file of certificates to trust for an `https://` base (`[campaign]
    /// mta_ca_file`).
    pub fn new(base: &str, token: String, ca: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca {
            builder = cartero_events::trust_pem_file(builder, path)
                .map_err(|e| anyhow::anyhow!("[campaign] mta_ca_file: {e}"))?;
        }
        let http = builder
            .timeout(TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self {
            url: format!("{}/api/v1/messages", base.trim_end_matches('/')),
            token,
            http,
            slots: Arc::new(Semaphore::new(IN_FLIGHT)),
        })
    }
}

/// The injection request of one message (docs/api.md, `POST /api/v1/messages`).
fn request_body(o: &Outgoing) -> Result<Value, String> {
    let raw = std::str::from_utf8(&o.body)
        .map_err(|_| "the rendered message is not UTF-8".to_string())?;
    let metadata = o.metadata();
    let mut body = json!({
        "mail_from": o.sender,
        "recipients": [{
            "address": o.recipient,
            "metadata": metadata,
            "idempotency_key": o.idempotency_key(),
        }],
        "content": { "raw": raw },
        "validity": format!("{}s", o.validity.as_secs().max(1)),
        "pool": o.pool,
    });
    if let Some(at) = o.expires_at {
        let at = i64::try_from(at)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis)
            .ok_or_else(|| format!("the validity's end {at} is not a time"))?;
        body["expires_at"] = at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into();
    }
    Ok(body)
}

/// One message's fate: handed (taken or refused), or the MTA could not be reached (retry).
async fn inject_one(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    o: &Outgoing,
) -> Result<Handed, String> {
    let body = match request_body(o) {
        Ok(b) => b,
        Err(reason) => return Ok(Handed::Refused { reason }),
    };
    let resp = http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("the MTA did not answer: {e}"))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    let error = || v["error"].as_str().unwrap_or("no reason given").to_string();
    match status {
        StatusCode::OK => {
            let id = v["recipients"][0]["id"].as_str().unwrap_or_default();
            let message_id = id.split('.').next().unwrap_or_default().to_string();
            if message_id.is_empty() {
                return Err(format!("the MTA answered 200 without an id: {v}"));
            }
            Ok(Handed::Taken { message_id })
        }
        // Refused for good: the message or its recipient is not acceptable.
        StatusCode::BAD_REQUEST
        | StatusCode::UNPROCESSABLE_ENTITY
        | StatusCode::PAYLOAD_TOO_LARGE => Ok(Handed::Refused {
            reason: format!("{status}: {}", error()),
        }),
        // Past `expires_at`, and the MTA did not have it from an earlier hand-over.
        StatusCode::GONE => Ok(Handed::Expired {
            reason: format!("{status}: {}", error()),
        }),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            tracing::error!(%status, "the remote MTA refused the campaign's token ([campaign] mta_token_file)");
            Err(format!("{status}: {}", error()))
        }
        // 409 (the same key in flight), 503 (spool), other 5xx: try again later.
        _ => Err(format!("{status}: {}", error())),
    }
}

impl Injector for RemoteInjector {
    fn inject(&self, batch: Vec<Outgoing>) -> BoxFuture<'_, Result<Vec<Handed>, Unavailable>> {
        Box::pin(hand_each(batch, |o| {
            let (http, url, token) = (self.http.clone(), self.url.clone(), self.token.clone());
            let slots = self.slots.clone();
            async move {
                let _slot = slots.acquire_owned().await;
                inject_one(&http, &url, &token, &o).await
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cartero_campaign::model::{DeliveryId, LogId};

    #[test]
    fn the_request_carries_the_key_metadata_and_raw_message() {
        let o = Outgoing {
            delivery: DeliveryId(3),
            row: LogId(9),
            sender: "orders@a.test".into(),
            recipient: "ana@b.test".into(),
            body: b"Subject: x\r\n\r\nhi\r\n".to_vec(),
            validity: Duration::from_millis(1500),
            expires_at: Some(1_700_000_000_250),
            pool: None,
            bulk: false,
        };
        let v = request_body(&o).unwrap();
        assert_eq!(v["expires_at"], "2023-11-14T22:13:20.250Z");
        assert_eq!(
            v["recipients"][0]["idempotency_key"],
            "cartero-campaign:3:9"
        );
        assert_eq!(v["recipients"][0]["metadata"]["log_id"], 9);
        assert!(v["recipients"][0]["metadata"].get("bulk").is_none());
        assert_eq!(
            (v["validity"].as_str(), v["content"]["raw"].as_str()),
            (Some("1s"), Some("Subject: x\r\n\r\nhi\r\n"))
        );
        let mut bad = o.clone();
        bad.body = vec![0xff];
        assert!(request_body(&bad).is_err());
        bad.bulk = true;
        bad.body = b"x".to_vec();
        assert_eq!(
            request_body(&bad).unwrap()["recipients"][0]["metadata"]["bulk"],
            true
        );
    }
}
