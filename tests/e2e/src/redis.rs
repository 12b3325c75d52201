//! A real `redis-server` on a free loopback port, for tests. Persistence is append-only with
//! fsync on every write, so a restart proves nothing acknowledged is lost.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// What the hub's Redis user needs (as docs/kubernetes.md and the README give it): its own keys,
/// the commands of the session store, and nothing else.
pub const HUB_ACL: &str = "~llm-mcp-hub:* resetchannels -@all +@connection +get +set +del +mget \
    +pexpire +pttl +zadd +zrem +zrevrange +zrangebyscore +evalsha +eval +script|load +multi +exec";

pub struct RedisServer {
    pub port: u16,
    pub url: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
    extra: Vec<String>,
    /// TLS only (`--tls-port`): readiness is a TCP connect, not a plain PING.
    tls: bool,
}

impl RedisServer {
    pub async fn start() -> RedisServer {
        RedisServer::start_with(&["--appendfsync", "always"]).await
    }

    /// With the default `appendfsync everysec`, as a production Redis would run.
    pub async fn start_fast() -> RedisServer {
        RedisServer::start_with(&["--appendfsync", "everysec"]).await
    }

    async fn start_with(extra: &[&str]) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = RedisServer {
            port,
            url: format!("redis://127.0.0.1:{port}/"),
            dir: crate::private_dir(),
            child: None,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: false,
        };
        server.restart().await;
        server
    }

    /// TLS only, on `port` (no plain port), with the certificate in `certs`, and one ACL user
    /// (`user`, `password`) allowed only the hub's keys and the commands its store uses; the
    /// `default` user is off, so every connection must log in. `url` is `rediss://` for that
    /// user.
    pub async fn start_tls(
        certs: &crate::tls::TestCerts,
        user: &str,
        password: &str,
    ) -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = |p: &std::path::Path| p.display().to_string();
        let mut extra = vec![
            "--port".to_string(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            path(&certs.cert_file),
            "--tls-key-file".into(),
            path(&certs.key_file),
            "--tls-ca-cert-file".into(),
            path(&certs.ca_file),
            "--tls-auth-clients".into(),
            "no".into(),
            // Each word its own argument: redis-server joins a directive's arguments itself.
            "--user".into(),
            "default".into(),
            "off".into(),
            "--user".into(),
            user.into(),
            "on".into(),
            format!(">{password}"),
        ];
        extra.extend(HUB_ACL.split_whitespace().map(String::from));
        let mut server = RedisServer {
            port,
            url: format!("rediss://{user}:{password}@localhost:{port}/"),
            dir: crate::private_dir(),
            child: None,
            extra,
            tls: true,
        };
        server.restart().await;
        server
    }

    fn binary() -> PathBuf {
        std::env::var_os("REDIS_SERVER")
            .map_or_else(|| PathBuf::from("redis-server"), PathBuf::from)
    }

    /// Starts (again) on the same port and data directory.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "redis-server already running");
        let child = Command::new(Self::binary())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "yes"])
            .args(&self.extra)
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server; .ci/run does it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.tls {
                if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
                {
                    return;
                }
                assert!(Instant::now() < deadline, "redis-server did not start");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let _ = s.write_all(b"PING\r\n").await;
                let mut buf = [0u8; 16];
                if let Ok(n) = s.read(&mut buf).await
                    && buf[..n].starts_with(b"+PONG")
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server hard (SIGKILL): only what was fsynced survives.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
}
