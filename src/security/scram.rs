//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, without channel
//! binding. The broker keeps only the salt, iteration count, StoredKey and ServerKey.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Longest client message accepted (names and nonces are short).
const MESSAGE_BYTES_MAX: usize = 4096;
const SERVER_NONCE_BYTES: usize = 24;

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

    /// Hi() of RFC 5802: PBKDF2 with HMAC over this hash (clients compute it; tests too).
    #[cfg(test)]
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
    let nonce = format!("{client_nonce}{}", server_nonce());
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

fn server_nonce() -> String {
    let mut bytes = [0u8; SERVER_NONCE_BYTES];
    // ring's system randomness: the OS generator.
    let filled = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    if filled.is_err() {
        // Never reached on supported systems; fall back to two random UUIDs.
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        bytes[..16].copy_from_slice(a.as_bytes());
        bytes[16..].copy_from_slice(&b.as_bytes()[..SERVER_NONCE_BYTES - 16]);
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
}
