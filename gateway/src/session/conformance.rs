//! One behaviour suite for every `SessionStore`: the in-memory store's unit tests and the
//! Redis store's tests (against a real `redis-server`) both run it.

use std::time::Duration;

use super::{Session, SessionStore, StoreError, now_ms};
use crate::provider::{Message, Role};

const TTL: Duration = Duration::from_secs(60);
const LOCK: Duration = Duration::from_secs(30);

pub fn session(id: &str, owner: &str, texts: &[&str]) -> Session {
    let now = now_ms();
    Session {
        id: id.to_string(),
        owner: owner.to_string(),
        provider: "claude".into(),
        model: "sonnet".into(),
        system: None,
        created_at: now,
        updated_at: now,
        messages: texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Message::text(
                    if i % 2 == 0 {
                        Role::User
                    } else {
                        Role::Assistant
                    },
                    t.to_string(),
                )
            })
            .collect(),
    }
}

/// Creates a session through a full turn.
pub async fn store_one(store: &dyn SessionStore, id: &str, owner: &str, ttl: Duration) {
    let lock = store.begin_turn(owner, id, LOCK, ttl).await.expect("lock");
    assert!(lock.session.is_none());
    store
        .commit_turn(&session(id, owner, &["hi", "hello"]), &lock.token, ttl)
        .await
        .expect("commit");
}

pub async fn run_all(store: &dyn SessionStore) {
    turn_round_trip(store).await;
    concurrent_turns_exclude_each_other(store).await;
    aborted_turn_leaves_nothing(store).await;
    lost_lock_writes_nothing(store).await;
    expiry_and_refresh(store).await;
    delete_and_list(store).await;
    sweep_counts_each_expiry_once(store).await;
    sessions_are_namespaced_by_owner(store).await;
}

pub async fn turn_round_trip(store: &dyn SessionStore) {
    store.ping().await.expect("ping");
    store_one(store, "round-trip-1", "alice", TTL).await;
    let lock = store
        .begin_turn("alice", "round-trip-1", LOCK, TTL)
        .await
        .unwrap();
    let mut s = lock.session.expect("stored session is read back");
    assert_eq!(
        s,
        session("round-trip-1", "alice", &["hi", "hello"]).with_times(&s)
    );
    s.messages.push(Message::text(Role::User, "again"));
    store.commit_turn(&s, &lock.token, TTL).await.unwrap();
    let read = store
        .get("alice", "round-trip-1", TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.messages.len(), 3);
    assert_eq!(read.messages[2].content, "again");
}

pub async fn concurrent_turns_exclude_each_other(store: &dyn SessionStore) {
    let first = store
        .begin_turn("alice", "busy-1", LOCK, TTL)
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_turn("alice", "busy-1", LOCK, TTL)
            .await
            .unwrap_err(),
        StoreError::Busy
    );
    store
        .abort_turn("alice", "busy-1", &first.token)
        .await
        .unwrap();
    let again = store
        .begin_turn("alice", "busy-1", LOCK, TTL)
        .await
        .unwrap();
    store
        .abort_turn("alice", "busy-1", &again.token)
        .await
        .unwrap();
}

pub async fn aborted_turn_leaves_nothing(store: &dyn SessionStore) {
    let lock = store
        .begin_turn("alice", "aborted-1", LOCK, TTL)
        .await
        .unwrap();
    store
        .abort_turn("alice", "aborted-1", &lock.token)
        .await
        .unwrap();
    assert!(
        store
            .get("alice", "aborted-1", TTL)
            .await
            .unwrap()
            .is_none()
    );
    // A wrong token releases nothing.
    let lock = store
        .begin_turn("alice", "aborted-1", LOCK, TTL)
        .await
        .unwrap();
    store
        .abort_turn("alice", "aborted-1", "not-the-token")
        .await
        .unwrap();
    assert_eq!(
        store
            .begin_turn("alice", "aborted-1", LOCK, TTL)
            .await
            .unwrap_err(),
        StoreError::Busy
    );
    store
        .abort_turn("alice", "aborted-1", &lock.token)
        .await
        .unwrap();
}

pub async fn lost_lock_writes_nothing(store: &dyn SessionStore) {
    let stale = store
        .begin_turn("alice", "lost-1", Duration::from_millis(50), TTL)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let fresh = store
        .begin_turn("alice", "lost-1", LOCK, TTL)
        .await
        .unwrap();
    let err = store
        .commit_turn(&session("lost-1", "alice", &["stale"]), &stale.token, TTL)
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::LockLost);
    store
        .abort_turn("alice", "lost-1", &fresh.token)
        .await
        .unwrap();
    assert!(store.get("alice", "lost-1", TTL).await.unwrap().is_none());
}

pub async fn expiry_and_refresh(store: &dyn SessionStore) {
    let short = Duration::from_millis(300);
    store_one(store, "expiring-1", "alice", short).await;
    // Each use refreshes the TTL: reading it every 150 ms keeps it alive past 300 ms.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            store
                .get("alice", "expiring-1", short)
                .await
                .unwrap()
                .is_some()
        );
    }
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        store
            .get("alice", "expiring-1", short)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list("alice", 0, 100)
            .await
            .unwrap()
            .iter()
            .all(|s| s.id != "expiring-1")
    );
}

