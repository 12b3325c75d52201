//! How every failure looks to a client, decided once: HTTP status, OpenAI error `type` and
//! `code`, the message, and `Retry-After`. The REST edge renders it as a response, the MCP edge
//! as a tool error; neither classifies on its own.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::provider::ProviderError;
use crate::runtime::health::unix_now;
use crate::service::ServiceError;

/// Retry-After of a usage limit whose reset time the CLI did not say.
const UNKNOWN_RESET_RETRY_SECS: u64 = 60;
/// Retry-After when no worker can answer right now.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// A failure as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientError {
    pub status: u16,
    /// OpenAI's error `type` (`invalid_request_error`, `rate_limit_error`, …).
    pub kind: &'static str,
    pub code: String,
    pub param: Option<&'static str>,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl ClientError {
    pub fn new(status: u16, code: &str, message: impl Into<String>) -> ClientError {
        ClientError {
            status,
            kind: kind_of_status(status),
            code: code.into(),
            param: None,
            message: message.into(),
            retry_after: None,
        }
    }

    fn of(
        status: u16,
        kind: &'static str,
        code: &str,
        param: Option<&'static str>,
        message: String,
    ) -> ClientError {
        ClientError {
            status,
            kind,
            code: code.into(),
            param,
            message,
            retry_after: None,
        }
    }

    pub fn with_retry_after(mut self, secs: Option<u64>) -> ClientError {
        self.retry_after = secs;
        self
    }

    /// OpenAI's error body, `{"error": {"message", "type", "code", "param"}}`.
    pub fn body(&self) -> Value {
        json!({"error": {"message": self.message, "type": self.kind, "code": self.code, "param": self.param}})
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

fn kind_of_status(status: u16) -> &'static str {
    match status {
        401 | 400 | 404 | 413 => "invalid_request_error",
        403 => "permission_error",
        409 => "conflict_error",
        429 => "rate_limit_error",
        _ => "server_error",
    }
}

impl From<&ServiceError> for ClientError {
    fn from(e: &ServiceError) -> ClientError {
        let message = e.to_string();
        let invalid = "invalid_request_error";
        match e {
            ServiceError::ModelNotFound { .. } => {
                ClientError::of(404, invalid, "model_not_found", Some("model"), message)
            }
            ServiceError::ProviderNotAllowed(_) => ClientError::of(
                403,
                "permission_error",
                "provider_not_allowed",
                Some("model"),
                message,
            ),
            ServiceError::InvalidSessionId => {
                ClientError::of(400, invalid, "invalid_session_id", None, message)
            }
            ServiceError::SessionNotFound(_) => {
                ClientError::of(404, invalid, "session_not_found", None, message)
            }
            ServiceError::SessionBusy(_) => {
                ClientError::of(409, "conflict_error", "session_busy", None, message)
            }
            ServiceError::SessionQuotaExceeded(_) => ClientError::of(
                429,
                "rate_limit_error",
                "session_quota_exceeded",
                None,
                message,
            ),
            ServiceError::SessionTooLarge(_) => {
                ClientError::of(413, invalid, "session_too_large", None, message)
            }
            ServiceError::StoreUnavailable(_) => ClientError::of(
                503,
                "server_error",
                "session_store_unavailable",
                None,
                message,
            ),
            ServiceError::Provider(e) => ClientError::from(e),
        }
    }
}

impl From<ServiceError> for ClientError {
    fn from(e: ServiceError) -> ClientError {
        ClientError::from(&e)
    }
}

