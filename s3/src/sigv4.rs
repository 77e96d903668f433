//! AWS Signature Version 4 for S3 requests (docs/s3.md "Client"): the canonical request, the
//! string to sign and the `Authorization` header. Only what bms sends is covered: header-based
//! signing with the payload's SHA-256, no presigned URLs, no chunked (streaming) signatures.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::creds::Credentials;

type HmacSha256 = Hmac<Sha256>;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Hex SHA-256 of a payload (the `x-amz-content-sha256` header).
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Percent-encodes everything but the unreserved characters (RFC 3986); `/` too unless
/// `keep_slash` (object keys in paths keep theirs).
pub fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The canonical query string of `(name, value)` pairs (not yet encoded).
pub fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// One request to sign.
pub struct Request<'a> {
    pub method: &'a str,
    /// The encoded path, e.g. `/bucket/prefix/packs/ab/abcd`.
    pub path: &'a str,
    pub query: &'a [(String, String)],
    /// Headers to sign besides the ones this adds (lower-case names).
    pub headers: &'a [(String, String)],
    /// `host[:port]` as sent.
    pub host: &'a str,
    pub payload_sha256: &'a str,
}

/// The headers to send for `req` signed with `creds` at `now` (`x-amz-date`,
/// `x-amz-content-sha256`, `x-amz-security-token` when there is one, `authorization`).
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    now: jiff::Timestamp,
) -> Vec<(String, String)> {
    let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let mut headers: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    headers.push(("host".into(), req.host.to_owned()));
    headers.push(("x-amz-content-sha256".into(), req.payload_sha256.to_owned()));
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(t) = creds.session_token() {
        headers.push(("x-amz-security-token".into(), t.to_owned()));
    }
    headers.sort();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let signed = signed.join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed,
        req.payload_sha256
    );
    let scope = format!("{date}/{region}/s3/aws4_request");
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let mut key = zeroize::Zeroizing::new(format!("AWS4{}", creds.secret_key()).into_bytes());
    for part in [date, region, "s3", "aws4_request"] {
        key = zeroize::Zeroizing::new(hmac(&key, part.as_bytes()));
    }
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let auth = format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
        creds.access_key()
    );
    let mut out: Vec<(String, String)> = headers.into_iter().filter(|(k, _)| k != "host").collect();
    out.push(("authorization".into(), auth));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_like_s3_expects() {
        assert_eq!(uri_encode("a b/c~d", true), "a%20b/c~d");
        assert_eq!(uri_encode("a b/c", false), "a%20b%2Fc");
        assert_eq!(
            canonical_query(&[
                ("prefix".into(), "p/x".into()),
                ("list-type".into(), "2".into())
            ]),
            "list-type=2&prefix=p%2Fx"
        );
    }

    /// A signature is deterministic in its inputs and changes with every one of them; the
    /// secret never appears in the headers.
    #[test]
    fn signs_deterministically_without_leaking_the_secret() {
        let creds = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let now: jiff::Timestamp = "2013-05-24T00:00:00Z".parse().unwrap();
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &[("range".into(), "bytes=0-9".into())],
            host: "examplebucket.s3.amazonaws.com",
            payload_sha256: &sha256_hex(b""),
        };
        let a = sign(&req, &creds, "us-east-1", now);
        let b = sign(&req, &creds, "us-east-1", now);
        assert_eq!(a, b);
        let auth = &a.iter().find(|(k, _)| k == "authorization").unwrap().1;
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature="
        ));
        // The example of the S3 API reference for a signed GET with a Range header.
        assert!(
            auth.ends_with("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
            "{auth}"
        );
        let c = sign(&req, &creds, "eu-west-1", now);
        assert_ne!(a, c);
        for (_, v) in a.iter().chain(c.iter()) {
            assert!(!v.contains("wJalrXUtnFEMI"), "{v}");
        }
    }
}
