//! Google's side of gemini's "Login with Google" (`oauth-personal`), the way the hub runs gemini
//! in production: the OAuth endpoints (`oauth2.googleapis.com`: token info, refresh, revoke),
//! the user info (`www.googleapis.com`) and the Code Assist API (`cloudcode-pa.googleapis.com`),
//! over TLS with a private CA.
//!
//! The CLI keeps its real endpoints; only name resolution changes. [`FakeServer::google`]
//! listens on port 443 of a loopback address of its own (any of 127.0.0.0/8 answers on Linux)
//! and [`FakeServer::gemini_login`] writes a wrapper that runs the CLI in a mount namespace whose
//! `/etc/hosts` sends Google's hosts there, with the CA given to Node through
//! `NODE_EXTRA_CA_CERTS`. A mount namespace rather than a network namespace: the CLI must still
//! reach the hub's loopback tool server. Both need root (port 443, `unshare --mount`).
//!
//! Generation calls are unwrapped (`{model, project, request}` → the Gemini API request) and
//! recorded as [`Vendor::Gemini`] requests on `/v1beta/models/<model>:<method>`, so tests read
//! them as they read the API-key server's; every call to any Google host is also kept in
//! [`FakeServer::google_calls`] (host, method and path at `GET /_fake/google-calls`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use crate::record::{RecordedRequest, Vendor};
use crate::server::{Forced, Log, gemini, header_pairs, json_response, log_response, now_epoch};

/// The hosts gemini's Google login and Code Assist calls reach.
pub const GOOGLE_HOSTS: &[&str] = &[
    "oauth2.googleapis.com",
    "www.googleapis.com",
    "cloudcode-pa.googleapis.com",
];

/// The project Code Assist assigns the fake account (free tier).
pub const FAKE_PROJECT: &str = "fake-project-0";
/// The fake account's e-mail address.
pub const FAKE_EMAIL: &str = "hub-test@example.com";
const REFRESH_TOKEN: &str = "1//fake-refresh-token";
const SCOPES: &str = "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile openid";
/// How long an issued access token lives (Google's own: one hour).
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// One request to a Google host, as it arrived.
#[derive(Debug, Clone)]
pub struct GoogleCall {
    pub host: String,
    pub method: String,
    /// Path without the query.
    pub path: String,
    /// The bearer token it carried, if any.
    pub bearer: Option<String>,
    /// Headers in arrival order, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The raw body (JSON or a form).
    pub body: String,
}

/// The fake account's tokens: every access token issued and not yet expired is valid.
pub(crate) struct Google {
    calls: Mutex<Vec<GoogleCall>>,
    valid: Mutex<Vec<(String, u64)>>,
    issued: AtomicU64,
    pub(crate) ca_file: PathBuf,
    pub(crate) hosts_file: PathBuf,
}

impl Google {
    fn issue(&self) -> (String, u64) {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let token = format!("ya29.fake-access-{n}");
        let expires = now_epoch() + TOKEN_LIFETIME.as_secs();
        self.valid.lock().unwrap().push((token.clone(), expires));
        (token, expires)
    }

    fn is_valid(&self, token: &str) -> Option<u64> {
        let now = now_epoch();
        self.valid
            .lock()
            .unwrap()
            .iter()
            .find(|(t, exp)| t == token && *exp > now)
            .map(|(_, exp)| exp - now)
    }
}

/// What [`FakeServer::gemini_login`] wrote: the CLI to configure as the hub's gemini command
/// and the home to give the hub as `GEMINI_CLI_HOME`.
#[derive(Debug, Clone)]
pub struct GeminiLogin {
    /// A wrapper running the real CLI against this fake Google.
    pub cli: PathBuf,
    /// A gemini home logged in with Google (`.gemini/oauth_creds.json`, `.gemini/settings.json`).
    pub home: PathBuf,
    /// The login file in `home`.
    pub creds_file: PathBuf,
}

/// How a written login starts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenState {
    /// A valid access token: the CLI uses it as it is.
    #[default]
    Fresh,
    /// An expired access token: the CLI must refresh it first.
    Expired,
}

