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
    /// A hash of a random password, checked for unknown names.
    dummy_hash: String,
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
        let Some(op) = self.operators.iter().find(|o| o.name == user) else {
            // As slow as a real check, so the answer's time does not tell which names exist.
            let _ = cartero_mta::verify_password(&self.dummy_hash, password);
            return None;
        };
        cartero_mta::verify_password(&op.password_hash, password).then(|| op.name.clone())
    }

    fn knows(&self, user: &str) -> bool {
        user.is_empty() || self.operators.iter().any(|o| o.name == user)
    }
}

struct Sessions(Dashboard);

impl RequestAuth for Sessions {
    fn operator(
        &self,
        method: &axum::http::Method,
        headers: &axum::http::HeaderMap,
    ) -> Option<String> {
        self.0.operator(method, headers)
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
        dummy_hash: cartero_mta::hash_password(&cartero_dashboard::random_token()?)?,
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
            dummy_hash: cartero_mta::hash_password("unguessable").unwrap(),
        };
        assert!(logins.knows("ana") && logins.knows("") && !logins.knows("bob"));
        assert_eq!(logins.check("", "tok-1").as_deref(), Some(TOKEN_OPERATOR));
        assert_eq!(logins.check("", "tok-2"), None);
        assert_eq!(logins.check("", ""), None);
        assert_eq!(logins.check("ana", "s3cret").as_deref(), Some("ana"));
        assert_eq!(logins.check("ana", "tok-1"), None);
        assert_eq!(logins.check("bob", "s3cret"), None);
    }
}
