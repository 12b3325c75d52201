//! A [`Hub`] that forwards to a running hub over its REST API: chat via
//! `/v1/chat/completions` (streaming, with `X-Session-ID`), sessions via `/v1/sessions`,
//! providers via `/v1/providers`. The caller is the hub API key this client sends.

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use serde_json::{Value, json};

use super::{ClientError, Hub, HubTurn};
use crate::api::chat::SESSION_HEADER;
use crate::auth::Caller;
use crate::provider::{ChatEvent, Role, Usage};
use crate::service::TurnRequest;
use crate::wire;

pub struct RemoteHub {
    base: String,
    /// `base` without any userinfo, for messages and logs.
    shown: String,
    api_key: Option<String>,
    http: reqwest::Client,
}

/// Why a `--hub-url` is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubUrlError {
    #[error("--hub-url is not a URL ({0})")]
    Invalid(String),
    #[error("--hub-url {0}: expected an http:// or https:// URL")]
    Scheme(String),
    #[error(
        "--hub-url {0}: plain http to a host other than this machine would send the hub key in \
         clear text; use https:// (or a loopback address: localhost, 127.0.0.1, [::1])"
    )]
    Cleartext(String),
    #[error(
        "--hub-url {0}: a user or password in the URL would replace the hub key (both are the \
         Authorization header); pass the key with --api-key"
    )]
    Userinfo(String),
}

/// A checked `--hub-url`: https anywhere, plain http to loopback only (the key goes in every
/// request). No userinfo: it would be sent instead of the key, and would show in messages.
/// Returns the URL to use and the form of it that messages show.
pub fn check_hub_url(url: &str) -> Result<(String, String), HubUrlError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| HubUrlError::Invalid(e.to_string()))?;
    let mut shown = parsed.clone();
    // Never fails for http(s) URLs, which have a host.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    let shown = shown.as_str().trim_end_matches('/').to_string();
    match parsed.scheme() {
        "https" => {}
        "http" => {
            // The URL parser lower-cases names and normalises addresses (`[::1]`, `127.1`).
            let loopback = parsed.host_str().is_some_and(|host| {
                host == "localhost"
                    || host
                        .trim_start_matches('[')
                        .trim_end_matches(']')
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            });
            if !loopback {
                return Err(HubUrlError::Cleartext(shown));
            }
        }
        _ => return Err(HubUrlError::Scheme(shown)),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(HubUrlError::Userinfo(shown));
    }
    Ok((url.trim_end_matches('/').to_string(), shown))
}

impl RemoteHub {
    /// https URLs are verified against the system's trust store (`SSL_CERT_FILE` and
    /// `SSL_CERT_DIR` are honoured, for a private CA).
    pub fn new(url: &str, api_key: Option<String>) -> anyhow::Result<RemoteHub> {
        let (base, shown) = check_hub_url(url)?;
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::builder()
            .build()
            .context("cannot set up the HTTP client for --hub-url")?;
        Ok(RemoteHub {
            base,
            shown,
            api_key,
            http,
        })
    }

    /// The hub's URL without userinfo.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.api_key {
            Some(key) => request.header(AUTHORIZATION, format!("Bearer {key}")),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| {
            ClientError::new(
                503,
                "hub_unreachable",
                // The whole chain: reqwest's own message hides the cause (refused, certificate…).
                format!(
                    "cannot reach the hub at {}: {:#}",
                    self.shown,
                    anyhow::Error::from(e)
                ),
            )
        })?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(error_response(response).await)
        }
    }

    async fn get_json(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.request(reqwest::Method::GET, path))
            .await?
            .json()
            .await
            .map_err(|e| ClientError::new(502, "hub_error", format!("unreadable hub answer: {e}")))
    }
}

/// The REST error body (`{"error": {"message", "code"}}`) as a failure.
async fn error_response(response: reqwest::Response) -> ClientError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body: Value = response.json().await.unwrap_or_default();
    let mut failure = error_body(status, &body);
    failure.retry_after = retry_after;
    failure
}

