//! Sessions in this process's memory: the embedded default.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Session, SessionStore, SessionSummary, StoreError, TurnLock};

/// Sessions are keyed by (owner, id): each key has its own namespace of ids.
type Key = (String, String);

fn key(owner: &str, id: &str) -> Key {
    (owner.to_string(), id.to_string())
}

struct Entry {
    session: Option<Session>,
    expires: Instant,
    lock: Option<(String, Instant)>,
}

/// The map, and for each key its stored sessions ordered by expiry (least recently used first),
/// so making room never scans the map (it did: at capacity every new session walked all of it
/// twice, measured as 45 % of a router's CPU).
#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    by_expiry: HashMap<String, BTreeSet<(Instant, String)>>,
    /// Expired sessions dropped while making room, not yet counted by a sweep.
    expired_uncounted: usize,
}

impl State {
    /// Keeps `by_expiry` in step with one entry: call with what the entry stored before a change
    /// (`Some(expires)` when it held a session) and after.
    fn reindex(&mut self, k: &Key, before: Option<Instant>, after: Option<Instant>) {
        if before == after {
            return;
        }
        if let Some(at) = before
            && let Some(set) = self.by_expiry.get_mut(&k.0)
        {
            set.remove(&(at, k.1.clone()));
            if set.is_empty() {
                self.by_expiry.remove(&k.0);
            }
        }
        if let Some(at) = after {
            self.by_expiry
                .entry(k.0.clone())
                .or_default()
                .insert((at, k.1.clone()));
        }
    }

    /// Drops `owner`'s expired sessions (the front of its order); returns its live count.
    fn live_count(&mut self, owner: &str, now: Instant) -> usize {
        loop {
            let Some(&(at, ref id)) = self.by_expiry.get(owner).and_then(|s| s.first()) else {
                return 0;
            };
            if at > now {
                return self.by_expiry.get(owner).map_or(0, BTreeSet::len);
            }
            let k = key(owner, id);
            self.reindex(&k, Some(at), None);
            if let Some(e) = self.entries.get_mut(&k) {
                e.session = None;
                if e.lock.is_none() {
                    self.entries.remove(&k);
                }
            }
            self.expired_uncounted += 1;
        }
    }
}

fn stored(entry: &Entry) -> Option<Instant> {
    entry.session.as_ref().map(|_| entry.expires)
}

