//! Sessions in Redis, shared by every hub replica.
//!
//! Keys are namespaced and versioned (`llm-mcp-hub:v2:…`), and a session's keys name its owner
//! as well as its id (`…:session:<hex owner>:<id>`), so each hub key has its own namespace of
//! session ids. The owner is hex-encoded: key ids are free text, and a `:` in one must not
//! reach into another key's namespace. A turn costs two round trips: a
//! script that takes the lock and reads the session, and a script that writes it, indexes it
//! for its owner and releases the lock. Every command has a timeout, and the connection manager
//! reconnects by itself when Redis comes back. `rediss://` speaks TLS (rustls), verified against
//! the system's trust store or `redis_ca_file`; `user:password@` in the URL logs in as an ACL
//! user.
//!
//! Redis drops an expired session by itself; to count those, every write or refresh of a session
//! also records its deadline in one sorted set (the expiry ledger), inside the same script or
//! transaction, so a turn still costs two round trips. A periodic sweep removes the ledger
//! entries whose session is gone, in a script, so with several replicas each expiry is counted
//! by exactly one of them. Scripts touch keys they are not passed, so Redis Cluster is not
//! supported (a single primary, as the operator deploys, is).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use super::{SCHEMA_VERSION, Session, SessionStore, SessionSummary, StoreError, TurnLock, now_ms};

/// Takes the lock (KEYS[1]) if free and reads the session (KEYS[2]), refreshing its TTL and its
/// deadline in the ledger (KEYS[3]).
const BEGIN: &str = r#"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local s = redis.call('GET', KEYS[2])
  if s then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
    redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  end
  return {1, s}
end
return {0, false}
"#;

/// Writes the session, its owner index (KEYS[3], member: the id) and its deadline in the ledger
/// (KEYS[4], member: owner and id), then releases the lock, if the lock is ours.
const COMMIT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[6], ARGV[7])
redis.call('DEL', KEYS[1])
return 1
"#;

/// Removes up to ARGV[2] ledger (KEYS[1]) entries due by ARGV[1] whose session (ARGV[3] .. member)
/// is gone, and returns {removed, due}. A session still present had its deadline moved without
/// the ledger (a write by an older hub): its entry is brought up to date instead.
const SWEEP: &str = r#"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local removed = 0
for _, m in ipairs(due) do
  local pttl = redis.call('PTTL', ARGV[3] .. m)
  if pttl == -2 then
    redis.call('ZREM', KEYS[1], m)
    removed = removed + 1
  elseif pttl == -1 then
    redis.call('ZREM', KEYS[1], m)
  else
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + pttl, m)
  end
end
return {removed, #due}
"#;

/// Ledger entries looked at per sweep script call, so one call never blocks Redis for long.
const SWEEP_BATCH: usize = 500;

/// Reads the session (KEYS[1]), refreshing its TTL and its deadline in the ledger (KEYS[2]).
const READ: &str = r#"
local s = redis.call('GET', KEYS[1])
if s then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
return s
"#;

/// Releases the lock if it is ours.
const ABORT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"#;

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    begin: Script,
    commit: Script,
    abort: Script,
    read: Script,
    sweep: Script,
}

#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://` or `rediss://` (TLS), with `user:password@` for an ACL user.
    pub url: String,
    /// Per command, and for (re)connecting.
    pub timeout: Duration,
    /// PEM CA certificates to trust for `rediss://` instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

impl RedisStore {
    /// Connects lazily: the hub starts even while Redis is down and recovers when it is back.
    pub async fn connect(options: &RedisOptions) -> Result<RedisStore, StoreError> {
        // rediss:// runs on rustls, which needs its crypto provider.
        crate::tls::install_crypto_provider();
        let client = match &options.ca_file {
            None => redis::Client::open(options.url.as_str()),
            Some(path) => {
                let root_cert = std::fs::read(path).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot read the Redis CA file {}: {e}",
                        path.display()
                    ))
                })?;
                redis::Client::build_with_tls(
                    options.url.as_str(),
                    redis::TlsCertificates {
                        client_tls: None,
                        root_cert: Some(root_cert),
                    },
                )
            }
        }
        .map_err(|e| StoreError::Unavailable(format!("invalid Redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            prefix: format!("llm-mcp-hub:v{SCHEMA_VERSION}"),
            begin: Script::new(BEGIN),
            commit: Script::new(COMMIT),
            abort: Script::new(ABORT),
            read: Script::new(READ),
            sweep: Script::new(SWEEP),
        })
    }

    fn session_key(&self, owner: &str, id: &str) -> String {
        format!("{}:session:{}", self.prefix, member(owner, id))
    }
    fn lock_key(&self, owner: &str, id: &str) -> String {
        format!("{}:lock:{}", self.prefix, member(owner, id))
    }
    fn owner_key(&self, owner: &str) -> String {
        format!("{}:owner:{}", self.prefix, hex::encode(owner))
    }
    fn ledger_key(&self) -> String {
        format!("{}:expiries", self.prefix)
    }
}

