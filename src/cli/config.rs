use anyhow::Context;
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

/// Loads the config file, or the embedded defaults when none is given.
pub fn load(path: Option<&Path>) -> anyhow::Result<MtaConfig> {
    let Some(path) = path else {
        return Ok(MtaConfig::default());
    };
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<MtaConfig> {
    // toml's error already names the line, column and the offending key.
    toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))
}

pub fn run(cmd: ConfigCmd, _global: Option<&Path>) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Check { file } => {
            let cfg = load(Some(&file))?;
            // The same checks `serve` makes before it starts, files included.
            let warnings = cartero_mta::validate::validate(&cfg)
                .map_err(|e| anyhow::anyhow!("{}:\n{e}", file.display()))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            println!("ok");
        }
        ConfigCmd::Defaults => {
            let text =
                toml::to_string_pretty(&MtaConfig::default()).context("printing the defaults")?;
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
        let example = parse(include_str!("../../docs/cartero.example.toml")).unwrap();
        assert_eq!(
            example,
            MtaConfig::default(),
            "docs/cartero.example.toml drifted from the defaults"
        );
    }

    #[test]
    fn printed_defaults_parse_back() {
        let text = toml::to_string_pretty(&MtaConfig::default()).unwrap();
        assert_eq!(parse(&text).unwrap(), MtaConfig::default());
    }

    #[test]
    fn unknown_keys_are_reported_with_their_line() {
        let e = parse("hostname = \"a\"\n[smtp]\nmax_mesage_size = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_mesage_size") && e.contains("line 3"), "{e}");
    }

    #[test]
    fn bad_values_are_explained() {
        let e = parse("[shaping.default]\nmax_message_rate = \"10/fortnight\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("fortnight"), "{e}");
        let e = parse("[delivery]\nmax_validity = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_validity") || e.contains("soon"), "{e}");
    }
}
