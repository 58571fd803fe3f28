//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) without channel binding: the server
//! side, which keeps only the salt, iteration count, StoredKey and ServerKey, and the client
//! side a node uses to authenticate to another node (`ScramClient`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Longest client message accepted (names and nonces are short).
const MESSAGE_BYTES_MAX: usize = 4096;
/// Random bytes in each side's nonce.
const NONCE_BYTES: usize = 24;
/// Most PBKDF2 iterations a client computes for a server (Kafka's own maximum): a hostile
/// server must not make a node spin.
pub const CLIENT_ITERATIONS_MAX: u32 = 16_384;
/// Fewest iterations a client accepts (Kafka's minimum).
pub const CLIENT_ITERATIONS_MIN: u32 = 4_096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// Kafka's `ScramMechanism` type codes (DescribeUserScramCredentials and the records).
    pub fn code(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn from_code(code: i8) -> Option<ScramMechanism> {
        match code {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        [ScramMechanism::Sha256, ScramMechanism::Sha512]
            .into_iter()
            .find(|mechanism| mechanism.name() == name)
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
            ScramMechanism::Sha512 => {
                let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
                mac.update(message);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, message: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(message).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(message).to_vec(),
        }
    }

    /// What the broker stores, from the salted password a client (kafka-configs) sends.
    pub fn credential_from_salted(
        self,
        salt: Vec<u8>,
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt,
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// Hi() of RFC 5802: PBKDF2 with HMAC over this hash (clients compute it).
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password, salt, iterations).to_vec()
            }
        }
    }
}

/// One user's stored credential for one mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// Why an exchange failed; the client only ever hears a generic message.
#[derive(Debug, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("channel binding is not supported")]
    ChannelBinding,
    #[error("unknown user")]
    UnknownUser,
    #[error("nonce mismatch")]
    Nonce,
    #[error("invalid proof")]
    Proof,
    #[error("the server asked for {0} iterations, outside {CLIENT_ITERATIONS_MIN}..={CLIENT_ITERATIONS_MAX}")]
    Iterations(u32),
    #[error("the server's signature is wrong: it does not know the password")]
    ServerSignature,
}

/// The server's side of one exchange.
pub enum ScramServer {
    /// Waiting for client-first.
    Start(ScramMechanism),
    /// Sent server-first; waiting for client-final.
    Challenged {
        mechanism: ScramMechanism,
        user: String,
        credential: ScramCredential,
        nonce: String,
        /// client-first-bare "," server-first, the head of the AuthMessage.
        auth_head: String,
    },
    Done,
}

/// What one step produced.
pub enum Step {
    /// Send this and wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated as the user; send this final message.
    Success { user: String, message: Vec<u8> },
}

fn attribute(part: &str, name: char) -> Result<&str, ScramError> {
    let mut chars = part.chars();
    if chars.next() == Some(name) && chars.next() == Some('=') {
        Ok(&part[2..])
    } else {
        Err(ScramError::Malformed)
    }
}

/// RFC 5802 saslname: `=2C` is `,` and `=3D` is `=`.
fn decode_name(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer::Start(mechanism)
    }

    /// Runs one step; `lookup` finds a user's credential.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
        user_seen: &mut Option<String>,
    ) -> Result<Step, ScramError> {
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed);
        }
        let text = std::str::from_utf8(message).map_err(|_| ScramError::Malformed)?;
        match std::mem::replace(self, ScramServer::Done) {
            ScramServer::Start(mechanism) => {
                let (next, reply) = client_first(mechanism, text, lookup, user_seen)?;
                *self = next;
                Ok(Step::Continue(reply))
            }
            ScramServer::Challenged {
                mechanism,
                user,
                credential,
                nonce,
                auth_head,
            } => {
                *user_seen = Some(user.clone());
                let message = client_final(mechanism, &credential, &nonce, &auth_head, text)?;
                Ok(Step::Success { user, message })
            }
            ScramServer::Done => Err(ScramError::Malformed),
        }
    }
}

