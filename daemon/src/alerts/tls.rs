//! TLS for alert delivery (docs/alerts.md, "TLS"): one rustls crypto provider (ring) for SMTP
//! (lettre) and HTTPS (reqwest); the system's CA store (rustls-native-certs, so that the
//! distribution's updates of /etc/ssl/certs apply) plus an optional `tls_ca_file` of the channel.

use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// Makes ring the process's rustls provider (lettre asks for the default one). Idempotent.
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The certificates of a PEM file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("tls_ca_file {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_ca_file {}: not PEM certificates: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_ca_file {}: no certificate in it (expected PEM 'BEGIN CERTIFICATE')",
            path.display()
        ));
    }
    Ok(certs)
}

/// A rustls client configuration for HTTPS with the system roots and `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(p) = ca_file {
        for c in read_ca_file(p)? {
            roots
                .add(c)
                .map_err(|e| format!("tls_ca_file {}: {e}", p.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