/// A session's name within the store: its owner (hex, so free of `:`) and its id. It is the
/// ledger's member, and the session key's suffix (the sweep script joins the two).
fn member(owner: &str, id: &str) -> String {
    format!("{}:{id}", hex::encode(owner))
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode(json: &str) -> Result<Session, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().max(1) as u64
}

/// The ledger's score for a session refreshed now with `ttl`.
fn deadline(ttl: Duration) -> i64 {
    now_ms() + ms(ttl) as i64
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn begin_turn(
        &self,
        owner: &str,
        id: &str,
        lock_ttl: Duration,
        ttl: Duration,
    ) -> Result<TurnLock, StoreError> {
        let token = super::id::generate();
        let mut conn = self.conn.clone();
        let (locked, json): (i64, Option<String>) = self
            .begin
            .key(self.lock_key(owner, id))
            .key(self.session_key(owner, id))
            .key(self.ledger_key())
            .arg(&token)
            .arg(ms(lock_ttl))
            .arg(ms(ttl))
            .arg(deadline(ttl))
            .arg(member(owner, id))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if locked != 1 {
            return Err(StoreError::Busy);
        }
        let session = json.as_deref().map(decode).transpose()?;
        Ok(TurnLock { token, session })
    }

    async fn commit_turn(
        &self,
        session: &Session,
        token: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(session).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.conn.clone();
        let done: i64 = self
            .commit
            .key(self.lock_key(&session.owner, &session.id))
            .key(self.session_key(&session.owner, &session.id))
            .key(self.owner_key(&session.owner))
            .key(self.ledger_key())
            .arg(token)
            .arg(json)
            .arg(ms(ttl))
            .arg(session.updated_at)
            .arg(&session.id)
            .arg(deadline(ttl))
            .arg(member(&session.owner, &session.id))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        if done == 1 {
            Ok(())
        } else {
            Err(StoreError::LockLost)
        }
    }

    async fn abort_turn(&self, owner: &str, id: &str, token: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .abort
            .key(self.lock_key(owner, id))
            .arg(token)
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(
        &self,
        owner: &str,
        id: &str,
        ttl: Duration,
    ) -> Result<Option<Session>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = self
            .read
            .key(self.session_key(owner, id))
            .key(self.ledger_key())
            .arg(ms(ttl))
            .arg(deadline(ttl))
            .arg(member(owner, id))
            .invoke_async(&mut conn)
            .await
            .map_err(unavailable)?;
        json.as_deref().map(decode).transpose()
    }

    async fn delete(&self, owner: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let (deleted, _, _): (i64, i64, i64) = redis::pipe()
            .atomic()
            .del(self.session_key(owner, id))
            .zrem(self.owner_key(owner), id)
            .zrem(self.ledger_key(), member(owner, id))
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(deleted == 1)
    }

    async fn list(
        &self,
        owner: &str,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut conn = self.conn.clone();
        let index = self.owner_key(owner);
        let mut out = Vec::new();
        let mut start = offset;
        // Expired sessions linger in the index until a listing finds them gone and prunes them.
        while out.len() < limit {
            let want = limit - out.len();
            let ids: Vec<String> = conn
                .zrevrange(&index, start as isize, (start + want - 1) as isize)
                .await
                .map_err(unavailable)?;
            if ids.is_empty() {
                break;
            }
            let keys: Vec<String> = ids.iter().map(|id| self.session_key(owner, id)).collect();
            let jsons: Vec<Option<String>> = conn.mget(&keys).await.map_err(unavailable)?;
            let mut gone = Vec::new();
            for (id, json) in ids.iter().zip(jsons) {
                match json {
                    Some(json) => out.push(SessionSummary::from(&decode(&json)?)),
                    None => gone.push(id.clone()),
                }
            }
            start += ids.len() - gone.len();
            if !gone.is_empty() {
                let _: i64 = conn.zrem(&index, &gone).await.map_err(unavailable)?;
            }
        }
        Ok(out)
    }

    async fn sweep_expired(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let session_prefix = format!("{}:session:", self.prefix);
        let mut expired = 0;
        loop {
            let (removed, due): (u64, usize) = self
                .sweep
                .key(self.ledger_key())
                .arg(now_ms())
                .arg(SWEEP_BATCH)
                .arg(&session_prefix)
                .invoke_async(&mut conn)
                .await
                .map_err(unavailable)?;
            expired += removed;
            if due < SWEEP_BATCH {
                return Ok(expired);
            }
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = redis::cmd("PING")
            .query_async(&mut conn)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
