//! Chat: resolves the client's `model`, loads the session, runs the turn on the backend and
//! stores it when — and only when — the provider answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::BoxStream;

use crate::auth::Caller;
use crate::backend::{Backend, ChatRequest, ProviderInfo, ProviderModels};
use crate::metrics::Metrics;
use crate::provider::{ChatEvent, Message, ProviderError, Role};
use crate::session::{self, Session, SessionStore, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    pub provider: String,
    pub model: String,
}

impl ResolvedModel {
    /// The id clients see in responses: `provider/model`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("The model '{model}' does not exist. Available models: {}", available.join(", "))]
    ModelNotFound {
        model: String,
        available: Vec<String>,
    },
    #[error("This API key may not use provider '{0}'")]
    ProviderNotAllowed(String),
    #[error("Invalid session id: use 8 to 128 characters from A-Z, a-z, 0-9, '-' and '_'")]
    InvalidSessionId,
    #[error("Session '{0}' does not exist (or has expired)")]
    SessionNotFound(String),
    #[error("Session '{0}' is busy with another request; retry when it has finished")]
    SessionBusy(String),
    #[error(
        "This API key holds its maximum of {0} sessions, all busy with a turn; retry when one has finished"
    )]
    SessionQuotaExceeded(usize),
    #[error("{0}")]
    SessionTooLarge(String),
    #[error("The session store is unavailable; try again shortly")]
    StoreUnavailable(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

/// Session limits and timing, from the configuration.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub ttl: Duration,
    pub max_messages: usize,
    pub max_bytes: usize,
    pub busy_wait: Duration,
}

/// A session as clients read it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionView {
    pub id: String,
    pub object: &'static str,
    pub provider: String,
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: i64,
    pub messages: Vec<Message>,
}

/// A started turn: the session it belongs to (None when the store is down and the client
/// asked for none), the model, and the events.
pub struct Turn {
    pub session_id: Option<String>,
    pub model: ResolvedModel,
    pub events: BoxStream<'static, Result<ChatEvent, ServiceError>>,
}

/// What a client asks for in one request.
pub struct TurnRequest {
    pub model: String,
    pub session_id: Option<String>,
    pub system: Option<String>,
    /// User, assistant and tool messages, ending with the new user message or tool results.
    pub messages: Vec<Message>,
    /// The client's tools (function calling).
    pub tools: Option<crate::provider::ToolSet>,
}

#[derive(Clone)]
pub struct ChatService {
    backend: Arc<dyn Backend>,
    store: Arc<dyn SessionStore>,
    /// Set once the store has answered a ping (see [`ChatService::store_reached`]).
    store_reached: Arc<AtomicBool>,
    settings: SessionSettings,
    metrics: Arc<Metrics>,
}

impl ChatService {
    pub fn new(
        backend: Arc<dyn Backend>,
        store: Arc<dyn SessionStore>,
        settings: SessionSettings,
        metrics: Arc<Metrics>,
    ) -> ChatService {
        ChatService {
            backend,
            store,
            store_reached: Arc::default(),
            settings,
            metrics,
        }
    }

