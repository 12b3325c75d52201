//! The router's side of the worker protocol (`crate::wire`): open a chat and read its events,
//! read a worker's status.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::header::AUTHORIZATION;

use crate::provider::{ChatEvent, ProviderError};
use crate::wire::{self, WireEvent, WorkerChatRequest, WorkerStatus};

/// Why a chat could not be opened on a worker. All of these happen before any byte reached the
/// client, so the request may go to another worker.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot reach the worker: {0}")]
    Unreachable(String),
    #[error("the worker refused the router's credential (check the worker token Secret)")]
    Unauthorized,
    /// The worker answered with an error instead of a stream (busy, draining, wrong provider).
    #[error("the worker refused the turn: {0}")]
    Refused(ProviderError),
    #[error("the worker answered {0}")]
    Status(u16),
}

/// Events of one turn on a worker. A broken connection is an error item.
pub type WorkerEvents = BoxStream<'static, Result<ChatEvent, Broken>>;

/// The stream from a worker ended or broke without the turn's end: the worker went away.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Broken {
    #[error("{0}")]
    Provider(ProviderError),
    #[error("the connection to the worker broke: {0}")]
    Connection(String),
}

#[derive(Clone)]
pub struct WorkerClient {
    http: reqwest::Client,
    status_timeout: Duration,
}

impl WorkerClient {
    pub fn new(connect_timeout: Duration, status_timeout: Duration) -> WorkerClient {
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            // Streamed deltas are small writes; see server.rs on Nagle.
            .tcp_nodelay(true)
            .build()
            .expect("an HTTP client with default TLS settings builds");
        WorkerClient {
            http,
            status_timeout,
        }
    }

    fn post(&self, base: &str, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(format!("{base}{path}"))
            .header(wire::PROTOCOL_HEADER, wire::PROTOCOL_VERSION);
        match token {
            Some(t) => request.header(AUTHORIZATION, format!("Bearer {t}")),
            None => request,
        }
    }

    pub async fn status(&self, base: &str, token: Option<&str>) -> Result<WorkerStatus, String> {
        let mut request = self
            .http
            .get(format!("{base}{}", wire::STATUS_PATH))
            .header(wire::PROTOCOL_HEADER, wire::PROTOCOL_VERSION)
            .timeout(self.status_timeout);
        if let Some(t) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = request.send().await.map_err(|e| chain(&e))?;
        if !response.status().is_success() {
            return Err(format!("status answered {}", response.status()));
        }
        response
            .json::<WorkerStatus>()
            .await
            .map_err(|e| format!("unreadable status: {}", chain(&e)))
    }

    /// Opens a turn. Dropping the returned stream closes the connection, which makes the
    /// worker cancel the turn and kill its CLI.
    pub async fn chat(
        &self,
        base: &str,
        token: Option<&str>,
        request: &WorkerChatRequest,
    ) -> Result<WorkerEvents, OpenError> {
        let response = self
            .post(base, wire::CHAT_PATH, token)
            .json(request)
            .send()
            .await
            .map_err(|e| OpenError::Unreachable(chain(&e)))?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(OpenError::Unauthorized);
        }
        if status != 200 {
            return Err(match response.json::<WireEvent>().await {
                Ok(WireEvent::Error { error }) => OpenError::Refused(error),
                _ => OpenError::Status(status),
            });
        }
        let events = wire::sse_data(response.bytes_stream()).map(|data| {
            let data = data.map_err(Broken::Connection)?;
            let event: WireEvent = serde_json::from_str(&data)
                .map_err(|e| Broken::Connection(format!("unreadable event: {e}")))?;
            Result::<ChatEvent, ProviderError>::from(event).map_err(Broken::Provider)
        });
        Ok(events.boxed())
    }
}

/// An error with its causes: reqwest's own message hides them (refused, reset, timed out…).
fn chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
