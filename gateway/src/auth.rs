//! Hub API keys: the hub's own bearer keys, never an LLM key.
//!
//! Only SHA-256 hashes are configured; a presented key is hashed and compared in constant time
//! against every entry. Keys never appear in logs: callers are known by their key id.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One configured key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// A name for the key, safe to log (`n8n`, `laptop`).
    pub id: String,
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// Providers this key may use; all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub providers: Option<Vec<String>>,
}

/// Who is calling. Sessions belong to `key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub key_id: String,
    pub providers: Option<Vec<String>>,
}

impl Caller {
    /// The caller when keys are off (loopback without keys).
    pub fn anonymous() -> Caller {
        Caller {
            key_id: "anonymous".into(),
            providers: None,
        }
    }

    pub fn may_use(&self, provider: &str) -> bool {
        self.providers
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|p| p == provider))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("Missing API key: send 'Authorization: Bearer <hub key>'")]
    Missing,
    #[error("Invalid API key")]
    Invalid,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error("cannot read API keys file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("API keys file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("API key '{0}': sha256 must be 64 hex characters")]
    BadHash(String),
    #[error("API key id '{0}' appears twice")]
    Duplicate(String),
}

/// The configured keys. Empty means authentication is off.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    entries: Vec<(KeyEntry, [u8; 32])>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

impl KeyRing {
    pub fn new(entries: Vec<KeyEntry>) -> Result<KeyRing, KeyConfigError> {
        let mut parsed: Vec<(KeyEntry, [u8; 32])> = Vec::with_capacity(entries.len());
        for entry in entries {
            let mut hash = [0u8; 32];
            hex::decode_to_slice(entry.sha256.trim(), &mut hash)
                .map_err(|_| KeyConfigError::BadHash(entry.id.clone()))?;
            if parsed.iter().any(|(e, _)| e.id == entry.id) {
                return Err(KeyConfigError::Duplicate(entry.id));
            }
            parsed.push((entry, hash));
        }
        Ok(KeyRing { entries: parsed })
    }

    /// Reads `[[keys]]` entries from a TOML file (the mounted Secret in Kubernetes).
    pub fn from_file(path: &Path, extra: Vec<KeyEntry>) -> Result<KeyRing, KeyConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| KeyConfigError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        KeyRing::new(file.keys.into_iter().chain(extra).collect())
    }

    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, AuthError> {
        if !self.is_enabled() {
            return Ok(Caller::anonymous());
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or(AuthError::Missing)?;
        let presented: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        // Compare against every entry, so the time taken does not tell which one matched.
        let mut found = None;
        for (entry, hash) in &self.entries {
            if bool::from(presented.ct_eq(hash)) {
                found = Some(entry);
            }
        }
        found
            .map(|e| Caller {
                key_id: e.id.clone(),
                providers: e.providers.clone(),
            })
            .ok_or(AuthError::Invalid)
    }
}

/// A new key and its hash, for `llm-mcp-hub keygen`.
pub fn generate_key() -> (String, String) {
    let bytes: [u8; 32] = rand::random();
    let key = format!("lmh_{}", URL_SAFE_NO_PAD.encode(bytes));
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    (key, hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (KeyRing, String) {
        let (key, hash) = generate_key();
        let ring = KeyRing::new(vec![
            KeyEntry {
                id: "n8n".into(),
                sha256: hash,
                providers: Some(vec!["claude".into()]),
            },
            KeyEntry {
                id: "other".into(),
                sha256: "00".repeat(32),
                providers: None,
            },
        ])
        .unwrap();
        (ring, key)
    }

    #[test]
    fn accepts_the_key_and_knows_its_limits() {
        let (ring, key) = ring();
        let caller = ring.authenticate(Some(&format!("Bearer {key}"))).unwrap();
        assert_eq!(caller.key_id, "n8n");
        assert!(caller.may_use("claude"));
        assert!(!caller.may_use("gemini"));
    }

    #[test]
    fn rejects_missing_and_wrong_keys() {
        let (ring, key) = ring();
        assert_eq!(ring.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            ring.authenticate(Some("Basic abc")),
            Err(AuthError::Missing)
        );
        assert_eq!(ring.authenticate(Some("Bearer ")), Err(AuthError::Missing));
        assert_eq!(
            ring.authenticate(Some(&format!("Bearer {key}x"))),
            Err(AuthError::Invalid)
        );
        // The hash itself is not a key.
        let hash = hex::encode(Sha256::digest(key.as_bytes()));
        assert_eq!(
            ring.authenticate(Some(&format!("Bearer {hash}"))),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn no_keys_means_anonymous() {
        assert_eq!(
            KeyRing::default().authenticate(None).unwrap(),
            Caller::anonymous()
        );
    }

    #[test]
    fn bad_configuration_is_refused() {
        let bad = KeyEntry {
            id: "x".into(),
            sha256: "nothex".into(),
            providers: None,
        };
        assert!(KeyRing::new(vec![bad]).is_err());
        let dup = KeyEntry {
            id: "x".into(),
            sha256: "11".repeat(32),
            providers: None,
        };
        assert!(KeyRing::new(vec![dup.clone(), dup]).is_err());
    }

    #[test]
    fn reads_a_keys_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            format!(
                "[[keys]]\nid = \"laptop\"\nsha256 = \"{}\"\nproviders = [\"gemini\"]\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        let ring = KeyRing::from_file(&path, vec![]).unwrap();
        assert_eq!(ring.len(), 1);
    }
}
