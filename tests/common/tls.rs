//! Certificates made for a test (rcgen) and a rustls client configuration that trusts them.

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

/// A CA, a server certificate for 127.0.0.1/localhost signed by it, and PEM files of both in a
/// temporary directory.
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    /// The CA certificate, PEM.
    pub ca_pem: String,
    /// Files: `ca.pem`, `server.pem`, `server.key`.
    pub dir: tempfile::TempDir,
}

/// A client certificate and its key, PEM.
pub struct ClientCert {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Pki {
    /// A new CA named `name` and a server certificate signed by it.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut sp =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        sp.distinguished_name.push(DnType::CommonName, "localhost");
        let server = sp.signed_by(&server_key, &ca).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key.serialize_pem()).unwrap();
        Pki {
            ca_pem: ca.pem(),
            ca,
            dir,
        }
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// A client certificate whose subject CN is `cn`, signed by this CA.
    pub fn client(&self, cn: &str) -> ClientCert {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.ca).unwrap();
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// `JUNCTION_TLS_*` settings for a broker presenting the server certificate, asking for
    /// client certificates (`verify = "peer"`, not required) with certificate login.
    pub fn broker_env(&self) -> Vec<(String, String)> {
        let p = |f: &str| self.path(f).display().to_string();
        vec![
            ("JUNCTION_TLS_CERT_FILE".into(), p("server.pem")),
            ("JUNCTION_TLS_KEY_FILE".into(), p("server.key")),
            ("JUNCTION_TLS_CA_FILE".into(), p("ca.pem")),
            ("JUNCTION_TLS_VERIFY".into(), "peer".into()),
            ("JUNCTION_TLS_CERT_LOGIN".into(), "true".into()),
        ]
    }

    /// A rustls client configuration trusting this CA, presenting `cert` if given.
    pub fn client_config(&self, cert: Option<&ClientCert>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let b = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match cert {
            None => b.with_no_client_auth(),
            Some(c) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(c.cert_pem.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(c.key_pem.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        Arc::new(config)
    }

    /// A TLS connection to `addr` (server name 127.0.0.1), presenting `cert` if given.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        cert: Option<&ClientCert>,
    ) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(self.client_config(cert));
        let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
        connector.connect(name, tcp).await
    }
}