pub async fn delete_and_list(store: &dyn SessionStore) {
    for id in ["list-a-1", "list-a-2", "list-a-3"] {
        store_one(store, id, "bob", TTL).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store_one(store, "list-c-1", "carol", TTL).await;
    let page = store.list("bob", 0, 2).await.unwrap();
    assert_eq!(
        page.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["list-a-3", "list-a-2"]
    );
    let rest = store.list("bob", 2, 2).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].id, "list-a-1");
    assert!(store.delete("bob", "list-a-2").await.unwrap());
    assert!(!store.delete("bob", "list-a-2").await.unwrap());
    assert!(store.get("bob", "list-a-2", TTL).await.unwrap().is_none());
    assert_eq!(store.list("bob", 0, 10).await.unwrap().len(), 2);
    assert_eq!(store.list("carol", 0, 10).await.unwrap().len(), 1);
}

pub async fn sweep_counts_each_expiry_once(store: &dyn SessionStore) {
    // What earlier steps left to expire is not this step's to count.
    tokio::time::sleep(Duration::from_millis(50)).await;
    store.sweep_expired().await.unwrap();
    // Generous margins: the refresh below must land well within the TTL on a loaded machine.
    let short = Duration::from_millis(800);
    store_one(store, "sweep-expires-1", "dave", short).await;
    store_one(store, "sweep-expires-2", "dave", short).await;
    store_one(store, "sweep-deleted-1", "dave", short).await;
    store_one(store, "sweep-kept-1", "dave", short).await;
    assert!(store.delete("dave", "sweep-deleted-1").await.unwrap());
    assert_eq!(
        store.sweep_expired().await.unwrap(),
        0,
        "nothing is due yet"
    );
    // Kept alive by a read (refreshing its TTL) while the others run out.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        store
            .get("dave", "sweep-kept-1", TTL)
            .await
            .unwrap()
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        store.sweep_expired().await.unwrap(),
        2,
        "the two sessions that ran out; not the deleted one, not the refreshed one"
    );
    assert_eq!(
        store.sweep_expired().await.unwrap(),
        0,
        "each expiry counts once"
    );
    assert!(
        store
            .get("dave", "sweep-kept-1", TTL)
            .await
            .unwrap()
            .is_some()
    );
}

/// Each key has its own namespace of ids: another key using the same id neither sees, locks,
/// refreshes nor deletes the owner's session, and gets a session of its own.
pub async fn sessions_are_namespaced_by_owner(store: &dyn SessionStore) {
    let short = Duration::from_millis(600);
    store_one(store, "shared-name-1", "erin", short).await;
    // Another key cannot learn the id exists: to it, the id is new.
    assert!(
        store
            .get("mallory", "shared-name-1", TTL)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.delete("mallory", "shared-name-1").await.unwrap());
    // Nor make the owner's turns busy: each holds its own lock.
    let owner = store
        .begin_turn("erin", "shared-name-1", LOCK, short)
        .await
        .unwrap();
    let other = store
        .begin_turn("mallory", "shared-name-1", LOCK, TTL)
        .await
        .expect("another key's turn on the same id is not busy");
    assert!(
        other.session.is_none(),
        "another key read the owner's session"
    );
    // Nor squat it: what it stores is its own session, the owner's is untouched.
    store
        .commit_turn(
            &session("shared-name-1", "mallory", &["squat", "ok"]),
            &other.token,
            TTL,
        )
        .await
        .unwrap();
    store
        .abort_turn("erin", "shared-name-1", &owner.token)
        .await
        .unwrap();
    let mine = store
        .get("erin", "shared-name-1", short)
        .await
        .unwrap()
        .expect("the owner's session");
    assert_eq!(mine.owner, "erin");
    assert_eq!(mine.messages[0].content, "hi");
    let theirs = store
        .get("mallory", "shared-name-1", TTL)
        .await
        .unwrap()
        .expect("the other key's own session");
    assert_eq!(theirs.messages[0].content, "squat");
    // Nor refresh its TTL: reads by the other key leave the owner's deadline alone.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let _ = store.get("mallory", "shared-name-1", TTL).await.unwrap();
    }
    assert!(
        store
            .get("erin", "shared-name-1", short)
            .await
            .unwrap()
            .is_none(),
        "another key's reads kept the owner's session alive"
    );
    // Deleting one leaves the other.
    assert!(store.delete("mallory", "shared-name-1").await.unwrap());
    assert_eq!(store.list("erin", 0, 10).await.unwrap().len(), 0);
    assert_eq!(store.list("mallory", 0, 10).await.unwrap().len(), 0);
    // A key id with the separator in it cannot reach into another key's namespace.
    store_one(store, "b:shared-name-2", "a", TTL).await;
    assert!(
        store
            .get("a:b", "shared-name-2", TTL)
            .await
            .unwrap()
            .is_none()
    );
}

impl Session {
    fn with_times(mut self, other: &Session) -> Session {
        self.created_at = other.created_at;
        self.updated_at = other.updated_at;
        self
    }
}