impl crate::FakeServer {
    /// A fake Google on 127.x.y.z:443 (a free loopback address), its CA and a hosts file in
    /// `dir`. `base_url` is a plain-HTTP control address on 127.0.0.1 (`/_fake/requests`).
    pub async fn google(dir: &Path) -> std::io::Result<crate::FakeServer> {
        std::fs::create_dir_all(dir)?;
        let (tls, ca_pem) = tls_config();
        let ca_file = dir.join("google-ca.pem");
        std::fs::write(&ca_file, ca_pem)?;
        let listener = bind_loopback_443().await?;
        let addr = listener.local_addr()?;
        let hosts_file = dir.join("hosts");
        std::fs::write(
            &hosts_file,
            format!(
                "127.0.0.1 localhost\n::1 localhost ip6-localhost\n{} {}\n",
                addr.ip(),
                GOOGLE_HOSTS.join(" ")
            ),
        )?;
        let google = Arc::new(Google {
            calls: Mutex::default(),
            valid: Mutex::default(),
            issued: AtomicU64::new(0),
            ca_file,
            hosts_file,
        });
        let log: Log = Arc::default();
        let forced: Forced = Arc::default();
        let state = GoogleState {
            google: google.clone(),
            log: log.clone(),
            forced: forced.clone(),
        };
        let app = Router::new().fallback(handle).with_state(state);
        let control = TcpListener::bind(("127.0.0.1", 0)).await?;
        let control_addr = control.local_addr()?;
        let tls_listener = TlsListener::start(listener, TlsAcceptor::from(Arc::new(tls)));
        let tls_app = app.clone();
        let task = tokio::spawn(async move {
            let _ = tokio::join!(
                axum::serve(tls_listener, tls_app),
                axum::serve(control, app)
            );
        });
        Ok(crate::FakeServer::assemble(
            format!("http://{control_addr}"),
            control_addr,
            Vendor::Gemini,
            log,
            forced,
            task,
            Some(google),
        ))
    }

    /// Writes a gemini home logged in with Google (`state` says whether its access token is
    /// still valid) and a wrapper that runs `cli` against this server, both in `dir`.
    ///
    /// Panics when this is not a [`FakeServer::google`] server.
    pub fn gemini_login(&self, cli: &Path, dir: &Path, state: TokenState) -> GeminiLogin {
        let google = self.google_state();
        let home = dir.join("gemini-home");
        std::fs::create_dir_all(home.join(".gemini")).expect("gemini home");
        let (access_token, expiry_secs) = match state {
            TokenState::Fresh => google.issue(),
            TokenState::Expired => ("ya29.fake-expired".to_string(), now_epoch() - 600),
        };
        let creds_file = home.join(".gemini").join("oauth_creds.json");
        let creds = json!({
            "access_token": access_token,
            "refresh_token": REFRESH_TOKEN,
            "scope": SCOPES,
            "token_type": "Bearer",
            "expiry_date": expiry_secs * 1000,
        });
        write_private(&creds_file, &creds.to_string());
        write_private(
            &home.join(".gemini").join("settings.json"),
            r#"{"security":{"auth":{"selectedType":"oauth-personal"}}}"#,
        );
        let bin = dir.join("google-bin");
        std::fs::create_dir_all(&bin).expect("wrapper dir");
        let wrapper = bin.join("gemini");
        // `unshare --mount` (without --fork) execs in place: the hub's pid is the CLI's.
        let script = format!(
            "#!/bin/sh\n\
             # gemini on its Google login, against the fake Google of a test (see fake-models).\n\
             export NODE_EXTRA_CA_CERTS={ca}\n\
             exec unshare --mount -- /bin/sh -c 'mount --bind \"$0\" /etc/hosts && exec \"$@\"' {hosts} {cli} \"$@\"\n",
            ca = shell_quote(&google.ca_file),
            hosts = shell_quote(&google.hosts_file),
            cli = shell_quote(cli),
        );
        std::fs::write(&wrapper, script).expect("write the gemini wrapper");
        set_mode(&wrapper, 0o755);
        GeminiLogin {
            cli: wrapper,
            home,
            creds_file,
        }
    }

    /// Every request that reached a Google host, in arrival order.
    pub fn google_calls(&self) -> Vec<GoogleCall> {
        self.google_state().calls.lock().unwrap().clone()
    }

    /// Refresh-token grants answered so far.
    pub fn token_refreshes(&self) -> Vec<GoogleCall> {
        self.google_calls()
            .into_iter()
            .filter(|c| c.host == "oauth2.googleapis.com" && c.path == "/token")
            .collect()
    }

