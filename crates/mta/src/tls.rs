//! TLS for the listeners: the configured certificate, or a self-signed one generated at first start
//! (so STARTTLS is always available, as SPEC §2.1 and the security rules require).

use crate::config::TlsConfig;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {}", pem_text(.source))]
    Read {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{0}: no certificate found")]
    NoCertificate(PathBuf),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("tls.cert and tls.key must be set together")]
    Incomplete,
}

/// A PEM error an operator can read: the library prints the offending lines as byte arrays.
fn pem_text(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match e {
        Error::MissingSectionEnd { end_marker } => {
            format!(
                "the section has no \"-----END {}-----\" line",
                text(end_marker)
            )
        }
        Error::IllegalSectionStart { line } => {
            format!("malformed section start line \"{}\"", text(line))
        }
        Error::Base64Decode(d) => format!("bad base64 inside a PEM section ({d})"),
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM section found".into(),
        other => other.to_string(),
    }
}

/// Certificate and key paths to use: configured ones, or generated under `data_dir/tls/`.
pub fn ensure_certificate(
    cfg: &TlsConfig,
    data_dir: &Path,
    hostname: &str,
) -> Result<(PathBuf, PathBuf), TlsError> {
    match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => return Ok((c.clone(), k.clone())),
        (None, None) => {}
        _ => return Err(TlsError::Incomplete),
    }
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    private_dir(&dir).map_err(write_err(&dir))?;
    // Loopback names too: the CLI reaches a local HTTPS listener as 127.0.0.1 or localhost.
    let names = [hostname, "localhost", "127.0.0.1", "::1"].map(str::to_string);
    let ck = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_secret_file(&key, ck.signing_key.serialize_pem().as_bytes()).map_err(write_err(&key))?;
    std::fs::write(&cert, ck.cert.pem()).map_err(write_err(&cert))?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}

/// The acceptor of the configured certificate, or of the one generated into `data_dir/tls/`.
pub(crate) fn acceptor(cfg: &crate::MtaConfig) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    let (cert, key) = ensure_certificate(&cfg.tls, &cfg.data_dir, &cfg.hostname)?;
    Ok(tokio_rustls::TlsAcceptor::from(server_config(&cert, &key)?))
}

/// Creates a directory (and its parents) readable by the MTA's user only: `data_dir` holds the
/// spool, keys and events.
pub(crate) use cartero_spool::private_dir;

pub(crate) fn write_secret_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = cartero_spool::private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Builds the server-side TLS configuration from PEM files.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Read { path, source }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(read_err(cert))?
        .collect::<Result<_, _>>()
        .map_err(read_err(cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(read_err(key))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificate_is_generated_once_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = ensure_certificate(&TlsConfig::default(), dir.path(), "mx.test").unwrap();
        let first = std::fs::read(&c).unwrap();
        let (c2, _) = ensure_certificate(&TlsConfig::default(), dir.path(), "mx.test").unwrap();
        assert_eq!(
            first,
            std::fs::read(&c2).unwrap(),
            "a second start must reuse the certificate"
        );
        assert!(server_config(&c, &k).is_ok());
    }

    #[test]
    fn half_configured_tls_is_an_error() {
        let cfg = TlsConfig {
            cert: Some("x.pem".into()),
            key: None,
        };
        assert!(matches!(
            ensure_certificate(&cfg, Path::new("/nonexistent"), "h"),
            Err(TlsError::Incomplete)
        ));
    }

    #[test]
    fn missing_files_give_a_clear_error() {
        let e = server_config(
            Path::new("/nonexistent/c.pem"),
            Path::new("/nonexistent/k.pem"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/c.pem"), "{e}");
    }
}
