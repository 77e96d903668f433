//! TLS of S3 requests: the system's CA store plus an optional CA file (PEM), with rustls and
//! its ring provider (the one bmsd uses for alerts, docs/alerts.md "TLS").

use std::path::Path;
use std::sync::Arc;

/// A rustls client configuration trusting the system roots and the certificates of `ca_file`.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(p) = ca_file {
        let pem = std::fs::read(p).map_err(|e| format!("S3 CA file {}: {e}", p.display()))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("S3 CA file {}: not PEM certificates: {e}", p.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "S3 CA file {}: no certificate in it (expected PEM 'BEGIN CERTIFICATE')",
                p.display()
            ));
        }
        for c in certs {
            roots
                .add(c)
                .map_err(|e| format!("S3 CA file {}: {e}", p.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
