//! A TLS front for a running hub, standing in for the ingress a remote hub sits behind: a
//! private CA (written to a PEM file a client can trust through `SSL_CERT_FILE`) and a
//! certificate for `localhost` signed by it. Each accepted connection is decrypted and piped to
//! the hub's plain HTTP port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

pub struct TlsFront {
    /// `https://localhost:<port>`.
    pub url: String,
    /// The CA certificate that signed the front's certificate, in PEM.
    pub ca_file: PathBuf,
    task: JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(backend: SocketAddr, dir: &Path) -> TlsFront {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = dir.join("test-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();

        llm_mcp_hub::tls::install_crypto_provider();
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront {
            url: format!("https://localhost:{port}"),
            ca_file,
            task,
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// PEM files of a private CA and of a server certificate it signed for `localhost` and
/// 127.0.0.1, for servers run by tests (`redis-server --tls-port`).
pub struct TestCerts {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCerts {
    pub fn write(dir: &Path) -> TestCerts {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let certs = TestCerts {
            ca_file: dir.join("test-ca.pem"),
            cert_file: dir.join("server.pem"),
            key_file: dir.join("server-key.pem"),
        };
        std::fs::write(&certs.ca_file, ca.pem()).unwrap();
        std::fs::write(&certs.cert_file, leaf.pem()).unwrap();
        std::fs::write(&certs.key_file, leaf_key.serialize_pem()).unwrap();
        certs
    }
}
