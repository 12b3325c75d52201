//! Sessions in this process's memory: the embedded default.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Session, SessionStore, SessionSummary, StoreError, TurnLock};

struct Entry {
    session: Option<Session>,
    expires: Instant,
    lock: Option<(String, Instant)>,
}

#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// Drops expired sessions and stale locks; returns how many sessions expired.
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session map lock");
        let mut expired = 0;
        entries.retain(|_, e| {
            if e.session.is_some() && e.expires <= now {
                e.session = None;
                expired += 1;
            }
            if e.lock.as_ref().is_some_and(|(_, until)| *until <= now) {
                e.lock = None;
            }
            e.session.is_some() || e.lock.is_some()
        });
        expired
    }

    pub fn len(&self) -> usize {
        self.entries.lock().expect("session map lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn live(entry: &Entry, now: Instant) -> Option<&Session> {
    entry.session.as_ref().filter(|_| entry.expires > now)
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn begin_turn(
        &self,
        id: &str,
        lock_ttl: Duration,
        ttl: Duration,
    ) -> Result<TurnLock, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session map lock");
        let entry = entries.entry(id.to_string()).or_insert(Entry {
            session: None,
            expires: now,
            lock: None,
        });
        if entry.lock.as_ref().is_some_and(|(_, until)| *until > now) {
            return Err(StoreError::Busy);
        }
        let token = super::id::generate();
        entry.lock = Some((token.clone(), now + lock_ttl));
        let session = live(entry, now).cloned();
        if session.is_some() {
            entry.expires = now + ttl;
        } else {
            entry.session = None;
        }
        Ok(TurnLock { token, session })
    }

    async fn commit_turn(
        &self,
        session: &Session,
        token: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session map lock");
        let entry = entries.get_mut(&session.id).ok_or(StoreError::LockLost)?;
        match &entry.lock {
            Some((t, until)) if t == token && *until > now => {}
            _ => return Err(StoreError::LockLost),
        }
        entry.session = Some(session.clone());
        entry.expires = now + ttl;
        entry.lock = None;
        Ok(())
    }

    async fn abort_turn(&self, id: &str, token: &str) -> Result<(), StoreError> {
        let mut entries = self.entries.lock().expect("session map lock");
        if let Some(entry) = entries.get_mut(id)
            && entry.lock.as_ref().is_some_and(|(t, _)| t == token)
        {
            entry.lock = None;
            if entry.session.is_none() {
                entries.remove(id);
            }
        }
        Ok(())
    }

    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<Session>, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session map lock");
        let Some(entry) = entries.get_mut(id) else {
            return Ok(None);
        };
        let session = live(entry, now).cloned();
        if session.is_some() {
            entry.expires = now + ttl;
        }
        Ok(session)
    }

    async fn delete(&self, id: &str, _owner: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock().expect("session map lock");
        let Some(entry) = entries.get_mut(id) else {
            return Ok(false);
        };
        let existed = live(entry, now).is_some();
        entry.session = None;
        if entry.lock.is_none() {
            entries.remove(id);
        }
        Ok(existed)
    }

    async fn list(
        &self,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let now = Instant::now();
        let entries = self.entries.lock().expect("session map lock");
        let mut mine: Vec<SessionSummary> = entries
            .values()
            .filter_map(|e| live(e, now))
            .filter(|s| s.owner == owner)
            .map(SessionSummary::from)
            .collect();
        mine.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then(a.id.cmp(&b.id)));
        Ok(mine.into_iter().skip(offset).take(limit).collect())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms() {
        super::super::conformance::run_all(&MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn sweep_frees_expired_sessions() {
        let store = MemoryStore::new();
        super::super::conformance::store_one(&store, "sweep-me-1", "k", Duration::from_millis(10))
            .await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(store.sweep(), 1);
        assert!(store.is_empty());
    }
}