impl From<&ProviderError> for ClientError {
    fn from(e: &ProviderError) -> ClientError {
        let (status, kind, code) = match e {
            ProviderError::Busy { .. } => (429, "rate_limit_error", "rate_limit_exceeded"),
            ProviderError::UsageLimited { .. } => (429, "rate_limit_error", "usage_limit_reached"),
            ProviderError::NotLoggedIn { .. } => (503, "provider_error", "provider_not_logged_in"),
            ProviderError::Spawn { .. } | ProviderError::LockDown { .. } => {
                (503, "provider_error", "provider_unavailable")
            }
            ProviderError::Unavailable { .. } => (503, "provider_error", "no_healthy_worker"),
            ProviderError::Upstream { .. } => (502, "provider_error", "upstream_error"),
            ProviderError::Crashed { .. } => (502, "provider_error", "provider_failed"),
            ProviderError::Timeout { .. } => (504, "provider_error", "provider_timeout"),
            ProviderError::Unsupported { .. } => {
                (400, "invalid_request_error", "unsupported_by_provider")
            }
        };
        let message = match e {
            ProviderError::UsageLimited {
                provider,
                resets_at: Some(at),
            } => format!(
                "provider '{provider}' hit its subscription usage limit; it resets at {}",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*at as u64))
            ),
            // The details name paths, quote the CLI's stderr or give worker addresses: they go
            // to the log, and every key sees only what kind of failure it was.
            ProviderError::Spawn { provider, detail } => {
                tracing::warn!(%provider, %detail, "provider cannot run its CLI");
                format!(
                    "provider '{provider}' cannot start its CLI (is it installed, and on \
                     PATH? the hub's log says why)"
                )
            }
            ProviderError::LockDown { provider, detail } => {
                tracing::warn!(%provider, %detail, "refused to run a CLI without its lock-down");
                format!(
                    "provider '{provider}' refused to run its CLI without its lock-down (details in the hub's log)"
                )
            }
            ProviderError::Unavailable { provider, detail } => {
                tracing::warn!(%provider, %detail, "provider has no worker able to answer");
                format!("provider '{provider}' has no worker able to answer now")
            }
            _ => e.to_string(),
        };
        let retry_after = match e {
            ProviderError::Busy { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            ProviderError::UsageLimited { resets_at, .. } => {
                Some(resets_at.map_or(UNKNOWN_RESET_RETRY_SECS, |at| {
                    (at - unix_now()).max(1) as u64
                }))
            }
            ProviderError::Unavailable { .. } => Some(UNAVAILABLE_RETRY_SECS),
            _ => None,
        };
        ClientError::of(status, kind, code, None, message).with_retry_after(retry_after)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_limits_say_when_they_reset() {
        let at = unix_now() + 120;
        let e = ClientError::from(&ProviderError::UsageLimited {
            provider: "claude".into(),
            resets_at: Some(at),
        });
        assert_eq!((e.status, e.code.as_str()), (429, "usage_limit_reached"));
        let retry = e.retry_after.unwrap();
        assert!((118..=120).contains(&retry), "{retry}");
        assert!(e.message.contains("resets at"));
    }

    #[test]
    fn every_service_error_has_an_openai_body() {
        let e = ClientError::from(&ServiceError::SessionBusy("s".into()));
        assert_eq!(e.status, 409);
        assert_eq!(e.body()["error"]["type"], "conflict_error");
        let e = ClientError::from(&ServiceError::Provider(ProviderError::Unavailable {
            provider: "claude".into(),
            detail: "no worker".into(),
        }));
        assert_eq!((e.status, e.code.as_str()), (503, "no_healthy_worker"));
        assert!(e.retry_after.is_some());
    }

    #[test]
    fn details_of_spawn_and_worker_failures_stay_in_the_log() {
        for e in [
            ProviderError::Spawn {
                provider: "claude".into(),
                detail: "cannot start '/home/me/secret/claude': No such file".into(),
            },
            ProviderError::from_failure(
                "gemini",
                crate::provider::Failure::Unsafe(
                    "Skipping system settings file '/home/me/secret/s.json'".into(),
                ),
            ),
            ProviderError::Unavailable {
                provider: "claude".into(),
                detail: "error sending request for url (http://10.0.0.7:8081/secret)".into(),
            },
        ] {
            let client = ClientError::from(&e);
            assert!(!client.message.contains("secret"), "{client:?}");
        }
        let refused = ClientError::from(&ProviderError::from_failure(
            "gemini",
            crate::provider::Failure::Unsafe("x".into()),
        ));
        assert!(refused.message.contains("lock-down"), "{refused:?}");
    }
}