    /// Whether the session store has answered since this process started: asks it until it
    /// has once, then stays true. A process that has never reached its store (a Redis still
    /// starting, a Service name not resolvable yet) would answer a client's `X-Session-ID`
    /// with an error, so it is not ready; a store lost later does not make it unready, as
    /// requests without a session still work then.
    pub async fn store_reached(&self) -> bool {
        if self.store_reached.load(Ordering::Relaxed) {
            return true;
        }
        let reached = self.store.ping().await.is_ok();
        if reached {
            self.store_reached.store(true, Ordering::Relaxed);
        }
        reached
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn store(&self) -> &Arc<dyn SessionStore> {
        &self.store
    }

    pub fn providers(&self) -> Vec<ProviderInfo> {
        self.backend.providers()
    }

    /// Every id a client may put in `model`: each provider name and each `provider/model`.
    pub fn model_ids(&self) -> Vec<String> {
        model_ids(&self.backend.models())
    }

    pub fn resolve(&self, model: &str) -> Result<ResolvedModel, ServiceError> {
        resolve(&self.backend.models(), model)
    }

    /// Starts a turn: lock and read the session, then run the provider. The session is
    /// written when the provider's answer is complete; an error or a dropped stream leaves it
    /// as it was.
    pub async fn start_turn(
        &self,
        caller: &Caller,
        request: TurnRequest,
    ) -> Result<Turn, ServiceError> {
        let providers = self.backend.models();
        let model = resolve(&providers, &request.model)?;
        if !caller.may_use(&model.provider) {
            return Err(ServiceError::ProviderNotAllowed(model.provider));
        }
        let request_timeout = providers
            .iter()
            .find(|p| p.name == model.provider)
            .map_or(300, |p| p.request_timeout_secs);
        // The lock outlives the longest possible request, so a crashed hub cannot hold a
        // session forever and a slow one cannot lose it mid-turn.
        let lock_ttl = Duration::from_secs(request_timeout + 60);

        let client_chose = request.session_id.is_some();
        let id = match request.session_id {
            Some(id) if session::id::is_valid(&id) => id,
            Some(_) => return Err(ServiceError::InvalidSessionId),
            None => session::id::generate(),
        };
        let lock = match self.lock_session(&caller.key_id, &id, lock_ttl).await {
            Ok(lock) => Some(lock),
            // Without a session asked for, a request still works while the store is down.
            Err(ServiceError::StoreUnavailable(reason)) if !client_chose => {
                tracing::warn!(%reason, "session store unavailable: answering without a session");
                None
            }
            Err(e) => return Err(e),
        };
        let (token, existing) = match lock {
            Some(lock) => (Some(lock.token), lock.session),
            None => (None, None),
        };
        let guard = TurnGuard {
            store: self.store.clone(),
            owner: caller.key_id.clone(),
            id: id.clone(),
            token,
        };
        // The store keys sessions by owner, so this holds by construction; checked again because
        // a session of another key must never be continued.
        if let Some(s) = &existing
            && s.owner != caller.key_id
        {
            return Err(ServiceError::SessionNotFound(id));
        }

        let history = existing.as_ref().map_or(&[][..], |s| &s.messages[..]);
        let new_messages = new_turn_messages(history, &request.messages);
        let mut conversation = history.to_vec();
        conversation.extend(new_messages.iter().cloned());
        let system = request
            .system
            .or_else(|| existing.as_ref().and_then(|s| s.system.clone()));

        let now = now_ms();
        let mut updated = existing.clone().unwrap_or_else(|| Session {
            id: id.clone(),
            owner: caller.key_id.clone(),
            provider: model.provider.clone(),
            model: model.model.clone(),
            system: system.clone(),
            created_at: now,
            updated_at: now,
            messages: Vec::new(),
        });
        updated.provider = model.provider.clone();
        updated.model = model.model.clone();
        updated.system = system.clone();
        updated.messages = conversation.clone();
        self.check_limits(&updated)?;

        let events = self.backend.chat(ChatRequest {
            provider: model.provider.clone(),
            model: model.model.clone(),
            system,
            messages: conversation,
            tools: request.tools,
            owner: caller.key_id.clone(),
        });
        let session_id = guard.token.is_some().then(|| id.clone());
        let is_new = existing.is_none();
        let service = self.clone();
        let events = async_stream::stream! {
            let mut guard = guard;
            let mut events = events;
            let mut reply = String::new();
            let mut calls = Vec::new();
            while let Some(event) = events.next().await {
                match event {
                    Ok(ChatEvent::Delta(text)) => {
                        reply.push_str(&text);
                        yield Ok(ChatEvent::Delta(text));
                    }
                    Ok(ChatEvent::ToolCalls(made)) => {
                        calls.extend(made.iter().cloned());
                        yield Ok(ChatEvent::ToolCalls(made));
                    }
                    Ok(ChatEvent::Done { usage }) => {
                        if let Some(token) = guard.token.take() {
                            // An answer that calls tools is stored like any answer: the
                            // client's next request may then bring only the results.
                            let mut answer = Message::text(Role::Assistant, std::mem::take(&mut reply));
                            answer.tool_calls = std::mem::take(&mut calls);
                            updated.messages.push(answer);
                            updated.updated_at = now_ms();
                            if let Err(e) = service.commit(&updated, &token, is_new).await {
                                guard.token = Some(token);
                                yield Err(e);
                                return;
                            }
                        }
                        yield Ok(ChatEvent::Done { usage });
                        return;
                    }
                    Err(e) => {
                        yield Err(ServiceError::Provider(e));
                        return;
                    }
                }
            }
        };
        Ok(Turn {
            session_id,
            model,
            events: Box::pin(events),
        })
    }

    fn check_limits(&self, session: &Session) -> Result<(), ServiceError> {
        // Room for the reply is kept: the turn adds one more message.
        if session.messages.len() + 1 > self.settings.max_messages {
            return Err(ServiceError::SessionTooLarge(format!(
                "The session would exceed {} messages; start a new session",
                self.settings.max_messages
            )));
        }
        if session.stored_bytes() > self.settings.max_bytes {
            return Err(ServiceError::SessionTooLarge(format!(
                "The session would exceed {} bytes; start a new session",
                self.settings.max_bytes
            )));
        }
        Ok(())
    }

    /// Takes the session's lock, waiting up to `busy_wait` for a turn in progress.
    async fn lock_session(
        &self,
        owner: &str,
        id: &str,
        lock_ttl: Duration,
    ) -> Result<session::TurnLock, ServiceError> {
        let deadline = Instant::now() + self.settings.busy_wait;
        let mut pause = Duration::from_millis(10);
        loop {
            let result = self
                .timed(
                    "begin_turn",
                    self.store
                        .begin_turn(owner, id, lock_ttl, self.settings.ttl),
                )
                .await;
            match result {
                Ok(lock) => return Ok(lock),
                Err(StoreError::Busy) if Instant::now() + pause < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(250));
                }
                Err(StoreError::Busy) => return Err(ServiceError::SessionBusy(id.to_string())),
                Err(e) => return Err(store_error(e)),
            }
        }
    }

    async fn commit(
        &self,
        session: &Session,
        token: &str,
        is_new: bool,
    ) -> Result<(), ServiceError> {
        self.timed(
            "commit_turn",
            self.store.commit_turn(session, token, self.settings.ttl),
        )
        .await
        .map_err(|e| match e {
            StoreError::LockLost => ServiceError::SessionBusy(session.id.clone()),
            StoreError::QuotaExceeded(max) => ServiceError::SessionQuotaExceeded(max),
            e => store_error(e),
        })?;
        if is_new {
            self.metrics
                .sessions_created
                .with_label_values(&[self.store.kind()])
                .inc();
        }
        Ok(())
    }

    pub async fn get_session(
        &self,
        caller: &Caller,
        id: &str,
    ) -> Result<SessionView, ServiceError> {
        let session = self
            .timed("get", self.store.get(&caller.key_id, id, self.settings.ttl))
            .await
            .map_err(store_error)?
            .filter(|s| s.owner == caller.key_id)
            .ok_or_else(|| ServiceError::SessionNotFound(id.to_string()))?;
        Ok(self.view(session))
    }

    pub async fn delete_session(&self, caller: &Caller, id: &str) -> Result<(), ServiceError> {
        let deleted = self
            .timed("delete", self.store.delete(&caller.key_id, id))
            .await
            .map_err(store_error)?;
        if deleted {
            Ok(())
        } else {
            Err(ServiceError::SessionNotFound(id.to_string()))
        }
    }

    pub async fn list_sessions(
        &self,
        caller: &Caller,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<session::SessionSummary>, ServiceError> {
        self.timed("list", self.store.list(&caller.key_id, offset, limit))
            .await
            .map_err(store_error)
    }

    pub fn view(&self, session: Session) -> SessionView {
        SessionView {
            expires_at: (now_ms() + self.settings.ttl.as_millis() as i64) / 1000,
            created_at: session.created_at / 1000,
            updated_at: session.updated_at / 1000,
            object: "session",
            id: session.id,
            provider: session.provider,
            model: session.model,
            messages: session.messages,
        }
    }

    /// Runs one store operation, recording its latency and failure.
    async fn timed<T>(
        &self,
        op: &str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = fut.await;
        self.metrics
            .store_duration
            .with_label_values(&[op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result
            && !matches!(e, StoreError::Busy)
        {
            self.metrics.store_errors.with_label_values(&[op]).inc();
        }
        result
    }
}

fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::Busy | StoreError::LockLost => ServiceError::StoreUnavailable(e.to_string()),
        StoreError::QuotaExceeded(max) => ServiceError::SessionQuotaExceeded(max),
        StoreError::Unavailable(reason) | StoreError::Corrupt(reason) => {
            tracing::warn!(%reason, "session store failure");
            ServiceError::StoreUnavailable(reason)
        }
    }
}