fn client_first(
    mechanism: ScramMechanism,
    text: &str,
    lookup: &dyn Fn(&str, ScramMechanism) -> Option<ScramCredential>,
    user_seen: &mut Option<String>,
) -> Result<(ScramServer, Vec<u8>), ScramError> {
    // gs2-header: "n,," or "y,," (optionally with a=authzid); "p=" asks for channel binding.
    let mut parts = text.splitn(3, ',');
    let binding = parts.next().ok_or(ScramError::Malformed)?;
    let _authzid = parts.next().ok_or(ScramError::Malformed)?;
    let bare = parts.next().ok_or(ScramError::Malformed)?;
    match binding {
        "n" | "y" => {}
        _ if binding.starts_with("p=") => return Err(ScramError::ChannelBinding),
        _ => return Err(ScramError::Malformed),
    }
    let mut fields = bare.split(',');
    let user = decode_name(attribute(fields.next().ok_or(ScramError::Malformed)?, 'n')?);
    let client_nonce = attribute(fields.next().ok_or(ScramError::Malformed)?, 'r')?;
    if user.is_empty() || client_nonce.is_empty() {
        return Err(ScramError::Malformed);
    }
    *user_seen = Some(user.clone());
    let credential = lookup(&user, mechanism).ok_or(ScramError::UnknownUser)?;
    let nonce = format!("{client_nonce}{}", random_nonce());
    let server_first = format!(
        "r={nonce},s={},i={}",
        BASE64.encode(&credential.salt),
        credential.iterations
    );
    let auth_head = format!("{bare},{server_first}");
    let next = ScramServer::Challenged {
        mechanism,
        user,
        credential,
        nonce,
        auth_head,
    };
    Ok((next, server_first.into_bytes()))
}

fn client_final(
    mechanism: ScramMechanism,
    credential: &ScramCredential,
    nonce: &str,
    auth_head: &str,
    text: &str,
) -> Result<Vec<u8>, ScramError> {
    let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
    let mut fields = without_proof.split(',');
    let binding = attribute(fields.next().ok_or(ScramError::Malformed)?, 'c')?;
    // Without channel binding the client echoes its gs2 header: "n,," or "y,,".
    let header = BASE64.decode(binding).map_err(|_| ScramError::Malformed)?;
    if !(header.starts_with(b"n,") || header.starts_with(b"y,")) {
        return Err(ScramError::ChannelBinding);
    }
    let echoed = attribute(fields.next().ok_or(ScramError::Malformed)?, 'r')?;
    if echoed != nonce {
        return Err(ScramError::Nonce);
    }
    let proof = BASE64.decode(proof).map_err(|_| ScramError::Malformed)?;
    let auth_message = format!("{auth_head},{without_proof}");
    let client_signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::Proof);
    }
    let client_key: Vec<u8> = proof
        .iter()
        .zip(&client_signature)
        .map(|(a, b)| a ^ b)
        .collect();
    let valid: bool = mechanism
        .hash(&client_key)
        .ct_eq(&credential.stored_key)
        .into();
    if !valid {
        return Err(ScramError::Proof);
    }
    let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
    Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
}

/// RFC 5802 saslname: `,` is `=2C` and `=` is `=3D`.
fn encode_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

/// Most salts whose salted password a [`SaltedPasswordCache`] keeps.
const SALTED_CACHE_ENTRIES_MAX: usize = 16;

/// Hi(password, salt, iterations) results for one password. PBKDF2 is slow on purpose, and a
/// node opens many connections (one per followed partition, renewed per SASL session) to
/// peers that all answer with the same salt: computing it once per salt keeps a node's
/// logins cheap. Holds key material as sensitive as the password itself.
#[derive(Default)]
pub struct SaltedPasswordCache {
    entries: std::sync::Mutex<Vec<(SaltKey, Vec<u8>)>>,
}

/// What a salted password depends on, besides the password: mechanism, salt, iterations.
type SaltKey = (ScramMechanism, Vec<u8>, u32);

impl SaltedPasswordCache {
    fn salted_password(
        &self,
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Vec<u8> {
        let key = (mechanism, salt.to_vec(), iterations);
        let cached = {
            let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            entries
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        if let Some(salted) = cached {
            return salted;
        }
        let salted = mechanism.salted_password(password.as_bytes(), salt, iterations);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= SALTED_CACHE_ENTRIES_MAX {
            entries.remove(0);
        }
        entries.push((key, salted.clone()));
        salted
    }
}

/// The client's side of one exchange: `first()`, then `answer(server-first)`, then
/// `verify(server-final)`, which proves the server knew the password too.
pub struct ScramClient {
    mechanism: ScramMechanism,
    user: String,
    password: String,
    client_nonce: String,
    /// ServerSignature the server's final message must carry; set by `answer`.
    server_signature_expected: Option<Vec<u8>>,
}

impl ScramClient {
    pub fn new(mechanism: ScramMechanism, user: &str, password: &str) -> ScramClient {
        ScramClient::with_nonce(mechanism, user, password, random_nonce())
    }

    fn with_nonce(mechanism: ScramMechanism, user: &str, password: &str, nonce: String) -> Self {
        ScramClient {
            mechanism,
            user: user.to_string(),
            password: password.to_string(),
            client_nonce: nonce,
            server_signature_expected: None,
        }
    }

    fn first_bare(&self) -> String {
        format!("n={},r={}", encode_name(&self.user), self.client_nonce)
    }

    /// client-first-message: no channel binding, no authzid.
    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.first_bare()).into_bytes()
    }

