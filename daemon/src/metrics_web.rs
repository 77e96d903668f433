//! The metrics endpoint's web options (docs/metrics.md, "TLS and basic auth"), in the style of
//! Prometheus' web configuration: an optional server certificate and key (HTTPS) and optional
//! users with bcrypt password hashes (HTTP basic auth). Both are off by default; the endpoint
//! binds to loopback unless `metrics_listen` says otherwise.

use base64::Engine;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The `[metrics]` table as written in bmsd.toml.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetricsFile {
    tls_cert_file: Option<PathBuf>,
    tls_key_file: Option<PathBuf>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
}

/// The endpoint's web options in force.
#[derive(Clone, PartialEq, Default)]
pub struct MetricsWeb {
    /// Certificate chain and private key files (PEM): HTTPS only when set.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// User name → bcrypt hash: basic auth required when not empty.
    pub users: BTreeMap<String, String>,
}

impl std::fmt::Debug for MetricsWeb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The hashes are not shown (they can be attacked offline).
        f.debug_struct("MetricsWeb")
            .field("tls", &self.tls)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl MetricsFile {
    /// Checks the table: both TLS files or neither, each readable and valid, the key readable by
    /// its owner only; every hash a bcrypt hash.
    pub fn resolve(self) -> Result<MetricsWeb, String> {
        let tls = match (self.tls_cert_file, self.tls_key_file) {
            (None, None) => None,
            (Some(c), Some(k)) => {
                server_config(&c, &k)?;
                Some((c, k))
            }
            (Some(_), None) => return Err(
                "tls_cert_file is set without tls_key_file: give both, or neither for plain HTTP"
                    .into(),
            ),
            (None, Some(_)) => return Err(
                "tls_key_file is set without tls_cert_file: give both, or neither for plain HTTP"
                    .into(),
            ),
        };
        for (user, hash) in &self.basic_auth_users {
            if user.is_empty() || user.contains(':') {
                return Err(format!(
                    "basic_auth_users: the user name '{user}' is empty or holds ':'"
                ));
            }
            if hash.parse::<bcrypt::HashParts>().is_err() {
                return Err(format!(
                    "basic_auth_users.{user}: not a bcrypt hash (it starts with $2b$, $2y$ or $2a$; make one with `htpasswd -nBC 10 {user}` or Python's bcrypt.hashpw)"
                ));
            }
        }
        Ok(MetricsWeb {
            tls,
            users: self.basic_auth_users,
        })
    }
}

/// A rustls server configuration from a PEM certificate chain and private key.
pub fn server_config(cert: &Path, key: &Path) -> Result<rustls::ServerConfig, String> {
    let pem = std::fs::read(cert).map_err(|e| format!("tls_cert_file {}: {e}", cert.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("tls_cert_file {}: not PEM: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls_cert_file {}: no certificate in it (expected PEM 'BEGIN CERTIFICATE')",
            cert.display()
        ));
    }
    let meta =
        std::fs::metadata(key).map_err(|e| format!("tls_key_file {}: {e}", key.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "tls_key_file {} is readable by others (mode {mode:04o}): run `chmod 600 {}`",
            key.display(),
            key.display()
        ));
    }
    let pem = std::fs::read(key).map_err(|e| format!("tls_key_file {}: {e}", key.display()))?;
    let der = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| format!("tls_key_file {}: not PEM: {e}", key.display()))?
        .ok_or_else(|| format!("tls_key_file {}: no private key in it", key.display()))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, der)
        .map_err(|e| {
            format!(
                "tls_cert_file {} and tls_key_file {}: {e}",
                cert.display(),
                key.display()
            )
        })
}

/// Credentials that passed, remembered by a digest of `user:password` so that a scrape every
/// few seconds does not pay bcrypt's cost each time. Cleared when the users change.
#[derive(Default)]
pub struct AuthCache {
    inner: Mutex<Passed>,
}

/// The users the remembered passes were checked against, and the passes.
type Passed = (BTreeMap<String, String>, HashSet<[u8; 32]>);

/// The most credentials remembered at once.
const CACHE_MAX: usize = 64;

impl AuthCache {
    /// Whether the request's `Authorization` header opens the endpoint for `users` (always, when
    /// there are no users).
    pub fn allows(&self, users: &BTreeMap<String, String>, head: &str) -> bool {
        if users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(head) else {
            return false;
        };
        let digest: [u8; 32] =
            sha2::Digest::finalize(<sha2::Sha256 as sha2::Digest>::new_with_prefix(
                format!("{user}:{password}").as_bytes(),
            ))
            .into();
        {
            let mut g = match self.inner.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if &g.0 != users {
                *g = (users.clone(), HashSet::new());
            }
            if g.1.contains(&digest) {
                return true;
            }
        }
        let ok = users
            .get(&user)
            .is_some_and(|h| bcrypt::verify(password.as_bytes(), h).unwrap_or(false));
        if ok {
            let mut g = match self.inner.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if g.1.len() >= CACHE_MAX {
                g.1.clear();
            }
            g.1.insert(digest);
        }
        ok
    }
}

/// The user and password of an `Authorization: Basic …` header in a request head.
fn basic_credentials(head: &str) -> Option<(String, String)> {
    let value = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| value.trim())
    })?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(auth: &str) -> String {
        format!("GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n")
    }

    #[test]
    fn basic_auth_checks_the_bcrypt_hash_and_remembers_a_pass() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let users = BTreeMap::from([("prom".to_owned(), hash)]);
        let cache = AuthCache::default();
        let good = base64::engine::general_purpose::STANDARD.encode("prom:s3cret");
        let bad = base64::engine::general_purpose::STANDARD.encode("prom:guess");
        let other = base64::engine::general_purpose::STANDARD.encode("root:s3cret");
        assert!(cache.allows(&users, &head(&format!("Basic {good}"))));
        assert!(cache.allows(&users, &head(&format!("basic {good}"))));
        assert!(!cache.allows(&users, &head(&format!("Basic {bad}"))));
        assert!(!cache.allows(&users, &head(&format!("Basic {other}"))));
        assert!(!cache.allows(&users, &head(&format!("Bearer {good}"))));
        assert!(!cache.allows(&users, "GET /metrics HTTP/1.1\r\n\r\n"));
        // A changed password forgets the remembered pass.
        let users2 = BTreeMap::from([("prom".to_owned(), bcrypt::hash("new", 4).unwrap())]);
        assert!(!cache.allows(&users2, &head(&format!("Basic {good}"))));
        assert!(cache.allows(&BTreeMap::new(), "GET / HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn the_table_refuses_half_tls_and_plain_passwords() {
        let half = MetricsFile {
            tls_cert_file: Some("/x.pem".into()),
            ..Default::default()
        };
        assert!(half.resolve().unwrap_err().contains("without tls_key_file"));
        let plain = MetricsFile {
            basic_auth_users: BTreeMap::from([("prom".into(), "hunter2".into())]),
            ..Default::default()
        };
        let e = plain.resolve().unwrap_err();
        assert!(
            e.contains("not a bcrypt hash") && !e.contains("hunter2"),
            "{e}"
        );
        let debug = format!(
            "{:?}",
            MetricsWeb {
                tls: None,
                users: BTreeMap::from([("p".into(), "$2b$04$abc".into())])
            }
        );
        assert!(!debug.contains("$2b$"), "{debug}");
    }
}