    fn google_state(&self) -> &Google {
        self.google
            .as_deref()
            .expect("not a fake Google (FakeServer::google)")
    }
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a login file");
    set_mode(path, 0o600);
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// A private CA and a certificate it signed for [`GOOGLE_HOSTS`]; the CA in PEM.
fn tls_config() -> (rustls::ServerConfig, String) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: a leaf whose subject equals its issuer reads as self-signed.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fake Google test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("self-signed CA");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let names: Vec<String> = GOOGLE_HOSTS.iter().map(|h| h.to_string()).collect();
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "fake googleapis.com");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server certificate");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (config, ca.pem())
}

/// Port 443 on a loopback address no other fake holds (tests run in parallel).
async fn bind_loopback_443() -> std::io::Result<TcpListener> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().rotate_left(16);
    let mut last = None;
    for i in 0..64u32 {
        let n = seed.wrapping_add(i.wrapping_mul(2_654_435_761));
        let ip = Ipv4Addr::new(
            127,
            100 + (n % 100) as u8,
            (n >> 8) as u8,
            1 + (n >> 16) as u8 % 250,
        );
        match TcpListener::bind(SocketAddr::new(IpAddr::V4(ip), 443)).await {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => last = Some(e),
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!(
                        "the fake Google needs port 443 on a loopback address ({ip}:443: {e}); \
                         gemini's tests run gemini on its Google login, which needs root"
                    ),
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free loopback address")))
}

/// Accepts TCP connections and finishes their TLS handshakes concurrently, so one slow client
/// holds up no other.
struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    fn start(tcp: TcpListener, acceptor: TlsAcceptor) -> TlsListener {
        let addr = tcp.local_addr().expect("bound address");
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = tcp.accept().await {
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let hs = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream));
                    if let Ok(Ok(tls)) = hs.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        TlsListener { rx, addr }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended: serve nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

#[derive(Clone)]
struct GoogleState {
    google: Arc<Google>,
    log: Log,
    forced: Forced,
}

async fn handle(State(st): State<GoogleState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if parts.uri.path() == "/_fake/requests" {
        return log_response(&st.log, &parts.method);
    }
    if parts.uri.path() == "/_fake/google-calls" {
        let calls = st.google.calls.lock().unwrap();
        let list = calls
            .iter()
            .map(|c| json!({"host": c.host, "method": c.method, "path": c.path}))
            .collect();
        return json_response(StatusCode::OK, Value::Array(list));
    }
    let bytes = to_bytes(body, 64 << 20).await.unwrap_or_default();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| h.split(':').next().unwrap_or(h).to_string())
        .unwrap_or_default();
    let headers = header_pairs(&parts.headers);
    let bearer = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(String::from);
    let call = GoogleCall {
        host: host.clone(),
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        bearer: bearer.clone(),
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    };
    st.google.calls.lock().unwrap().push(call.clone());
    let g = &st.google;
    match (host.as_str(), call.method.as_str(), call.path.as_str()) {
        ("oauth2.googleapis.com", "POST", "/tokeninfo") => {
            let token = bearer.or_else(|| form_value(&call.body, "access_token"));
            match token.as_deref().and_then(|t| g.is_valid(t)) {
                Some(left) => json_response(
                    StatusCode::OK,
                    json!({"azp": "fake-client", "aud": "fake-client", "sub": "100000000000000000001",
                           "scope": SCOPES, "exp": (now_epoch() + left).to_string(),
                           "expires_in": left, "email": FAKE_EMAIL, "email_verified": "true",
                           "access_type": "offline"}),
                ),
                None => json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_token", "error_description": "Invalid Value"}),
                ),
            }
        }
        ("oauth2.googleapis.com", "POST", "/token") => {
            let grant = form_value(&call.body, "grant_type");
            let refresh = form_value(&call.body, "refresh_token");
            if grant.as_deref() != Some("refresh_token")
                || refresh.as_deref() != Some(REFRESH_TOKEN)
            {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid_grant", "error_description": "Bad Request"}),
                );
            }
            let (token, _) = g.issue();
            json_response(
                StatusCode::OK,
                json!({"access_token": token, "expires_in": TOKEN_LIFETIME.as_secs() - 1,
                       "scope": SCOPES, "token_type": "Bearer"}),
            )
        }
        ("oauth2.googleapis.com", "POST", "/revoke") => json_response(StatusCode::OK, json!({})),
        ("www.googleapis.com", "GET", "/oauth2/v2/userinfo") => {
            if bearer.as_deref().and_then(|t| g.is_valid(t)).is_none() {
                return unauthenticated();
            }
            json_response(
                StatusCode::OK,
                json!({"id": "100000000000000000001", "email": FAKE_EMAIL,
                       "verified_email": true, "name": "Hub Test"}),
            )
        }
        ("cloudcode-pa.googleapis.com", _, path) => {
            if bearer.as_deref().and_then(|t| g.is_valid(t)).is_none() {
                return unauthenticated();
            }
            let method = path.strip_prefix("/v1internal:").unwrap_or("");
            code_assist(&st, method, &call, parts.uri.query())
        }
        _ => crate::server::gemini_error(404, "NOT_FOUND", "Not found"),
    }
}

