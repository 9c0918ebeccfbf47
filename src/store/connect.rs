//! Opening PostgreSQL connections, with TLS when the URL asks for it (managed databases such as
//! RDS require it). `sslmode` follows libpq: `disable` is plain; `prefer` and `require` encrypt
//! without checking the server's certificate; `verify-ca` and `verify-full` encrypt and verify
//! the certificate and host name against the public web roots plus the PEM bundle named by
//! `DATABASE_CA_FILE` (for RDS, Amazon's RDS CA bundle).

use std::path::Path;

use std::sync::{Arc, OnceLock};

use diesel::ConnectionError;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::config::DatabaseConfig;

/// How a URL wants its connection secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Encrypted; the certificate is not checked (libpq's `prefer` and `require`).
    Encrypt,
    /// Encrypted and verified (libpq's `verify-ca` and `verify-full`).
    Verify,
}

/// The URL without its `sslmode` parameter (which tokio-postgres only partly understands), and
/// the mode it named.
pub fn split_ssl_mode(url: &str) -> Result<(String, TlsMode), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), TlsMode::Disable));
    };
    let mut mode = TlsMode::Disable;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => {
                mode = match value {
                    "disable" | "allow" => TlsMode::Disable,
                    "prefer" | "require" => TlsMode::Encrypt,
                    "verify-ca" | "verify-full" => TlsMode::Verify,
                    other => return Err(format!("unknown sslmode {other:?}")),
                };
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, mode))
}

/// Opens one connection to `config.url` as its `sslmode` says.
pub async fn establish(config: &DatabaseConfig) -> Result<AsyncPgConnection, ConnectionError> {
    establish_url(&config.url, config.ca_file.as_deref()).await
}

/// Opens one connection to `url`, trusting `ca_file` too when verifying.
pub async fn establish_url(
    url: &str,
    ca_file: Option<&Path>,
) -> Result<AsyncPgConnection, ConnectionError> {
    let (url, mode) = split_ssl_mode(url).map_err(ConnectionError::BadConnection)?;
    if mode == TlsMode::Disable {
        return AsyncPgConnection::establish(&url).await;
    }
    let config = client_config(mode, ca_file).map_err(ConnectionError::BadConnection)?;
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let (client, connection) = tokio_postgres::connect(&url, tls)
        .await
        .map_err(|e| ConnectionError::BadConnection(e.to_string()))?;
    AsyncPgConnection::try_from_client_and_connection(client, connection).await
}

/// Makes rustls use `ring` for this process (once).
pub fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn client_config(mode: TlsMode, ca_file: Option<&Path>) -> Result<ClientConfig, String> {
    install_crypto_provider();
    let builder = ClientConfig::builder();
    let config = if mode == TlsMode::Verify {
        builder
            .with_root_certificates(roots(ca_file)?)
            .with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly))
            .with_no_client_auth()
    };
    Ok(config)
}

/// The public web roots plus the PEM bundle `ca_file`.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let failed =
            |e: &dyn std::fmt::Display| format!("DATABASE_CA_FILE {}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| failed(&e))?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            roots
                .add(cert.map_err(|e| failed(&e))?)
                .map_err(|e| failed(&e))?;
        }
    }
    Ok(roots)
}

/// libpq's `require`: the channel is encrypted, the server's identity is not checked.
#[derive(Debug)]
struct EncryptOnly;

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    // The handshake signatures are still checked: only the certificate's identity is not.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

fn algorithms() -> rustls::crypto::WebPkiSupportedAlgorithms {
    rustls::crypto::ring::default_provider().signature_verification_algorithms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_and_removed() {
        let (url, mode) = split_ssl_mode("postgres://u:p@h/db?sslmode=require").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://u:p@h/db", TlsMode::Encrypt)
        );
        let (url, mode) =
            split_ssl_mode("postgres://h/db?application_name=x&sslmode=verify-full").unwrap();
        assert_eq!(
            (url.as_str(), mode),
            ("postgres://h/db?application_name=x", TlsMode::Verify)
        );
        assert_eq!(
            split_ssl_mode("postgres://h/db").unwrap().1,
            TlsMode::Disable
        );
        assert!(split_ssl_mode("postgres://h/db?sslmode=sometimes").is_err());
    }
}
