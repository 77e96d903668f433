//! Delivering one notice to one channel (docs/alerts.md, "Channels"). Every attempt has a time
//! limit; the outcome is the HTTP status or the SMTP reply. Error texts never carry a secret:
//! URLs are left out of reqwest's errors and shown redacted (`https://host/***`).

use super::config::{Channel, ChannelKind, Email, Http, SmtpTls};
use super::notice::View;
use hmac::{Hmac, Mac};
use lettre::message::{header::ContentType, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;
use std::time::Duration;

/// The signature header of the generic webhook: `sha256=` and the hex HMAC-SHA256 of the body.
pub const SIGNATURE_HEADER: &str = "X-Bms-Signature";

/// `https://host/***`: enough to tell which endpoint, without its secret path or query.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}/***")
}

/// Sends `payload` (a notice of docs/alerts.md) to `channel`; `ping` is the ping's suffix event.
pub async fn deliver(
    channel: &Channel,
    payload: &str,
    timeout: Duration,
) -> Result<String, String> {
    let work = async {
        match &channel.kind {
            ChannelKind::Email(e) => email(e, payload, timeout).await,
            ChannelKind::Teams(h) => {
                let body = View::parse(payload).teams().to_string();
                post(h, None, body, timeout).await
            }
            ChannelKind::Webhook(h) => post(h, None, payload.to_owned(), timeout).await,
            ChannelKind::Ping(h) => {
                let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
                let suffix = match v["ping"].as_str() {
                    Some("start") => "/start",
                    Some("fail") => "/fail",
                    _ => "",
                };
                let body = v["message"].as_str().unwrap_or("").to_owned();
                post(h, Some(suffix), body, timeout).await
            }
        }
    };
    match tokio::time::timeout(timeout + Duration::from_secs(1), work).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {} s", timeout.as_secs())),
    }
}

fn sign(key: &str, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key.as_bytes()) else {
        return String::new();
    };
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

async fn post(
    h: &Http,
    suffix: Option<&str>,
    body: String,
    timeout: Duration,
) -> Result<String, String> {
    let tls = super::tls::client_config(h.ca_file.as_deref())?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("bmsd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up HTTP: {}", e.without_url()))?;
    let base = h.url.expose().trim_end_matches('/');
    let url = match suffix {
        Some(s) => format!("{base}{s}"),
        None => h.url.expose().to_owned(),
    };
    let shown = redact_url(&url);
    let mut req = client.post(&url).header(
        reqwest::header::CONTENT_TYPE,
        if suffix.is_some() {
            "text/plain; charset=utf-8"
        } else {
            "application/json"
        },
    );
    if let Some(secret) = &h.secret {
        req = req.header(SIGNATURE_HEADER, sign(secret.expose(), &body));
    }
    let resp = req
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {shown}: {}", describe(e)))?;
    let status = resp.status();
    if status.is_success() {
        Ok(format!("HTTP {}", status.as_u16()))
    } else {
        Err(format!("POST {shown}: HTTP {status}"))
    }
}

/// reqwest's error without the URL, with its cause (connection refused, timed out...).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

async fn email(e: &Email, payload: &str, timeout: Duration) -> Result<String, String> {
    let view = View::parse(payload);
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|x| format!("from {}: {x}", e.from))?;
    let mut b = Message::builder().from(from).subject(view.title());
    for to in &e.to {
        let m: Mailbox = to.parse().map_err(|x| format!("to {to}: {x}"))?;
        b = b.to(m);
    }
    let msg = b
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(view.text()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(view.html()),
                ),
        )
        .map_err(|x| format!("cannot build the message: {x}"))?;
    send_mail(e, msg, timeout).await
}

/// Mails a report (docs/reports.md, "Scheduled reports") through the channel's server and
/// sender: `text` as the body with `html` as its alternative, and each attachment (file name,
/// MIME type, content). `to` replaces the channel's recipients when not empty.
pub async fn mail_report(
    e: &Email,
    to: &[String],
    subject: &str,
    text: String,
    html: Option<String>,
    attachments: Vec<(String, &'static str, Vec<u8>)>,
    timeout: Duration,
) -> Result<String, String> {
    let from: Mailbox = e
        .from
        .parse()
        .map_err(|x| format!("from {}: {x}", e.from))?;
    let mut b = Message::builder().from(from).subject(subject);
    for rcpt in if to.is_empty() { &e.to[..] } else { to } {
        let m: Mailbox = rcpt.parse().map_err(|x| format!("to {rcpt}: {x}"))?;
        b = b.to(m);
    }
    let plain = SinglePart::builder()
        .header(ContentType::TEXT_PLAIN)
        .body(text);
    let body = match html {
        Some(h) => MultiPart::alternative()
            .singlepart(plain)
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(h)),
        None => MultiPart::mixed().singlepart(plain),
    };
    let mut all = MultiPart::mixed().multipart(body);
    for (name, mime, data) in attachments {
        let ct = ContentType::parse(mime).map_err(|x| format!("content type {mime}: {x}"))?;
        all = all.singlepart(Attachment::new(name).body(data, ct));
    }
    let msg = b
        .multipart(all)
        .map_err(|x| format!("cannot build the message: {x}"))?;
    send_mail(e, msg, timeout).await
}

/// Sends `msg` through the channel's SMTP server (TLS mode, CA, credentials) and returns the
/// server's reply.
async fn send_mail(e: &Email, msg: Message, timeout: Duration) -> Result<String, String> {
    let tls = match e.tls {
        SmtpTls::Plain => Tls::None,
        mode => {
            let mut p = TlsParameters::builder(e.host.clone());
            if let Some(f) = &e.ca_file {
                let pem =
                    std::fs::read(f).map_err(|x| format!("tls_ca_file {}: {x}", f.display()))?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|x| format!("tls_ca_file {}: {x}", f.display()))?;
                p = p.add_root_certificate(cert);
            }
            let p = p.build_rustls().map_err(|x| format!("TLS setup: {x}"))?;
            if mode == SmtpTls::Implicit {
                Tls::Wrapper(p)
            } else {
                Tls::Required(p)
            }
        }
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(e.host.clone())
        .port(e.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let (Some(u), Some(p)) = (&e.username, &e.password) {
        t = t.credentials(Credentials::new(u.clone(), p.expose().to_owned()));
    }
    let transport = t.build();
    let who = format!("SMTP {}:{}", e.host, e.port);
    match transport.send(msg).await {
        Ok(r) => Ok(format!(
            "{who}: {} {}",
            r.code(),
            r.message().collect::<Vec<_>>().join(" ")
        )),
        Err(x) => Err(format!("{who}: {x}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted_to_scheme_and_host() {
        assert_eq!(
            redact_url("https://x.webhook.office.com/webhookb2/abc?sig=1"),
            "https://x.webhook.office.com/***"
        );
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:8/a"),
            "http://127.0.0.1:8/***"
        );
    }

    #[test]
    fn signature_is_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