fn unauthenticated() -> Response {
    crate::server::gemini_error(
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
    )
}

fn form_value(body: &str, key: &str) -> Option<String> {
    form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

/// The Code Assist methods gemini calls. Generation and token counting are answered as the
/// Gemini API fake answers them, then wrapped the way Code Assist wraps them.
fn code_assist(st: &GoogleState, method: &str, call: &GoogleCall, query: Option<&str>) -> Response {
    let body: Value = serde_json::from_str(&call.body).unwrap_or(Value::Null);
    let ok = |v: Value| json_response(StatusCode::OK, v);
    match method {
        // A Workspace account names its own project (gemini sends GOOGLE_CLOUD_PROJECT) and
        // Code Assist assigns none.
        "loadCodeAssist" if body["cloudaicompanionProject"].is_string() => ok(json!({
            "currentTier": {"id": "standard-tier", "name": "Gemini Code Assist Standard",
                            "hasOnboardedPreviously": true},
            "allowedTiers": [{"id": "standard-tier", "isDefault": true}],
        })),
        "loadCodeAssist" => ok(json!({
            "currentTier": {"id": "free-tier", "name": "Gemini Code Assist for individuals",
                            "hasOnboardedPreviously": true},
            "allowedTiers": [{"id": "free-tier", "name": "Gemini Code Assist for individuals",
                              "isDefault": true}],
            "cloudaicompanionProject": FAKE_PROJECT,
        })),
        "onboardUser" => ok(json!({"name": "operations/fake-onboard", "done": true,
            "response": {"cloudaicompanionProject": {"id": FAKE_PROJECT, "name": FAKE_PROJECT}}})),
        "listExperiments" => ok(json!({"experimentIds": [], "flags": []})),
        "retrieveUserQuota" => ok(json!({"buckets": []})),
        "fetchAdminControls" | "getCodeAssistGlobalUserSetting" | "recordCodeAssistMetrics" => {
            ok(json!({}))
        }
        "streamGenerateContent" | "generateContent" | "countTokens" => {
            let inner = body.get("request").cloned().unwrap_or(Value::Null);
            let model = body
                .get("model")
                .or_else(|| inner.get("model"))
                .and_then(Value::as_str)
                .unwrap_or("gemini-fake")
                .trim_start_matches("models/")
                .to_string();
            let rec = RecordedRequest {
                vendor: Vendor::Gemini,
                method: call.method.clone(),
                path: format!("/v1beta/models/{model}:{method}"),
                query: query.map(String::from),
                headers: call.headers.clone(),
                body: inner,
            };
            st.log.lock().unwrap().push(rec.clone());
            let forced = st.forced.lock().unwrap().clone();
            let resp = gemini(&rec, forced.as_deref());
            if method == "countTokens" || resp.status() != StatusCode::OK {
                return resp;
            }
            wrap_generation(resp)
        }
        _ => crate::server::gemini_error(404, "NOT_FOUND", "Not found"),
    }
}

/// Code Assist answers `{"response": <Gemini API response>, "traceId": …}`, chunk by chunk when
/// streaming. The Gemini fake sends each SSE frame (or a whole JSON answer) as one chunk; a
/// chunk that is no complete JSON (a stalled answer's `{`) passes as it is.
fn wrap_generation(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let trace = format!("fake-trace-{:x}", now_epoch());
    let stream = body.into_data_stream().map(move |chunk| {
        chunk.map(|b| {
            let text = String::from_utf8_lossy(&b);
            if let Some(data) = text.strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str::<Value>(data.trim()) {
                    let wrapped = json!({"response": v, "traceId": trace});
                    return Bytes::from(format!("data: {wrapped}\r\n\r\n"));
                }
            } else if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Bytes::from(json!({"response": v, "traceId": trace}).to_string());
            }
            b
        })
    });
    Response::from_parts(parts, Body::from_stream(stream))
}