    /// client-final-message for `server_first`, or why it cannot be answered; the salted
    /// password comes from `cache` when it has it.
    pub fn answer(
        &mut self,
        server_first: &[u8],
        cache: &SaltedPasswordCache,
    ) -> Result<Vec<u8>, ScramError> {
        if server_first.len() > MESSAGE_BYTES_MAX {
            return Err(ScramError::Malformed);
        }
        let text = std::str::from_utf8(server_first).map_err(|_| ScramError::Malformed)?;
        let mut fields = text.split(',');
        let nonce = attribute(fields.next().ok_or(ScramError::Malformed)?, 'r')?;
        let salt = attribute(fields.next().ok_or(ScramError::Malformed)?, 's')?;
        let iterations = attribute(fields.next().ok_or(ScramError::Malformed)?, 'i')?;
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = BASE64.decode(salt).map_err(|_| ScramError::Malformed)?;
        let iterations: u32 = iterations.parse().map_err(|_| ScramError::Malformed)?;
        if !(CLIENT_ITERATIONS_MIN..=CLIENT_ITERATIONS_MAX).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let mechanism = self.mechanism;
        let salted = cache.salted_password(mechanism, &self.password, &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        // "biws" is base64("n,,"): the gs2 header of client-first, echoed.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.first_bare());
        let client_signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        self.server_signature_expected = Some(mechanism.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)).into_bytes())
    }

    /// Checks server-final-message: `Ok` only when it carries the expected ServerSignature.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let expected = self
            .server_signature_expected
            .as_ref()
            .ok_or(ScramError::Malformed)?;
        let text = std::str::from_utf8(server_final).map_err(|_| ScramError::Malformed)?;
        let signature = attribute(text, 'v')?;
        let signature = BASE64
            .decode(signature)
            .map_err(|_| ScramError::Malformed)?;
        let valid: bool = signature.ct_eq(expected).into();
        if valid {
            Ok(())
        } else {
            Err(ScramError::ServerSignature)
        }
    }
}