/// Releases the session lock of a turn that ends without storing (error, cancellation).
struct TurnGuard {
    store: Arc<dyn SessionStore>,
    owner: String,
    id: String,
    token: Option<String>,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let store = self.store.clone();
        let id = std::mem::take(&mut self.id);
        let owner = std::mem::take(&mut self.owner);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.abort_turn(&owner, &id, &token).await {
                    // The lock expires by itself; this only delays the next turn.
                    tracing::warn!(error = %e, "could not release a session lock");
                }
            });
        }
    }
}

/// The messages a request adds to the stored history. Clients that resend the whole
/// conversation (as OpenAI clients do) start with the history: only the rest is new.
pub fn new_turn_messages(history: &[Message], request: &[Message]) -> Vec<Message> {
    if !history.is_empty() && request.len() > history.len() && request.starts_with(history) {
        request[history.len()..].to_vec()
    } else {
        request.to_vec()
    }
}

pub fn model_ids(providers: &[ProviderModels]) -> Vec<String> {
    providers
        .iter()
        .flat_map(|p| {
            std::iter::once(p.name.clone())
                .chain(p.models.iter().map(|m| format!("{}/{m}", p.name)))
        })
        .collect()
}

/// `claude` → its default model; `claude/opus` → that model if allowed; a bare CLI model name
/// (`gemini-2.5-pro`) → the one provider that lists it.
pub fn resolve(providers: &[ProviderModels], model: &str) -> Result<ResolvedModel, ServiceError> {
    let not_found = || ServiceError::ModelNotFound {
        model: model.to_string(),
        available: model_ids(providers),
    };
    let (provider, cli_model) = match model.split_once('/') {
        Some((p, m)) => (p, Some(m)),
        None => (model, None),
    };
    if let Some(p) = providers.iter().find(|p| p.name == provider) {
        let cli_model = cli_model.unwrap_or(&p.default_model);
        // No models known means no worker has reported yet: the backend then answers 503,
        // which is more honest than calling the model unknown.
        return if p.models.is_empty() || p.models.iter().any(|m| m == cli_model) {
            Ok(ResolvedModel {
                provider: p.name.clone(),
                model: cli_model.to_string(),
            })
        } else {
            Err(not_found())
        };
    }
    let mut owners = providers
        .iter()
        .filter(|p| cli_model.is_none() && p.models.iter().any(|m| m == model));
    match (owners.next(), owners.next()) {
        (Some(p), None) => Ok(ResolvedModel {
            provider: p.name.clone(),
            model: model.to_string(),
        }),
        _ => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, models: &[&str]) -> ProviderModels {
        ProviderModels {
            name: name.into(),
            models: models.iter().map(|m| m.to_string()).collect(),
            default_model: models[0].into(),
            request_timeout_secs: 1,
        }
    }

    #[test]
    fn resolves_names_and_paths() {
        let ps = [
            provider("claude", &["sonnet", "opus"]),
            provider("gemini", &["gemini-2.5-pro"]),
        ];
        let r = |m| resolve(&ps, m).map(|r| r.id());
        assert_eq!(r("claude").unwrap(), "claude/sonnet");
        assert_eq!(r("claude/opus").unwrap(), "claude/opus");
        assert_eq!(r("gemini-2.5-pro").unwrap(), "gemini/gemini-2.5-pro");
        let err = r("claude/gpt-4").unwrap_err();
        assert!(err.to_string().contains("claude/sonnet"), "{err}");
        assert!(r("gpt-4o").is_err());
        assert!(r("").is_err());
    }

    fn m(role: Role, text: &str) -> Message {
        Message::text(role, text)
    }

    #[test]
    fn resent_history_is_not_duplicated() {
        let history = [m(Role::User, "a"), m(Role::Assistant, "b")];
        let resend = [
            m(Role::User, "a"),
            m(Role::Assistant, "b"),
            m(Role::User, "c"),
        ];
        assert_eq!(new_turn_messages(&history, &resend), [m(Role::User, "c")]);
        // Only the new message: appended to the history.
        assert_eq!(
            new_turn_messages(&history, &[m(Role::User, "c")]),
            [m(Role::User, "c")]
        );
        // A different conversation is taken as new messages, after the history.
        let other = [
            m(Role::User, "x"),
            m(Role::Assistant, "y"),
            m(Role::User, "z"),
        ];
        assert_eq!(new_turn_messages(&history, &other), other);
        assert_eq!(new_turn_messages(&[], &other), other);
    }
}
