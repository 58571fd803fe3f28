//! The TLS server configuration of SSL and SASL_SSL listeners, rebuilt from its PEM files
//! when their modification times change (checked as each connection arrives), so certificates
//! rotate without a restart. A rebuild that fails keeps the previous configuration.
//! Also the client configuration a node dials other nodes' TLS listeners with
//! (`ClientTlsSource`, reloaded the same way as connections are opened).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Most certificates read from one PEM file (chain or CA bundle).
const PEM_CERTIFICATES_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {path}: {source}")]
    Pem {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds more than {PEM_CERTIFICATES_MAX} certificates")]
    TooManyCertificates { path: PathBuf },
    #[error("building the TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client CA verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0} is not set")]
    Missing(String),
}

/// The PEM files a TLS configuration is built from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

struct Loaded {
    mtimes: Vec<Option<SystemTime>>,
    config: Arc<ServerConfig>,
}

/// Hands out the current server configuration; reloads when a file changed.
pub struct TlsSource {
    files: TlsFiles,
    loaded: Mutex<Loaded>,
}

impl TlsSource {
    /// Loads the files once; a broker whose certificates do not load does not start.
    pub fn open(files: TlsFiles) -> Result<TlsSource, TlsError> {
        let mtimes = mtimes(&files);
        let config = Arc::new(build(&files)?);
        Ok(TlsSource {
            files,
            loaded: Mutex::new(Loaded { mtimes, config }),
        })
    }

    /// Whether client certificates are required (mTLS).
    pub fn requires_client_certificates(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// The configuration for a new connection, rebuilt first if a file changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = mtimes(&self.files);
        let mut loaded = match self.loaded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if now != loaded.mtimes {
            // Remember the new times even when the build fails: a half-written file is
            // retried on its next change, not on every connection.
            loaded.mtimes = now;
            match build(&self.files) {
                Ok(config) => {
                    tracing::info!(certificate = %self.files.certificate.display(), "TLS certificates reloaded");
                    loaded.config = Arc::new(config);
                }
                Err(error) => {
                    tracing::error!(%error, "reloading TLS certificates failed; keeping the old ones")
                }
            }
        }
        loaded.config.clone()
    }
}

/// The client configuration of inter-broker connections, rebuilt from its PEM files when
/// their modification times change (checked as each connection is opened); a rebuild that
/// fails keeps the previous configuration.
pub struct ClientTlsSource {
    trusted_ca: PathBuf,
    identity: Option<(PathBuf, PathBuf)>,
    loaded: Mutex<(Vec<Option<SystemTime>>, Arc<ClientConfig>)>,
}

impl ClientTlsSource {
    /// Loads the files once; a node whose certificates do not load does not start.
    pub fn open(
        trusted_ca: PathBuf,
        identity: Option<(PathBuf, PathBuf)>,
    ) -> Result<ClientTlsSource, TlsError> {
        let config = build_client(&trusted_ca, identity.as_ref())?;
        let mtimes = client_mtimes(&trusted_ca, identity.as_ref());
        Ok(ClientTlsSource {
            trusted_ca,
            identity,
            loaded: Mutex::new((mtimes, Arc::new(config))),
        })
    }

    /// The configuration for a new connection, rebuilt first if a file changed.
    pub fn current(&self) -> Arc<ClientConfig> {
        let now = client_mtimes(&self.trusted_ca, self.identity.as_ref());
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if now != loaded.0 {
            // As for the server side: a half-written file is retried on its next change.
            loaded.0 = now;
            match build_client(&self.trusted_ca, self.identity.as_ref()) {
                Ok(config) => {
                    tracing::info!(ca = %self.trusted_ca.display(), "inter-broker TLS certificates reloaded");
                    loaded.1 = Arc::new(config);
                }
                Err(error) => {
                    tracing::error!(%error, "reloading inter-broker TLS certificates failed; keeping the old ones")
                }
            }
        }
        loaded.1.clone()
    }
}

fn client_mtimes(ca: &Path, identity: Option<&(PathBuf, PathBuf)>) -> Vec<Option<SystemTime>> {
    let mut times = vec![mtime(ca)];
    if let Some((certificate, key)) = identity {
        times.extend([mtime(certificate), mtime(key)]);
    }
    times
}

fn build_client(
    ca: &Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<ClientConfig, TlsError> {
    let identity = identity.map(|(certificate, key)| (certificate.as_path(), key.as_path()));
    client_config(ca, identity)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn mtimes(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let mtime = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let mut times = vec![mtime(&files.certificate), mtime(&files.key)];
    if let Some(ca) = &files.client_ca {
        times.push(mtime(ca));
    }
    times
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |source| TlsError::Pem {
        path: path.to_path_buf(),
        source,
    };
    let mut certificates = Vec::new();
    for certificate in CertificateDer::pem_file_iter(path).map_err(pem_error)? {
        if certificates.len() == PEM_CERTIFICATES_MAX {
            return Err(TlsError::TooManyCertificates {
                path: path.to_path_buf(),
            });
        }
        certificates.push(certificate.map_err(pem_error)?);
    }
    if certificates.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certificates)
}

/// Mutual TLS for the Raft port (--raft-tls): the node's certificate both ways, the
/// inter-broker trusted CA both ways.
pub fn raft_tls(
    config: &crate::config::Config,
) -> Result<sluice_raft::network::transport::RaftTls, TlsError> {
    let missing = |what: &str| TlsError::Missing(what.to_string());
    let certificate = config
        .ssl_certificate_file
        .clone()
        .ok_or_else(|| missing("--ssl-certificate-file"))?;
    let key = config
        .ssl_key_file
        .clone()
        .ok_or_else(|| missing("--ssl-key-file"))?;
    let ca = config
        .inter_broker_trusted_ca()
        .ok_or_else(|| missing("--ssl-truststore-file"))?
        .to_path_buf();
    let client = client_config(&ca, Some((&certificate, &key)))?;
    let server = build(&TlsFiles {
        certificate,
        key,
        client_ca: Some(ca),
    })?;
    Ok(sluice_raft::network::transport::RaftTls {
        server: Arc::new(server),
        client: Arc::new(client),
    })
}

fn build(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates(&files.certificate)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|source| TlsError::Pem {
        path: files.key.clone(),
        source,
    })?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &files.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for certificate in certificates(path)? {
                roots.add(certificate)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(builder.with_single_cert(chain, key)?)
}

/// The configuration a node dials other nodes with: it trusts the certificates `trusted_ca`
/// signed (the server name checked is the peer's advertised host), and presents
/// `identity` (certificate chain, key) when a peer asks for a client certificate (mTLS).
pub fn client_config(
    trusted_ca: &Path,
    identity: Option<(&Path, &Path)>,
) -> Result<ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for certificate in certificates(trusted_ca)? {
        roots.add(certificate)?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let Some((certificate, key)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = certificates(certificate)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
        path: key.to_path_buf(),
        source,
    })?;
    Ok(builder.with_client_auth_cert(chain, key)?)
}
