//! SASL/PLAIN (RFC 4616) against a users file of `user:password` lines (`#` starts a comment),
//! re-read when its modification time changes. Passwords are compared in constant time, as
//! SHA-256 digests so their lengths do not show either.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Largest users file read.
const USERS_FILE_BYTES_MAX: u64 = 16 * 1024 * 1024;

struct Loaded {
    mtime: Option<SystemTime>,
    /// user → SHA-256 of the password.
    users: HashMap<String, [u8; 32]>,
}

pub struct PlainUsers {
    path: PathBuf,
    loaded: Mutex<Loaded>,
}

fn digest(password: &[u8]) -> [u8; 32] {
    Sha256::digest(password).into()
}

fn read_users(path: &PathBuf) -> std::io::Result<HashMap<String, [u8; 32]>> {
    let size = std::fs::metadata(path)?.len();
    if size > USERS_FILE_BYTES_MAX {
        return Err(std::io::Error::other("users file too large"));
    }
    let text = std::fs::read_to_string(path)?;
    let mut users = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((user, password)) = line.split_once(':') {
            users.insert(user.trim().to_string(), digest(password.as_bytes()));
        }
    }
    Ok(users)
}

impl PlainUsers {
    pub fn open(path: PathBuf) -> std::io::Result<PlainUsers> {
        let mtime = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let users = read_users(&path)?;
        Ok(PlainUsers {
            path,
            loaded: Mutex::new(Loaded { mtime, users }),
        })
    }

    /// Checks one PLAIN token (`authzid NUL authcid NUL password`); the user on success.
    /// `Err` carries the user name (when the token had one) for the failure log.
    pub fn authenticate(&self, token: &[u8]) -> Result<String, Option<String>> {
        let mut parts = token.split(|byte| *byte == 0);
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(None);
        };
        let user = String::from_utf8(user.to_vec()).map_err(|_| None)?;
        if user.is_empty() || (!authzid.is_empty() && authzid != user.as_bytes()) {
            return Err(Some(user));
        }
        let presented = digest(password);
        let mut loaded = match self.loaded.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.reload_if_changed(&mut loaded);
        // Compare against something even for unknown users, so timing does not tell them.
        let stored = loaded.users.get(&user).copied();
        let matches: bool = presented.ct_eq(&stored.unwrap_or([0xff; 32])).into();
        if matches && stored.is_some() {
            Ok(user)
        } else {
            Err(Some(user))
        }
    }

    fn reload_if_changed(&self, loaded: &mut Loaded) {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime == loaded.mtime {
            return;
        }
        loaded.mtime = mtime;
        match read_users(&self.path) {
            Ok(users) => {
                tracing::info!(users = users.len(), "SASL/PLAIN users reloaded");
                loaded.users = users;
            }
            Err(error) => {
                tracing::error!(%error, "reloading SASL/PLAIN users failed; keeping them")
            }
        }
    }
}
