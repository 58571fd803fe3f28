//! Certificates made by the test itself with the `openssl` CLI: a CA, a server certificate
//! for 127.0.0.1/localhost, and client certificates (for mTLS) with a given CN. EC P-256
//! keys in PKCS#8 PEM, which rustls, librdkafka, Python's ssl and Java all read.

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// Certificate files in a temporary directory (deleted on drop).
pub struct Certs {
    dir: TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install the openssl CLI)");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn key(dir: &Path, name: &str) {
    openssl(
        dir,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            name,
        ],
    );
}

impl Certs {
    /// A CA, and a server certificate it signed for IP 127.0.0.1 and DNS localhost.
    pub fn generate() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("sluice-certs-")
            .tempdir()
            .expect("tempdir");
        let path = dir.path();
        key(path, "ca.key");
        openssl(
            path,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "ca.key",
                "-days",
                "2",
                "-subj",
                "/CN=sluice test CA",
                "-out",
                "ca.pem",
            ],
        );
        let certs = Certs { dir };
        certs.leaf(
            "server",
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
            "2",
        );
        certs
    }

    /// Broker flags for PLAINTEXT, SASL_SSL and SASL_PLAINTEXT listeners (in that order) with
    /// this server certificate and `plain_users` (`user:password` lines) as the PLAIN users.
    pub fn sasl_listener_args(&self, plain_users: &str) -> Vec<String> {
        let users = self.dir().join("users");
        std::fs::write(&users, plain_users).expect("write users");
        let path = |path: PathBuf| path.to_str().expect("utf-8 path").to_string();
        vec![
            "--listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0"
                .to_string(),
            "--ssl-certificate-file".to_string(),
            path(self.server_certificate()),
            "--ssl-key-file".to_string(),
            path(self.server_key()),
            "--sasl-plain-users-file".to_string(),
            path(users),
        ]
    }

    /// A client certificate with subject CN `common_name`: `client-<cn>.pem` / `.key`.
    pub fn client(&self, common_name: &str) -> (PathBuf, PathBuf) {
        self.client_valid_for(common_name, "2")
    }

    /// A node certificate with subject CN `common_name` for 127.0.0.1/localhost, for both
    /// server and client use: a node presents it on its listeners and, on an mTLS
    /// inter-broker listener, to the nodes it dials (its principal `User:<cn>`).
    /// `node-<cn>.pem` / `.key`.
    pub fn node(&self, common_name: &str) -> (PathBuf, PathBuf) {
        let name = format!("node-{common_name}");
        self.leaf(
            &name,
            common_name,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
            "2",
        );
        (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
    }

    /// A client certificate (as [`Certs::client`]) that expired a day before it was made.
    pub fn expired_client(&self, common_name: &str) -> (PathBuf, PathBuf) {
        self.client_valid_for(common_name, "-1")
    }

    fn client_valid_for(&self, common_name: &str, days: &str) -> (PathBuf, PathBuf) {
        let name = format!("client-{common_name}");
        self.leaf(
            &name,
            common_name,
            "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
            days,
        );
        (
            self.path(&format!("{name}.pem")),
            self.path(&format!("{name}.key")),
        )
    }

    fn leaf(&self, name: &str, common_name: &str, extensions: &str, days: &str) {
        let path = self.dir.path();
        let key_file = format!("{name}.key");
        let csr_file = format!("{name}.csr");
        let ext_file = format!("{name}.ext");
        std::fs::write(path.join(&ext_file), extensions).expect("write extensions");
        key(path, &key_file);
        let subject = format!("/O=sluice tests/CN={common_name}");
        openssl(
            path,
            &[
                "req", "-new", "-key", &key_file, "-subj", &subject, "-out", &csr_file,
            ],
        );
        openssl(
            path,
            &[
                "x509",
                "-req",
                "-in",
                &csr_file,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                days,
                "-extfile",
                &ext_file,
                "-out",
                &format!("{name}.pem"),
            ],
        );
    }

    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn server_certificate(&self) -> PathBuf {
        self.path("server.pem")
    }

    pub fn server_key(&self) -> PathBuf {
        self.path("server.key")
    }

    /// A fresh directory for other test files (users files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}
