//! The vocabulary of an outbound session that configuration speaks too: the STARTTLS mode and
//! the per-phase timeouts. `[delivery.timeouts]` is a [`Timeouts`]; a shaping layer's
//! `timeouts = { … }` is a [`PhaseTimeouts`] over it; both come from the one phase list below.

use serde::{Deserialize, Serialize};
use std::time::Duration;

use crate::client::Phase;

/// When to use STARTTLS. In configuration (`tls = "…"` of a shaping layer) the names are
/// `opportunistic`, `required` and `disabled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsMode {
    /// When offered, without certificate verification (MTA-to-MTA practice). A refused
    /// STARTTLS continues in plaintext; a failed handshake is a
    /// [`ClientError::Tls`](super::ClientError::Tls) (the caller may remember it and retry with
    /// `Disabled`).
    #[default]
    Opportunistic,
    /// Fail when STARTTLS is not offered, refused, or the handshake fails; no verification.
    Required,
    /// Never.
    Disabled,
    /// Like `Required`, and the certificate must verify for the server name against
    /// [`ClientConfig::tls_roots`](super::ClientConfig::tls_roots) (or the system roots when
    /// `None`). Not a configuration value: verification needs trust anchors per destination,
    /// which the configuration cannot name yet.
    #[serde(skip)]
    RequiredVerified,
}

/// Declares [`Timeouts`] and [`PhaseTimeouts`] from one list of SMTP phases with their defaults,
/// so the resolved form and the per-layer form cannot drift apart.
macro_rules! session_timeouts {
    ($($(#[doc = $doc:literal])* $phase:ident = $default:expr),* $(,)?) => {
        /// Per-phase limits of an outbound session, and how long an idle session is kept.
        /// Defaults are the RFC 5321 §4.5.3.2 values where it gives one. RSET is bounded like
        /// MAIL (both are one command and its reply) and QUIT like connect (a best-effort
        /// goodbye), so neither needs a setting of its own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Timeouts {
            $(
                $(#[doc = $doc])*
                #[serde(with = "humantime_serde")]
                pub $phase: Duration,
            )*
            /// How long a reusable session may wait for its next transaction. The driver does
            /// not enforce it: the caller that holds the idle session does.
            #[serde(with = "humantime_serde")]
            pub idle: Duration,
        }

        impl Default for Timeouts {
            fn default() -> Self {
                Self {
                    $($phase: $default,)*
                    idle: Duration::from_secs(5),
                }
            }
        }

        impl Timeouts {
            /// All phases (and `idle`) with the same limit (handy in tests).
            pub fn uniform(limit: Duration) -> Self {
                Self {
                    $($phase: limit,)*
                    idle: limit,
                }
            }
        }

        /// The phases of [`Timeouts`], each optional: one layer of overrides (a shaping layer's
        /// `timeouts = { banner = "1m" }`). Unset phases are inherited from the layer below.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct PhaseTimeouts {
            $(
                #[serde(default, with = "humantime_serde", skip_serializing_if = "Option::is_none")]
                pub $phase: Option<Duration>,
            )*
        }

        impl PhaseTimeouts {
            /// Lays `over` on top: each phase it sets replaces this one's.
            pub fn merge(&mut self, over: &Self) {
                $(
                    if over.$phase.is_some() {
                        self.$phase = over.$phase;
                    }
                )*
            }

            /// The limits in force: the phases set here, the rest (and `idle`) from `base`.
            pub fn over(&self, base: &Timeouts) -> Timeouts {
                Timeouts {
                    $($phase: self.$phase.unwrap_or(base.$phase),)*
                    idle: base.idle,
                }
            }
        }
    };
}

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(60 * m)
}

session_timeouts! {
    connect = Duration::from_secs(30),
    /// The server's 220 greeting.
    banner = minutes(5),
    ehlo = minutes(5),
    /// The STARTTLS reply and the handshake.
    starttls = minutes(2),
    mail = minutes(5),
    rcpt = minutes(5),
    /// Waiting for 354 after DATA (or writing a BDAT command).
    data = minutes(2),
    /// Each body write and the final reply after the body.
    data_end = minutes(10),
}

impl Timeouts {
    /// The limit that applies to `phase`.
    pub fn for_phase(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Connect | Phase::Quit => self.connect,
            Phase::Banner => self.banner,
            Phase::Ehlo | Phase::Helo => self.ehlo,
            Phase::StartTls => self.starttls,
            Phase::Mail | Phase::Rset => self.mail,
            Phase::Rcpt => self.rcpt,
            Phase::Data => self.data,
            Phase::DataEnd => self.data_end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[delivery.timeouts]` and a shaping layer's `timeouts` used to be two hand-written copies
    /// of the phase list (plus a third in the driver); a layer now resolves over the base one
    /// phase at a time.
    #[test]
    fn a_layer_overrides_only_the_phases_it_sets() {
        let base = Timeouts::default();
        let layer: PhaseTimeouts = toml::from_str("banner = \"20s\"\ndata_end = \"1m\"").unwrap();
        let t = layer.over(&base);
        assert_eq!(t.banner, Duration::from_secs(20));
        assert_eq!(t.data_end, Duration::from_secs(60));
        assert_eq!(
            Timeouts {
                banner: base.banner,
                data_end: base.data_end,
                ..t
            },
            base
        );
        let mut lower = PhaseTimeouts {
            connect: Some(Duration::from_secs(1)),
            banner: Some(Duration::from_secs(2)),
            ..PhaseTimeouts::default()
        };
        lower.merge(&layer);
        assert_eq!(lower.connect, Some(Duration::from_secs(1)));
        assert_eq!(lower.banner, Some(Duration::from_secs(20)));
    }

    #[test]
    fn rset_and_quit_follow_mail_and_connect() {
        let t = Timeouts {
            mail: Duration::from_secs(7),
            connect: Duration::from_secs(3),
            ..Timeouts::default()
        };
        assert_eq!(t.for_phase(Phase::Rset), Duration::from_secs(7));
        assert_eq!(t.for_phase(Phase::Quit), Duration::from_secs(3));
    }

    #[test]
    fn tls_mode_names_are_the_configuration_ones() {
        #[derive(Deserialize, Serialize)]
        struct L {
            tls: TlsMode,
        }
        for (name, mode) in [
            ("opportunistic", TlsMode::Opportunistic),
            ("required", TlsMode::Required),
            ("disabled", TlsMode::Disabled),
        ] {
            let l: L = toml::from_str(&format!("tls = \"{name}\"")).unwrap();
            assert_eq!(l.tls, mode);
            assert_eq!(
                toml::to_string(&l).unwrap().trim(),
                format!("tls = \"{name}\"")
            );
        }
        assert!(toml::from_str::<L>("tls = \"required_verified\"").is_err());
    }
}
