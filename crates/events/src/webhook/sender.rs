//! The delivery side of a webhook: takes batch files oldest first, POSTs each until a 2xx or a
//! permanent rejection, backing off exponentially in between.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde::de::IgnoredAny;
use tokio::sync::watch;

use super::Shared;

/// What one POST attempt came to.
#[derive(Debug)]
enum Outcome {
    Delivered,
    /// A 4xx other than 408/429 (or a 3xx): resending the same body cannot succeed.
    Rejected(StatusCode),
    Retry(String),
}

/// Delay before retry number `attempt` (1 = first retry): `base * 2^(attempt-1)` capped at `cap`,
/// then reduced by up to `jitter` of itself (`random` in `0..1` picks how much). Jitter only
/// shortens the delay, so `cap` is a true upper bound.
pub fn backoff_delay(
    attempt: u32,
    base: Duration,
    cap: Duration,
    jitter: f64,
    random: f64,
) -> Duration {
    let doublings = attempt.saturating_sub(1).min(63);
    let factor = 1u64 << doublings;
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX);
    let cap_ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    let full = base_ms.saturating_mul(factor).min(cap_ms);
    let cut = jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
    Duration::from_millis((full as f64 * (1.0 - cut)) as u64)
}

/// Keeps only `scheme://host:port` of a URL, since paths and queries of webhook URLs often carry
/// tokens and logs must not leak them.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<invalid url>".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}")
}

/// Runs until `shutdown` turns true. Every scan that finds the spool empty is published on
/// `drained` with its number, which is how `flush` learns that earlier batches are done.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    drained: watch::Sender<u64>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        let scan_no = shared.scans_started.fetch_add(1, Ordering::SeqCst) + 1;
        // A directory listing is cheap enough to run on the async thread.
        let files = match shared.spool.list() {
            Ok(files) => files,
            Err(e) => {
                tracing::error!(webhook = %shared.log_url, error = %e, "listing webhook spool failed");
                Vec::new()
            }
        };
        if files.is_empty() {
            drained.send_replace(scan_no);
            tokio::select! {
                () = shared.wake.notified() => {}
                _ = shutdown.changed() => return,
            }
            continue;
        }
        for path in files {
            if !deliver_file(&shared, &path, &mut shutdown).await {
                return;
            }
        }
    }
}

/// Delivers one batch file; false when shutdown interrupted it (the file stays for next start).
async fn deliver_file(shared: &Shared, path: &Path, shutdown: &mut watch::Receiver<bool>) -> bool {
    let body = match tokio::fs::read(path).await {
        Ok(body) => body,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
        Err(e) => {
            tracing::error!(webhook = %shared.log_url, file = %path.display(), error = %e, "reading webhook batch failed");
            // Without a pause the next scan would find the same file and spin.
            return pause(shared, shutdown).await;
        }
    };
    let Ok(events) = serde_json::from_slice::<Vec<IgnoredAny>>(&body) else {
        let moved = shared.spool.set_aside(path);
        tracing::error!(webhook = %shared.log_url, file = %path.display(), moved = ?moved, "webhook batch file is not a JSON array; set aside");
        return true;
    };
    let count = events.len();
    let mut attempt = 0u32;
    loop {
        let outcome = tokio::select! {
            o = post(shared, body.clone()) => o,
            _ = shutdown.changed() => return false,
        };
        match outcome {
            Outcome::Delivered => {
                shared
                    .stats
                    .batches_delivered
                    .fetch_add(1, Ordering::Relaxed);
                return forget(shared, path) || pause(shared, shutdown).await;
            }
            Outcome::Rejected(status) => {
                shared
                    .stats
                    .batches_rejected
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(webhook = %shared.log_url, %status, events = count, file = %path.display(), "webhook rejected the batch; dropped");
                return forget(shared, path) || pause(shared, shutdown).await;
            }
            Outcome::Retry(reason) => {
                shared.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
                attempt = attempt.saturating_add(1);
                let cfg = &shared.config;
                let delay = backoff_delay(
                    attempt,
                    cfg.retry_base,
                    cfg.retry_max,
                    cfg.retry_jitter,
                    fastrand::f64(),
                );
                tracing::warn!(webhook = %shared.log_url, %reason, attempt, events = count, retry_in = ?delay, "webhook POST failed; will retry");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = shutdown.changed() => return false,
                }
            }
        }
    }
}

/// Removes a finished batch; false when that failed (the file will be sent again later: a
/// duplicate, never a loss).
fn forget(shared: &Shared, path: &Path) -> bool {
    match shared.spool.remove(path) {
        Ok(()) => true,
        Err(e) => {
            tracing::error!(webhook = %shared.log_url, error = %e, "removing finished webhook batch failed");
            false
        }
    }
}

/// Waits `retry_max` after a spool error so a stuck file does not make the loop spin; false when
/// shutdown came first.
async fn pause(shared: &Shared, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(shared.config.retry_max) => true,
        _ = shutdown.changed() => false,
    }
}

async fn post(shared: &Shared, body: Vec<u8>) -> Outcome {
    let mut req = shared
        .client
        .post(&shared.config.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(auth) = &shared.auth {
        req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
    }
    match req.send().await {
        Ok(resp) => classify(resp.status()),
        // Without the URL: it may carry a token.
        Err(e) => Outcome::Retry(e.without_url().to_string()),
    }
}

fn classify(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Delivered
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Outcome::Retry(format!("HTTP {status}"))
    } else {
        Outcome::Rejected(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let got: Vec<u128> = (1..=7)
            .map(|a| backoff_delay(a, 100 * MS, 1000 * MS, 0.0, 0.7).as_millis())
            .collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(
            backoff_delay(u32::MAX, 100 * MS, 1000 * MS, 0.0, 0.0),
            1000 * MS
        );
    }

    #[test]
    fn jitter_only_shortens_and_stays_within_its_fraction() {
        let full = backoff_delay(3, 100 * MS, 10_000 * MS, 0.0, 0.0);
        assert_eq!(full, 400 * MS);
        assert_eq!(backoff_delay(3, 100 * MS, 10_000 * MS, 0.5, 0.0), 400 * MS);
        assert_eq!(backoff_delay(3, 100 * MS, 10_000 * MS, 0.5, 0.5), 300 * MS);
        let shortest = backoff_delay(3, 100 * MS, 10_000 * MS, 0.5, 0.999_999);
        assert!(shortest >= 200 * MS && shortest < 201 * MS, "{shortest:?}");
    }

    #[test]
    fn status_classification() {
        assert!(matches!(classify(StatusCode::OK), Outcome::Delivered));
        assert!(matches!(classify(StatusCode::ACCEPTED), Outcome::Delivered));
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::REQUEST_TIMEOUT),
            Outcome::Retry(_)
        ));
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            classify(StatusCode::MOVED_PERMANENTLY),
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn redaction_drops_credentials_path_and_query() {
        assert_eq!(
            redact_url("https://user:pw@hooks.example.com:8443/T0K3N/x?sig=abc#f"),
            "https://hooks.example.com:8443"
        );
        assert_eq!(redact_url("http://127.0.0.1:9?k=v"), "http://127.0.0.1:9");
        assert_eq!(redact_url("nonsense"), "<invalid url>");
    }
}
