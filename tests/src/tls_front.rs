//! A TLS front for a plain HTTP server on loopback (docs/s3.md "TLS"): it terminates TLS with
//! the test certificates of `tests/fixtures/tls` (a server certificate signed by a private CA)
//! and forwards the bytes to the server, so that bmsd reaches moto over `https://` as it would
//! an endpoint with a private CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The directory of the test certificates: `ca.pem` (the private CA), `server.pem` and
/// `server.key` (signed by it, for 127.0.0.1 and localhost), `other-ca.pem` (an unrelated CA).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/tls")
}

/// A TLS listener on a free loopback port; stops when dropped.
pub struct TlsFront {
    pub port: u16,
    rt: Option<tokio::runtime::Runtime>,
}

impl TlsFront {
    /// Listens on a free loopback port and forwards every connection, after the TLS handshake,
    /// to `upstream` on loopback. Handshakes the client refuses end the connection.
    pub fn start(upstream: u16) -> TlsFront {
        let dir = fixtures();
        let cert = std::fs::read(dir.join("server.pem")).expect("server.pem");
        let key = std::fs::read(dir.join("server.key")).expect("server.key");
        let certs = rustls_pemfile::certs(&mut cert.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .expect("server certificate");
        let key = rustls_pemfile::private_key(&mut key.as_slice())
            .expect("server key")
            .expect("a key in server.key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server certificate and key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("TLS front listen");
        let port = listener.local_addr().expect("addr").port();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut up) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                });
            }
        });
        TlsFront { port, rt: Some(rt) }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}
