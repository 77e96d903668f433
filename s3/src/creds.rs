//! S3 credentials (docs/s3.md "Credentials"): from a file in the AWS shared-credentials format
//! (mode 0600 or stricter, owned by the user bmsd runs as) or from bmsd's environment. The secret
//! is never formatted: `Debug` redacts it and no message quotes it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use zeroize::Zeroizing;

/// An access key and its secret.
#[derive(Clone)]
pub struct Credentials {
    access_key: String,
    secret_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key: &str, secret_key: &str, session_token: Option<&str>) -> Self {
        Credentials {
            access_key: access_key.to_owned(),
            secret_key: Zeroizing::new(secret_key.to_owned()),
            session_token: session_token.map(|t| Zeroizing::new(t.to_owned())),
        }
    }

    pub fn access_key(&self) -> &str {
        &self.access_key
    }

    pub(crate) fn secret_key(&self) -> &str {
        &self.secret_key
    }

    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }

    /// Reads profile `profile` of a shared-credentials file. The file must not be readable by
    /// group or others; errors name the file and what to change, never a value from it.
    pub fn from_file(path: &Path, profile: &str) -> Result<Credentials, String> {
        let meta = std::fs::metadata(path).map_err(|e| {
            format!(
                "cannot read the S3 credentials file {}: {e}; create it (mode 0600) with \
                 [{profile}] aws_access_key_id = … and aws_secret_access_key = …",
                path.display()
            )
        })?;
        if meta.mode() & 0o077 != 0 {
            return Err(format!(
                "the S3 credentials file {} is accessible by group or others (mode {:o}): \
                 restrict it with `chmod 600 {}`",
                path.display(),
                meta.mode() & 0o777,
                path.display()
            ));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read the S3 credentials file {}: {e}",
                path.display()
            )
        })?);
        parse(&text, profile).ok_or_else(|| {
            format!(
                "the S3 credentials file {} has no profile [{profile}] with both \
                 aws_access_key_id and aws_secret_access_key: add them",
                path.display()
            )
        })
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and (optional) `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Credentials, String> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|v| !v.is_empty());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .ok()
            .filter(|v| !v.is_empty())
            .map(Zeroizing::new);
        match (id, secret) {
            (Some(id), Some(secret)) => Ok(Credentials::new(
                &id,
                &secret,
                std::env::var("AWS_SESSION_TOKEN").ok().as_deref(),
            )),
            _ => Err("no S3 credentials: give the target a credentials file \
                      (--credentials-file FILE, AWS shared-credentials format, mode 0600) or set \
                      AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in bmsd's environment"
                .into()),
        }
    }
}

/// The keys of `[profile]` in shared-credentials text (`key = value` lines, `#`/`;` comments).
fn parse(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            in_profile = name == profile || name == format!("profile {profile}");
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(Zeroizing::new(v)),
                "aws_session_token" => token = Some(Zeroizing::new(v)),
                _ => {}
            }
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => Some(Credentials::new(
            &id,
            &secret,
            token.as_deref().map(String::as_str),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn reads_the_profile_and_refuses_open_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("creds");
        std::fs::write(
            &f,
            "[other]\naws_access_key_id = X\naws_secret_access_key = Y\n\n[default]\n\
             # comment\naws_access_key_id = AK\naws_secret_access_key = s3cr3t-value\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Credentials::from_file(&f, "default").unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Credentials::from_file(&f, "default").unwrap();
        assert_eq!(c.access_key(), "AK");
        assert_eq!(c.secret_key(), "s3cr3t-value");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = Credentials::from_file(&f, "nope").unwrap_err();
        assert!(e.contains("[nope]") && !e.contains("s3cr3t"), "{e}");
    }
}
