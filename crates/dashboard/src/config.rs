//! `[dashboard]`: who may log in and how long a session lives (docs/config.md, "dashboard").

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// An operator account: a name and a password hash made by `cartero passwd` (PBKDF2-SHA256,
/// the format SMTP AUTH accounts use). The API token also logs in, as operator `api-token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operator {
    pub name: String,
    pub password_hash: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DashboardConfig {
    /// Serve the dashboard at `/ui/` on the HTTP listener.
    pub enabled: bool,
    pub operators: Vec<Operator>,
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session ends this long after its login, used or not.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// Mark the session cookie `Secure`: set it when the listener is reached over HTTPS (a
    /// TLS-terminating proxy in front of it), or browsers would send the cookie in clear.
    pub secure_cookie: bool,
    /// Failed logins of one name (or of the token) before that name is locked for
    /// `login_lockout`.
    pub max_failed_logins: u32,
    #[serde(with = "humantime_serde")]
    pub login_lockout: Duration,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            operators: Vec::new(),
            session_idle: Duration::from_secs(3600),
            session_max: Duration::from_secs(12 * 3600),
            secure_cookie: false,
            max_failed_logins: 10,
            login_lockout: Duration::from_secs(15 * 60),
        }
    }
}

impl DashboardConfig {
    /// The mistakes `config check` and `serve` refuse.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_idle.is_zero() || self.session_max.is_zero() {
            return Err("[dashboard] session_idle and session_max must be over zero".into());
        }
        if self.session_idle > self.session_max {
            return Err("[dashboard] session_idle is longer than session_max".into());
        }
        if self.max_failed_logins == 0 {
            return Err("[dashboard] max_failed_logins must be at least 1".into());
        }
        let mut seen = std::collections::HashSet::new();
        for o in &self.operators {
            if o.name.trim().is_empty() || o.name == crate::TOKEN_OPERATOR {
                return Err(format!(
                    "[dashboard] operator name {:?} is empty or reserved",
                    o.name
                ));
            }
            if !o.password_hash.starts_with("pbkdf2-sha256$") {
                return Err(format!(
                    "[dashboard] operator {:?}: password_hash is not a `cartero passwd` hash",
                    o.name
                ));
            }
            if !seen.insert(o.name.as_str()) {
                return Err(format!("[dashboard] operator {:?} is listed twice", o.name));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_mistakes_are_named() {
        assert_eq!(DashboardConfig::default().validate(), Ok(()));
        let mut c = DashboardConfig {
            session_idle: Duration::from_secs(7200),
            session_max: Duration::from_secs(3600),
            ..DashboardConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("session_idle"));
        c.session_idle = Duration::from_secs(60);
        c.operators = vec![Operator {
            name: "ana".into(),
            password_hash: "secret".into(),
        }];
        assert!(c.validate().unwrap_err().contains("cartero passwd"));
        c.operators[0].password_hash = "pbkdf2-sha256$1$a$b".into();
        c.operators.push(c.operators[0].clone());
        assert!(c.validate().unwrap_err().contains("twice"));
        c.operators[1].name = crate::TOKEN_OPERATOR.into();
        assert!(c.validate().unwrap_err().contains("reserved"));
    }
}
