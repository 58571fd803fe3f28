//! Authentication: TLS (with optional client certificates), SASL/PLAIN and SASL/SCRAM, and
//! the rate limit on failed logins; authorisation against ACLs (`authorizer`).

pub mod authorizer;
pub mod cert_name;
pub mod plain;
pub mod rate_limit;
pub mod scram;
pub mod tls;

use std::sync::Arc;

use anyhow::Context;

use crate::config::Config;

/// The principal every unauthenticated (PLAINTEXT, or SSL without client certificates)
/// connection has, as Kafka names it.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// A password from a flag or the environment: its `Debug` never shows it, so a logged
/// configuration does not leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

/// What every listener shares: certificates, PLAIN users, the failed-login limiter.
pub struct Security {
    pub tls: Option<Arc<tls::TlsSource>>,
    pub plain_users: Option<plain::PlainUsers>,
    pub failures: rate_limit::FailureLimiter,
    /// `Some` when --authorizer-class-name turns ACLs on.
    pub authorizer: Option<authorizer::Authorizer>,
}

impl Security {
    pub fn open(config: &Config) -> anyhow::Result<Security> {
        let tls = match (&config.ssl_certificate_file, &config.ssl_key_file) {
            (Some(certificate), Some(key)) => {
                let files = tls::TlsFiles {
                    certificate: certificate.clone(),
                    key: key.clone(),
                    client_ca: config.ssl_client_ca_file.clone(),
                };
                Some(Arc::new(
                    tls::TlsSource::open(files).context("loading TLS certificates")?,
                ))
            }
            _ => None,
        };
        let plain_users = match &config.sasl_plain_users_file {
            Some(path) => Some(
                plain::PlainUsers::open(path.clone())
                    .with_context(|| format!("reading {}", path.display()))?,
            ),
            None => None,
        };
        Ok(Security {
            tls,
            plain_users,
            failures: rate_limit::FailureLimiter::default(),
            authorizer: config.authorizer_class_name.as_ref().map(|_| {
                authorizer::Authorizer::new(
                    &config.super_users,
                    config.allow_everyone_if_no_acl_found,
                )
            }),
        })
    }

    /// The SASL mechanisms offered, in Kafka's spelling.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        let mut mechanisms = vec!["SCRAM-SHA-256", "SCRAM-SHA-512"];
        if self.plain_users.is_some() {
            mechanisms.push("PLAIN");
        }
        mechanisms
    }
}
