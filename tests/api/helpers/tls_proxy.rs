//! A TLS endpoint in front of PostgreSQL, as a managed database presents one: it answers the
//! client's `SSLRequest`, performs a real TLS handshake with a certificate for 127.0.0.1 signed
//! by its own CA, and forwards the decrypted stream to the real server. Clients that do not ask
//! for TLS are refused, like a server with `rds.force_ssl = 1`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The 8-byte SSLRequest: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

pub struct TlsProxy {
    pub address: SocketAddr,
    /// The PEM file of the CA that signed the proxy's certificate.
    pub ca_file: PathBuf,
}

impl TlsProxy {
    pub async fn start(upstream: String) -> Self {
        bosar_chat::store::connect::install_crypto_provider();
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().expect("server key");
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .expect("server cert");

        let ca_file =
            std::env::temp_dir().join(format!("bosar-test-ca-{}.pem", uuid::Uuid::new_v4()));
        std::fs::write(&ca_file, ca_cert.pem()).expect("write CA");

        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(vec![server_cert.der().clone()], key)
            .expect("server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, acceptor.clone(), upstream.clone()));
            }
        });
        Self { address, ca_file }
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.ca_file);
    }
}

async fn serve(mut client: TcpStream, acceptor: TlsAcceptor, upstream: String) {
    let mut request = [0u8; 8];
    if client.read_exact(&mut request).await.is_err() || request != SSL_REQUEST {
        return; // plain connections are refused
    }
    if client.write_all(b"S").await.is_err() {
        return;
    }
    let Ok(mut tls) = acceptor.accept(client).await else {
        return;
    };
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = copy_bidirectional(&mut tls, &mut server).await;
}
