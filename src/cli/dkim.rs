use anyhow::Context;
use cartero_dkim::{Algorithm, SigningKey};
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Alg {
    Rsa,
    Ed25519,
}

#[derive(Subcommand)]
pub enum DkimCmd {
    /// Generate a key: writes the private key (PEM) and prints the DNS TXT record to publish.
    Keygen {
        #[arg(long)]
        domain: String,
        #[arg(long)]
        selector: String,
        #[arg(long, value_enum, default_value = "rsa")]
        algorithm: Alg,
        /// Where to write the private key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
}

pub fn run(cmd: DkimCmd) -> anyhow::Result<()> {
    let DkimCmd::Keygen {
        domain,
        selector,
        algorithm,
        out,
    } = cmd;
    let alg = match algorithm {
        Alg::Rsa => Algorithm::RsaSha256,
        Alg::Ed25519 => Algorithm::Ed25519Sha256,
    };
    anyhow::ensure!(
        !out.exists(),
        "{} exists; not overwriting a key",
        out.display()
    );
    let (key, pem) = SigningKey::generate(alg, &domain, &selector).context("generating the key")?;
    std::fs::write(&out, pem).with_context(|| format!("writing {}", out.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("restricting {}", out.display()))?;
    }
    eprintln!("private key written to {}", out.display());
    println!("{}", key.dns_txt_record());
    Ok(())
}
