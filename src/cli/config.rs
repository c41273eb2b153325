use anyhow::Context;
use cartero_campaign::config::CampaignConfig;
use cartero_dashboard::DashboardConfig;
use cartero_mta::MtaConfig;
use clap::Subcommand;
use std::path::Path;

#[derive(Subcommand)]
pub enum ConfigCmd {
    /// Parse a config file and report the first error with its line, or "ok".
    Check { file: std::path::PathBuf },
    /// Print the complete default configuration.
    Defaults,
}

/// The whole configuration file: the MTA's sections and `[campaign]`. The MTA's top-level keys
/// are listed again here (rather than flattened, which serde cannot combine with
/// `deny_unknown_fields`), so that an unknown key anywhere is reported with its line;
/// [`CarteroConfig::split`] names every field, so a key added to the MTA fails to compile
/// until it is added here too.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CarteroConfig {
    hostname: Option<String>,
    data_dir: Option<std::path::PathBuf>,
    smtp: cartero_mta::config::SmtpConfig,
    tls: cartero_mta::config::TlsConfig,
    http: cartero_mta::config::HttpConfig,
    delivery: cartero_mta::config::DeliveryConfig,
    dkim: cartero_mta::config::DkimConfig,
    events: cartero_mta::config::EventsConfig,
    shaping: cartero_shaping::ShapingConfig,
    inmail: cartero_mta::config::InMailConfig,
    bounce: cartero_mta::config::BounceConfig,
    campaign: CampaignConfig,
    dashboard: DashboardConfig,
}

/// The configuration of each part of a node.
pub type Parts = (MtaConfig, CampaignConfig, DashboardConfig);

impl CarteroConfig {
    pub fn split(self) -> Parts {
        let d = MtaConfig::default();
        let mta = MtaConfig {
            hostname: self.hostname.unwrap_or(d.hostname),
            data_dir: self.data_dir.unwrap_or(d.data_dir),
            smtp: self.smtp,
            tls: self.tls,
            http: self.http,
            delivery: self.delivery,
            dkim: self.dkim,
            events: self.events,
            shaping: self.shaping,
            inmail: self.inmail,
            bounce: self.bounce,
        };
        (mta, self.campaign, self.dashboard)
    }

    /// The defaults as they are printed and documented.
    pub fn defaults() -> Self {
        let d = MtaConfig::default();
        Self {
            hostname: Some(d.hostname),
            data_dir: Some(d.data_dir),
            smtp: d.smtp,
            tls: d.tls,
            http: d.http,
            delivery: d.delivery,
            dkim: d.dkim,
            events: d.events,
            shaping: d.shaping,
            inmail: d.inmail,
            bounce: d.bounce,
            campaign: CampaignConfig::default(),
            dashboard: DashboardConfig::default(),
        }
    }
}

/// Loads the config file, or the embedded defaults when none is given.
pub fn load(path: Option<&Path>) -> anyhow::Result<MtaConfig> {
    Ok(load_all(path)?.0)
}

/// Loads the MTA's, the campaign layer's and the dashboard's configuration.
pub fn load_all(path: Option<&Path>) -> anyhow::Result<Parts> {
    let Some(path) = path else {
        return Ok(CarteroConfig::defaults().split());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_all(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse_all(text: &str) -> anyhow::Result<Parts> {
    // toml's error already names the line, column and the offending key.
    let c: CarteroConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(c.split())
}

pub fn run(cmd: ConfigCmd, _global: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Check { file } => {
            let (cfg, campaign, dashboard) = load_all(Some(&file))?;
            // The same checks `serve` makes before it starts, files included.
            let warnings = cartero_mta::validate::validate(&cfg)
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
            campaign
                .validate()
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
            dashboard
                .validate()
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            println!("ok");
        }
        ConfigCmd::Defaults => {
            let text = toml::to_string_pretty(&CarteroConfig::defaults())
                .context("printing the defaults")?;
            print!("{text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_equals_the_defaults() {
        let example = parse_all(include_str!("../../docs/cartero.example.toml")).unwrap();
        assert_eq!(
            example,
            CarteroConfig::defaults().split(),
            "docs/cartero.example.toml drifted from the defaults"
        );
    }

    #[test]
    fn printed_defaults_parse_back() {
        let text = toml::to_string_pretty(&CarteroConfig::defaults()).unwrap();
        assert_eq!(parse_all(&text).unwrap(), CarteroConfig::defaults().split());
    }

    #[test]
    fn unknown_keys_are_reported_with_their_line() {
        let e = parse_all("hostname = \"a\"\n[smtp]\nmax_mesage_size = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_mesage_size") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse_all("[shaping.default]\nmax_message_rate = \"10/fortnight\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fortnight"), "{e}");
        let e = parse_all("[delivery]\nmax_validity = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_validity") || e.contains("soon"), "{e}");
    }
}