fn error_body(status: u16, body: &Value) -> ClientError {
    let error = &body["error"];
    ClientError::new(
        status,
        error["code"].as_str().unwrap_or("hub_error"),
        error["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| format!("the hub answered {status}")),
    )
}

fn path_segment(id: &str) -> String {
    // Session ids are [A-Za-z0-9_-]; anything else would be refused by the hub anyway.
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[async_trait]
impl Hub for RemoteHub {
    async fn providers(&self) -> Result<Vec<Value>, ClientError> {
        let body = self.get_json("/v1/providers").await?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }

    async fn start_turn(
        &self,
        _caller: &Caller,
        request: TurnRequest,
    ) -> Result<HubTurn, ClientError> {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        for m in &request.messages {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool => "tool",
            };
            messages.push(json!({"role": role, "content": m.content}));
        }
        let mut http = self
            .request(reqwest::Method::POST, "/v1/chat/completions")
            .json(&json!({
                "model": request.model,
                "stream": true,
                "stream_options": {"include_usage": true},
                "messages": messages,
            }));
        if let Some(id) = &request.session_id {
            http = http.header(SESSION_HEADER, id);
        }
        let response = self.send(http).await?;
        let session_id = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let mut data = wire::sse_data(response.bytes_stream()).map(|item| {
            item.map_err(|e| {
                ClientError::new(502, "hub_error", format!("the hub's stream broke: {e}"))
            })
        });
        // The first chunk (the role) names the model.
        let first = match data.next().await {
            Some(Ok(first)) => first,
            Some(Err(f)) => return Err(f),
            None => return Err(ended()),
        };
        let chunk: Value = serde_json::from_str(&first).unwrap_or_default();
        if chunk.get("error").is_some() {
            return Err(error_body(502, &chunk));
        }
        let model = chunk["model"]
            .as_str()
            .unwrap_or(&request.model)
            .to_string();
        let events = async_stream::stream! {
            let mut data = data;
            let mut usage: Option<Usage> = None;
            while let Some(payload) = data.next().await {
                let payload = match payload {
                    Ok(p) => p,
                    Err(f) => { yield Err(f); return; }
                };
                if payload == "[DONE]" {
                    yield Ok(ChatEvent::Done { usage });
                    return;
                }
                let chunk: Value = match serde_json::from_str(&payload) {
                    Ok(c) => c,
                    Err(e) => {
                        yield Err(ClientError::new(502, "hub_error", format!("unreadable chunk: {e}")));
                        return;
                    }
                };
                if chunk.get("error").is_some() {
                    yield Err(error_body(502, &chunk));
                    return;
                }
                if let Some(u) = chunk.get("usage").filter(|u| u.is_object()) {
                    usage = Some(Usage {
                        input_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
                        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
                    });
                }
                if let Some(text) = chunk["choices"][0]["delta"]["content"].as_str()
                    && !text.is_empty()
                {
                    yield Ok(ChatEvent::Delta(text.to_string()));
                }
            }
            yield Err(ended());
        };
        Ok(HubTurn {
            session_id,
            model,
            events: events.boxed(),
        })
    }

    async fn get_session(&self, _caller: &Caller, id: &str) -> Result<Value, ClientError> {
        self.get_json(&format!("/v1/sessions/{}", path_segment(id)))
            .await
    }

    async fn delete_session(&self, _caller: &Caller, id: &str) -> Result<(), ClientError> {
        self.send(self.request(
            reqwest::Method::DELETE,
            &format!("/v1/sessions/{}", path_segment(id)),
        ))
        .await?;
        Ok(())
    }

    async fn list_sessions(
        &self,
        _caller: &Caller,
        limit: usize,
    ) -> Result<Vec<Value>, ClientError> {
        let body = self
            .get_json(&format!("/v1/sessions?limit={}", limit.min(100)))
            .await?;
        Ok(body["data"].as_array().cloned().unwrap_or_default())
    }
}

fn ended() -> ClientError {
    ClientError::new(
        502,
        "provider_failed",
        "the hub's answer ended without a result",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_errors_keep_their_code() {
        let f = error_body(
            404,
            &json!({"error": {"message": "no such model", "code": "model_not_found"}}),
        );
        assert_eq!((f.status, f.code.as_str()), (404, "model_not_found"));
        assert_eq!(path_segment("../x y"), "xy");
    }

    #[test]
    fn plain_http_only_to_loopback_and_userinfo_never_shown() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://localhost:8080/",
            "http://LOCALHOST",
            "http://[::1]:8080",
            "http://127.0.0.2:1",
            "https://hub.example",
            "https://10.0.0.7:8443",
        ] {
            assert!(check_hub_url(ok).is_ok(), "{ok}");
        }
        for cleartext in [
            "http://hub.example",
            "http://10.0.0.7:8080",
            "http://localhost.hub.example",
            "http://127.0.0.1.nip.io",
            "http://[::2]",
        ] {
            assert!(
                matches!(check_hub_url(cleartext), Err(HubUrlError::Cleartext(_))),
                "{cleartext}"
            );
        }
        assert!(matches!(
            check_hub_url("ftp://127.0.0.1"),
            Err(HubUrlError::Scheme(_))
        ));
        assert!(check_hub_url("127.0.0.1:8080").is_err());
        let (base, shown) = check_hub_url("https://hub.example/base/").unwrap();
        assert_eq!(base, "https://hub.example/base");
        assert_eq!(shown, "https://hub.example/base");
        for with_userinfo in [
            "https://user:s3cret@hub.example/",
            "http://user:s3cret@127.0.0.1:8080",
            "http://user:s3cret@hub.example",
            "http://:s3cret@localhost",
        ] {
            let refused = check_hub_url(with_userinfo).unwrap_err();
            assert!(!refused.to_string().contains("s3cret"), "{refused}");
        }
        assert!(matches!(
            check_hub_url("https://user:s3cret@hub.example/"),
            Err(HubUrlError::Userinfo(_))
        ));
    }
}
