//! The dashboard inside `cartero serve`: who may log in (the API tokens and the `[dashboard]`
//! operators, with the same hashes as SMTP AUTH accounts) and the session check the API's
//! token check accepts.

use cartero_clock::SharedClock;
use cartero_dashboard::{Credentials, Dashboard, DashboardConfig, Operator, TOKEN_OPERATOR};
use cartero_mta::api::{RequestAuth, SharedRequestAuth};
use std::sync::Arc;

struct Logins {
    tokens: Vec<String>,
    operators: Vec<Operator>,
}

impl Credentials for Logins {
    fn check(&self, user: &str, password: &str) -> Option<String> {
        if user.is_empty() {
            let ok = !password.is_empty()
                && self
                    .tokens
                    .iter()
                    .any(|t| cartero_mta::token_matches(t, password));
            return ok.then(|| TOKEN_OPERATOR.to_string());
        }
        let op = self.operators.iter().find(|o| o.name == user)?;
        cartero_mta::verify_password(&op.password_hash, password).then(|| op.name.clone())
    }
}

struct Sessions(Dashboard);

impl RequestAuth for Sessions {
    fn authorizes(&self, method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
        self.0.authorizes(method, headers)
    }
}

/// The dashboard's routes and its session check, or `None` when it is disabled.
pub fn build(
    cfg: &DashboardConfig,
    mta: &cartero_mta::MtaConfig,
    clock: SharedClock,
) -> anyhow::Result<Option<(axum::Router, SharedRequestAuth)>> {
    if !cfg.enabled {
        return Ok(None);
    }
    cfg.validate().map_err(anyhow::Error::msg)?;
    let logins = Logins {
        tokens: cartero_mta::api_tokens(mta)?,
        operators: cfg.operators.clone(),
    };
    // Over HTTPS the cookies are Secure whatever the setting says.
    let cfg = DashboardConfig {
        secure_cookie: cfg.secure_cookie || mta.http.tls,
        ..cfg.clone()
    };
    let d = Dashboard::new(&cfg, clock, Arc::new(logins));
    Ok(Some((d.router(), Arc::new(Sessions(d)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_logs_in_with_no_name_and_operators_with_their_password() {
        let logins = Logins {
            tokens: vec!["tok-1".into()],
            operators: vec![Operator {
                name: "ana".into(),
                password_hash: cartero_mta::hash_password("s3cret").unwrap(),
            }],
        };
        assert_eq!(logins.check("", "tok-1").as_deref(), Some(TOKEN_OPERATOR));
        assert_eq!(logins.check("", "tok-2"), None);
        assert_eq!(logins.check("", ""), None);
        assert_eq!(logins.check("ana", "s3cret").as_deref(), Some("ana"));
        assert_eq!(logins.check("ana", "tok-1"), None);
        assert_eq!(logins.check("bob", "s3cret"), None);
    }
}
