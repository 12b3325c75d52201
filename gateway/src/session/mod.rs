//! Conversations kept between requests.
//!
//! A turn is one lock-and-read at its start and one atomic write-and-unlock at its end, so two
//! turns on one session never interleave and a failed or cancelled turn leaves nothing behind.
//! The in-memory store serves one process; the Redis store is shared by every hub replica.

pub mod conformance;
pub mod id;
pub mod memory;
pub mod redis;

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::provider::Message;

pub use memory::MemoryStore;
pub use redis::RedisStore;

/// Version of the stored layout (the Redis key format and the JSON); part of every Redis key.
/// 2: sessions are keyed by their owner as well as their id (v1 keys are not read: sessions
/// are ephemeral, so an upgrade only starts them afresh).
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    /// The hub key id that created the session; only it may use the session.
    pub owner: String,
    pub provider: String,
    pub model: String,
    /// The system prompt of the conversation, used when a later request sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub messages: Vec<Message>,
}

impl Session {
    /// Size of the stored JSON, which the byte limit applies to.
    pub fn stored_bytes(&self) -> usize {
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, self).map_or(usize::MAX, |()| counter.0)
    }
}

/// Counts what is written: the size of a session's JSON without building it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A page of `list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    pub id: String,
    pub provider: String,
    pub model: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub messages: usize,
}

impl From<&Session> for SessionSummary {
    fn from(s: &Session) -> Self {
        SessionSummary {
            id: s.id.clone(),
            provider: s.provider.clone(),
            model: s.model.clone(),
            created_at: s.created_at,
            updated_at: s.updated_at,
            messages: s.messages.len(),
        }
    }
}

/// The result of `begin_turn`: the lock's token and the session as it was (None: new).
#[derive(Debug)]
pub struct TurnLock {
    pub token: String,
    pub session: Option<Session>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum StoreError {
    /// Another turn holds the session.
    #[error("session is busy with another turn")]
    Busy,
    /// The turn's lock expired and was taken by another turn before this one finished.
    #[error("session lock was lost before the turn was stored")]
    LockLost,
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("stored session is unreadable: {0}")]
    Corrupt(String),
    /// The owner holds its quota of sessions, all of them in a turn (none can make room).
    #[error("the key holds its maximum of {0} sessions")]
    QuotaExceeded(usize),
}

/// Sessions are keyed by owner (the hub key id) and id together: each key has its own
/// namespace of ids, so another key can neither read, lock, refresh nor learn of a session, and
/// the same client-chosen id used by two keys names two sessions.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Takes the session's turn lock (for `lock_ttl`) and reads the session, refreshing its
    /// TTL. `Busy` when another turn holds the lock.
    async fn begin_turn(
        &self,
        owner: &str,
        id: &str,
        lock_ttl: Duration,
        ttl: Duration,
    ) -> Result<TurnLock, StoreError>;
    /// Writes the session (under `session.owner` and `session.id`), refreshes its TTL and
    /// releases the lock, all at once; `LockLost` (and nothing written) if the lock is no longer
    /// this turn's.
    async fn commit_turn(
        &self,
        session: &Session,
        token: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;
    /// Releases the lock without writing.
    async fn abort_turn(&self, owner: &str, id: &str, token: &str) -> Result<(), StoreError>;
    /// Reads a session, refreshing its TTL.
    async fn get(
        &self,
        owner: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<Option<Session>, StoreError>;
    /// Deletes a session; false when it did not exist.
    async fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreError>;
    /// The owner's sessions, most recently used first.
    async fn list(
        &self,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError>;
    /// Forgets sessions whose TTL ran out and returns how many: each one is counted once, even
    /// when several hub replicas sweep the same store.
    async fn sweep_expired(&self) -> Result<u64, StoreError>;
    /// Checks the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;
    /// A short name for logs and `/v1/providers`.
    fn kind(&self) -> &'static str;
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Role;

    #[test]
    fn stored_bytes_is_the_size_of_the_stored_json() {
        let session = Session {
            id: "s-1234567".into(),
            owner: "team".into(),
            provider: "claude".into(),
            model: "sonnet".into(),
            system: Some("Be brief. \"Quoted\" and ünïcode.".into()),
            created_at: 1,
            updated_at: 2,
            messages: vec![
                Message::text(Role::User, "hello\nworld"),
                Message::text(Role::Assistant, "hi"),
            ],
        };
        let json = serde_json::to_vec(&session).unwrap();
        assert_eq!(session.stored_bytes(), json.len());
    }
}
