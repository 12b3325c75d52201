//! The Redis session store against a real `redis-server`: the same behaviour suite as the
//! in-memory store, then outages and restarts.

use std::time::{Duration, Instant};

use e2e::redis::RedisServer;
use llm_mcp_hub::session::conformance;
use llm_mcp_hub::session::redis::RedisOptions;
use llm_mcp_hub::session::{RedisStore, SessionStore, StoreError};

async fn store_for(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&RedisOptions {
        url: server.url.clone(),
        timeout: Duration::from_millis(500),
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn conforms_to_the_session_store_suite() {
    let server = RedisServer::start().await;
    conformance::run_all(&store_for(&server).await).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_fails_fast_and_recovers_without_losing_acknowledged_turns() {
    let mut server = RedisServer::start().await;
    let store = store_for(&server).await;
    conformance::store_one(&store, "durable-1", "alice", Duration::from_secs(600)).await;

    server.kill().await;
    let started = Instant::now();
    let err = store
        .get("alice", "durable-1", Duration::from_secs(600))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(store.ping().await.is_err());
    // Fails within its timeouts, not a hang (the bound is generous: this is no timing test).
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    server.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let session = store
        .get("alice", "durable-1", Duration::from_secs(600))
        .await
        .unwrap()
        .expect("an acknowledged turn survives a hard restart");
    assert_eq!(session.messages.len(), 2);
}
