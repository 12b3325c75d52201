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
        ca_file: None,
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

/// `rediss://` with an ACL user, against a TLS-only `redis-server` whose `default` user is off:
/// the whole behaviour suite passes with only the commands and keys the hub's ACL grants, and a
/// wrong password, plain `redis://`, or a server certificate not signed by the trusted CA fail.
#[tokio::test(flavor = "multi_thread")]
async fn conforms_over_tls_as_an_acl_user() {
    let dir = tempfile::tempdir().unwrap();
    let certs = e2e::tls::TestCerts::write(dir.path());
    let server = RedisServer::start_tls(&certs, "hub", "hub-acl-secret").await;
    let connect = |url: String, ca_file: Option<std::path::PathBuf>| async move {
        RedisStore::connect(&RedisOptions {
            url,
            timeout: Duration::from_millis(1000),
            ca_file,
        })
        .await
        .unwrap()
    };
    let store = connect(server.url.clone(), Some(certs.ca_file.clone())).await;
    conformance::run_all(&store).await;

    let port = server.port;
    for (what, url, ca) in [
        (
            "wrong password",
            format!("rediss://hub:wrong@localhost:{port}/"),
            Some(certs.ca_file.clone()),
        ),
        (
            "plain redis://",
            format!("redis://hub:hub-acl-secret@localhost:{port}/"),
            None,
        ),
        // The system's trust store does not know the test CA.
        ("untrusted certificate", server.url.clone(), None),
    ] {
        let store = connect(url, ca).await;
        assert!(store.ping().await.is_err(), "{what}");
    }
}