/// A fresh nonce (both sides use the same length).
fn random_nonce() -> String {
    let mut bytes = [0u8; NONCE_BYTES];
    // ring's system randomness: the OS generator.
    let filled = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    if filled.is_err() {
        // Never reached on supported systems; fall back to two random UUIDs.
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        bytes[..16].copy_from_slice(a.as_bytes());
        bytes[16..].copy_from_slice(&b.as_bytes()[..NONCE_BYTES - 16]);
    }
    BASE64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's SCRAM-SHA-256 example exchange, with the server nonce it uses.
    #[test]
    fn rfc_7677_proof_verifies() {
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = mechanism.salted_password(b"pencil", &salt, 4096);
        let credential = mechanism.credential_from_salted(salt, &salted, 4096);
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let auth_head = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let client_final_message = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        let reply = client_final(
            mechanism,
            &credential,
            nonce,
            auth_head,
            client_final_message,
        )
        .expect("proof verifies");
        assert_eq!(
            reply,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
        let wrong = client_final_message.replace("dHzb", "eHzb");
        assert!(matches!(
            client_final(mechanism, &credential, nonce, auth_head, &wrong),
            Err(ScramError::Proof)
        ));
    }

    fn stored(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"sluice-test-salt".to_vec();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, 4096);
        mechanism.credential_from_salted(salt, &salted, 4096)
    }

    /// Runs a whole exchange of `client` against a server holding `credential` for `user`:
    /// the server's outcome, and the client's verdict on the server's final message.
    fn exchange(
        client: &mut ScramClient,
        user: &str,
        credential: &ScramCredential,
    ) -> Result<Result<(), ScramError>, ScramError> {
        let mechanism = client.mechanism;
        let lookup = |name: &str, asked: ScramMechanism| {
            (name == user && asked == mechanism).then(|| credential.clone())
        };
        let mut server = ScramServer::new(mechanism);
        let mut seen = None;
        let Step::Continue(server_first) = server.step(&client.first(), &lookup, &mut seen)? else {
            panic!("the first step does not finish");
        };
        let client_final = client.answer(&server_first, &SaltedPasswordCache::default())?;
        match server.step(&client_final, &lookup, &mut seen)? {
            Step::Success {
                user: name,
                message,
            } => {
                assert_eq!(name, user);
                Ok(client.verify(&message))
            }
            Step::Continue(_) => panic!("the second step finishes"),
        }
    }

    #[test]
    fn client_authenticates_against_the_server_side() {
        for mechanism in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = stored(mechanism, "broker-secret");
            let user = "broker,=odd";
            let mut client = ScramClient::new(mechanism, user, "broker-secret");
            assert!(matches!(
                exchange(&mut client, user, &credential),
                Ok(Ok(()))
            ));
            let mut wrong = ScramClient::new(mechanism, user, "not-the-secret");
            assert!(matches!(
                exchange(&mut wrong, user, &credential),
                Err(ScramError::Proof)
            ));
            let mut unknown = ScramClient::new(mechanism, "nobody", "broker-secret");
            assert!(matches!(
                exchange(&mut unknown, user, &credential),
                Err(ScramError::UnknownUser)
            ));
        }
    }

    #[test]
    fn salted_passwords_are_computed_once_per_salt() {
        let cache = SaltedPasswordCache::default();
        let mechanism = ScramMechanism::Sha256;
        let first = cache.salted_password(mechanism, "secret", b"salt-a", 4096);
        assert_eq!(first, mechanism.salted_password(b"secret", b"salt-a", 4096));
        assert_eq!(
            cache.salted_password(mechanism, "secret", b"salt-a", 4096),
            first
        );
        let other = cache.salted_password(mechanism, "secret", b"salt-b", 4096);
        assert_ne!(other, first);
        for index in 0..SALTED_CACHE_ENTRIES_MAX {
            cache.salted_password(mechanism, "secret", &index.to_be_bytes(), 4096);
        }
        assert_eq!(
            cache.entries.lock().unwrap().len(),
            SALTED_CACHE_ENTRIES_MAX
        );
    }

    #[test]
    fn client_refuses_a_server_that_does_not_know_the_password() {
        let mechanism = ScramMechanism::Sha512;
        let mut client = ScramClient::new(mechanism, "broker", "broker-secret");
        // A server holding another password's keys cannot produce the right signature,
        // even when it accepts the client's proof (a server that skips the check).
        let server_first = format!(
            "r={}server,s={},i=4096",
            client.client_nonce,
            BASE64.encode(b"sluice-test-salt")
        );
        client
            .answer(server_first.as_bytes(), &SaltedPasswordCache::default())
            .unwrap();
        let impostor = stored(mechanism, "other");
        let forged = mechanism.hmac(&impostor.server_key, b"anything");
        let forged = format!("v={}", BASE64.encode(forged));
        assert!(matches!(
            client.verify(forged.as_bytes()),
            Err(ScramError::ServerSignature)
        ));
        assert!(matches!(
            client.verify(b"e=other-error"),
            Err(ScramError::Malformed)
        ));
    }

    #[test]
    fn client_refuses_bad_server_first_messages() {
        let mechanism = ScramMechanism::Sha256;
        let salt = BASE64.encode(b"salt");
        let mut client = ScramClient::new(mechanism, "broker", "secret");
        let nonce = client.client_nonce.clone();
        for (message, expected) in [
            (format!("r=other,s={salt},i=4096"), "nonce"),
            (format!("r={nonce},s={salt},i=4096"), "nonce"),
            (format!("r={nonce}x,s={salt},i=100000000"), "iterations"),
            (format!("r={nonce}x,s={salt},i=1"), "iterations"),
            (format!("r={nonce}x,s=!!!,i=4096"), "malformed"),
            ("garbage".to_string(), "malformed"),
        ] {
            let outcome = client.answer(message.as_bytes(), &SaltedPasswordCache::default());
            let kind = match outcome {
                Err(ScramError::Nonce) => "nonce",
                Err(ScramError::Iterations(_)) => "iterations",
                Err(ScramError::Malformed) => "malformed",
                _ => "other",
            };
            assert_eq!(kind, expected, "{message}");
        }
        assert!(matches!(
            client.verify(b"v=AAAA"),
            Err(ScramError::Malformed)
        ));
    }
}