pub struct MemoryStore {
    state: Mutex<State>,
    /// Sessions kept at most; a new one beyond it evicts the least recently used session of the
    /// key that holds the most.
    capacity: usize,
    /// Sessions one key keeps at most; a new one beyond it evicts that key's own least recently
    /// used session, never another key's.
    per_key: usize,
    evicted: std::sync::atomic::AtomicU64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::with_limits(usize::MAX, usize::MAX)
    }
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// A store of at most `capacity` sessions: every request without `X-Session-ID` creates
    /// one, so stateless traffic must not grow memory without bound for a whole TTL.
    pub fn with_capacity(capacity: usize) -> MemoryStore {
        MemoryStore::with_limits(capacity, usize::MAX)
    }

    /// At most `capacity` sessions in all and `per_key` for any one key, so that one key's
    /// traffic cannot push every other key's sessions out.
    pub fn with_limits(capacity: usize, per_key: usize) -> MemoryStore {
        MemoryStore {
            state: Mutex::new(State::default()),
            capacity: capacity.max(1),
            per_key: per_key.max(1),
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
        let mut state = self.state.lock().expect("session map lock");
        let state = &mut *state;
        let mut expired = std::mem::take(&mut state.expired_uncounted);
        let mut gone = Vec::new();
        state.entries.retain(|k, e| {
            if e.session.is_some() && e.expires <= now {
                gone.push((k.clone(), e.expires));
                e.session = None;
                expired += 1;
            }
            if e.lock.as_ref().is_some_and(|(_, until)| *until <= now) {
                e.lock = None;
            }
            e.session.is_some() || e.lock.is_some()
        });
        for (k, at) in gone {
            state.reindex(&k, Some(at), None);
        }
        expired
    }

    pub fn len(&self) -> usize {
        self.state.lock().expect("session map lock").entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MemoryStore {
    /// Before `owner` stores a new session: at its quota, drops its own least recently used
    /// session (its expiry is the earliest); at the store's capacity, drops the least recently
    /// used session of the key holding the most. Sessions in a turn are left alone: when all of
    /// the owner's are, its quota cannot be kept and the new session is refused.
    fn make_room(&self, state: &mut State, owner: &str, now: Instant) -> Result<(), StoreError> {
        let mine = state.live_count(owner, now);
        let victim_owner = if mine >= self.per_key {
            owner.to_string()
        } else {
            let owners: Vec<String> = state.by_expiry.keys().cloned().collect();
            let counts: Vec<(usize, String)> = owners
                .into_iter()
                .map(|o| (state.live_count(&o, now), o))
                .collect();
            if counts.iter().map(|(n, _)| n).sum::<usize>() < self.capacity {
                return Ok(());
            }
            match counts.into_iter().max() {
                Some((_, o)) => o,
                None => return Ok(()),
            }
        };
        // Its least recently used session that is not in a turn.
        let oldest = state.by_expiry.get(&victim_owner).and_then(|set| {
            set.iter()
                .find(|(_, id)| {
                    state
                        .entries
                        .get(&key(&victim_owner, id))
                        .is_some_and(|e| e.lock.is_none())
                })
                .cloned()
        });
        match oldest {
            Some((at, id)) => {
                let k = key(&victim_owner, &id);
                state.reindex(&k, Some(at), None);
                state.entries.remove(&k);
                self.evicted
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Ok(())
            }
            None if mine >= self.per_key => Err(StoreError::QuotaExceeded(self.per_key)),
            None => Ok(()),
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
        owner: &str,
        id: &str,
        lock_ttl: Duration,
        ttl: Duration,
    ) -> Result<TurnLock, StoreError> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("session map lock");
        let k = key(owner, id);
        let entry = state.entries.entry(k.clone()).or_insert(Entry {
            session: None,
            expires: now,
            lock: None,
        });
        if entry.lock.as_ref().is_some_and(|(_, until)| *until > now) {
            return Err(StoreError::Busy);
        }
        let before = stored(entry);
        let token = super::id::generate();
        entry.lock = Some((token.clone(), now + lock_ttl));
        let session = live(entry, now).cloned();
        if session.is_some() {
            entry.expires = now + ttl;
        } else {
            entry.session = None;
        }
        let after = stored(entry);
        state.reindex(&k, before, after);
        Ok(TurnLock { token, session })
    }

    async fn commit_turn(
        &self,
        session: &Session,
        token: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let k = key(&session.owner, &session.id);
        let mut state = self.state.lock().expect("session map lock");
        let state = &mut *state;
        let entry = state.entries.get(&k).ok_or(StoreError::LockLost)?;
        match &entry.lock {
            Some((t, until)) if t == token && *until > now => {}
            _ => return Err(StoreError::LockLost),
        }
        if live(entry, now).is_none() {
            self.make_room(state, &session.owner, now)?;
        }
        let entry = state.entries.get_mut(&k).ok_or(StoreError::LockLost)?;
        let before = stored(entry);
        entry.session = Some(session.clone());
        entry.expires = now + ttl;
        entry.lock = None;
        state.reindex(&k, before, Some(now + ttl));
        Ok(())
    }

    async fn abort_turn(&self, owner: &str, id: &str, token: &str) -> Result<(), StoreError> {
        let k = key(owner, id);
        let mut state = self.state.lock().expect("session map lock");
        if let Some(entry) = state.entries.get_mut(&k)
            && entry.lock.as_ref().is_some_and(|(t, _)| t == token)
        {
            entry.lock = None;
            if entry.session.is_none() {
                state.entries.remove(&k);
            }
        }
        Ok(())
    }

    async fn get(
        &self,
        owner: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<Option<Session>, StoreError> {
        let now = Instant::now();
        let k = key(owner, id);
        let mut state = self.state.lock().expect("session map lock");
        let Some(entry) = state.entries.get_mut(&k) else {
            return Ok(None);
        };
        let session = live(entry, now).cloned();
        if session.is_some() {
            let before = stored(entry);
            entry.expires = now + ttl;
            state.reindex(&k, before, Some(now + ttl));
        }
        Ok(session)
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let now = Instant::now();
        let k = key(owner, id);
        let mut state = self.state.lock().expect("session map lock");
        let Some(entry) = state.entries.get_mut(&k) else {
            return Ok(false);
        };
        let existed = live(entry, now).is_some();
        let before = stored(entry);
        entry.session = None;
        if entry.lock.is_none() {
            state.entries.remove(&k);
        }
        state.reindex(&k, before, None);
        Ok(existed)
    }

    async fn list(
        &self,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let now = Instant::now();
        let state = self.state.lock().expect("session map lock");
        let mut mine: Vec<SessionSummary> = state
            .entries
            .iter()
            .filter(|((o, _), _)| o == owner)
            .filter_map(|(_, e)| live(e, now))
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
    use super::super::conformance::store_one;
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
            store_one(&store, id, "k", ttl).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Using the first one makes the second the least recently used.
        assert!(store.get("k", "first-one", ttl).await.unwrap().is_some());
        store_one(&store, "third-one", "k", ttl).await;
        assert!(store.get("k", "second-one", ttl).await.unwrap().is_none());
        assert!(store.get("k", "first-one", ttl).await.unwrap().is_some());
        assert!(store.get("k", "third-one", ttl).await.unwrap().is_some());
        assert_eq!(store.evicted(), 1);
    }

    #[tokio::test]
    async fn one_key_cannot_push_out_another_keys_sessions() {
        let store = MemoryStore::with_limits(10, 3);
        let ttl = Duration::from_secs(60);
        store_one(&store, "victim-session", "victim", ttl).await;
        for i in 0..50 {
            store_one(&store, &format!("flood-{i:04}"), "flooder", ttl).await;
        }
        assert!(
            store
                .get("victim", "victim-session", ttl)
                .await
                .unwrap()
                .is_some(),
            "another key's traffic evicted this key's session"
        );
        // The flooder keeps its quota: its own most recent sessions.
        let flooder = store.list("flooder", 0, 100).await.unwrap();
        assert_eq!(flooder.len(), 3);
        assert!(
            store
                .get("flooder", "flood-0049", ttl)
                .await
                .unwrap()
                .is_some()
        );
    }

    #[tokio::test]
    async fn at_capacity_the_key_holding_the_most_gives_way() {
        let store = MemoryStore::with_limits(4, 3);
        let ttl = Duration::from_secs(60);
        store_one(&store, "a-session-1", "a", ttl).await;
        for i in 0..3 {
            store_one(&store, &format!("b-session-{i}"), "b", ttl).await;
        }
        store_one(&store, "c-session-1", "c", ttl).await;
        assert!(store.get("a", "a-session-1", ttl).await.unwrap().is_some());
        assert!(store.get("c", "c-session-1", ttl).await.unwrap().is_some());
        assert_eq!(store.list("b", 0, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_quota_full_of_turns_in_progress_refuses_a_new_session() {
        let store = MemoryStore::with_limits(100, 1);
        let ttl = Duration::from_secs(60);
        store_one(&store, "held-session", "k", ttl).await;
        let held = store
            .begin_turn("k", "held-session", ttl, ttl)
            .await
            .unwrap();
        let lock = store
            .begin_turn("k", "new-session", ttl, ttl)
            .await
            .unwrap();
        let session = super::super::conformance::session("new-session", "k", &["hi"]);
        assert_eq!(
            store.commit_turn(&session, &lock.token, ttl).await,
            Err(StoreError::QuotaExceeded(1))
        );
        store
            .abort_turn("k", "held-session", &held.token)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn sweep_frees_expired_sessions() {
        let store = MemoryStore::new();
        store_one(&store, "sweep-me-1", "k", Duration::from_millis(10)).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(store.sweep(), 1);
        assert!(store.is_empty());
    }
}
