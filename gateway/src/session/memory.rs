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

pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
    /// Sessions kept at most; a new one beyond it evicts the least recently used.
    capacity: usize,
    evicted: std::sync::atomic::AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_capacity(usize::MAX)
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store of at most `capacity` sessions: every request without `X-Session-ID` creates
    /// one, so stateless traffic must not grow memory without bound for a whole TTL.
    pub fn with_capacity(capacity: usize) -> MemoryStore {
        MemoryStore {
            entries: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            evicted: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Sessions dropped to stay within capacity, since the start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(std::sync::atomic::Ordering::Relaxed)
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

impl MemoryStore {
    /// Before a new session is stored at capacity: drops the one whose use lies furthest back
    /// (its expiry is the earliest). Sessions in a turn are left alone.
    fn make_room(&self, entries: &mut HashMap<String, Entry>, now: Instant) {
        // The map holds at least every stored session: below capacity there is nothing to scan.
        if entries.len() <= self.capacity
            || entries.values().filter(|e| live(e, now).is_some()).count() < self.capacity
        {
            return;
        }
        let oldest = entries
            .iter()
            .filter(|(_, e)| live(e, now).is_some() && e.lock.is_none())
            .min_by_key(|(_, e)| e.expires)
            .map(|(id, _)| id.clone());
        if let Some(id) = oldest {
            entries.remove(&id);
            self.evicted
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
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
        let entry = entries.get(&session.id).ok_or(StoreError::LockLost)?;
        match &entry.lock {
            Some((t, until)) if t == token && *until > now => {}
            _ => return Err(StoreError::LockLost),
        }
        if live(entry, now).is_none() {
            self.make_room(&mut entries, now);
        }
        let entry = entries.get_mut(&session.id).ok_or(StoreError::LockLost)?;
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

    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        Ok(self.sweep() as u64)
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
    async fn a_full_store_drops_the_least_recently_used_session() {
        let store = MemoryStore::with_capacity(2);
        let ttl = Duration::from_secs(60);
        for id in ["first-one", "second-one"] {
            super::super::conformance::store_one(&store, id, "k", ttl).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Using the first one makes the second the least recently used.
        assert!(store.get("first-one", ttl).await.unwrap().is_some());
        super::super::conformance::store_one(&store, "third-one", "k", ttl).await;
        assert!(store.get("second-one", ttl).await.unwrap().is_none());
        assert!(store.get("first-one", ttl).await.unwrap().is_some());
        assert!(store.get("third-one", ttl).await.unwrap().is_some());
        assert_eq!(store.evicted(), 1);
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
