//! Every error a client can get, mapped once to an HTTP status and OpenAI's JSON shape
//! `{"error": {"message", "type", "code", "param"}}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::AuthError;
use crate::provider::ProviderError;
use crate::runtime::health::unix_now;
use crate::service::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    BadRequest {
        message: String,
        param: Option<&'static str>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A hub-wide capacity is used up (open MCP sessions); retry after the given seconds.
    #[error("{message}")]
    Exhausted { message: String, retry_after: u64 },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>, param: Option<&'static str>) -> ApiError {
        ApiError::BadRequest {
            message: message.into(),
            param,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Exhausted { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Auth(_) => StatusCode::UNAUTHORIZED,
            ApiError::Service(e) => match e {
                ServiceError::ModelNotFound { .. } | ServiceError::SessionNotFound(_) => {
                    StatusCode::NOT_FOUND
                }
                ServiceError::ProviderNotAllowed(_) => StatusCode::FORBIDDEN,
                ServiceError::InvalidSessionId => StatusCode::BAD_REQUEST,
                ServiceError::SessionBusy(_) => StatusCode::CONFLICT,
                ServiceError::SessionTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
                ServiceError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                ServiceError::Provider(e) => provider_status(e),
            },
        }
    }

    /// The OpenAI-shaped body; also sent as the last SSE event when a stream fails midway.
    pub fn body(&self) -> Value {
        let (kind, code, param) = match self {
            ApiError::BadRequest { param, .. } => {
                ("invalid_request_error", "invalid_request", *param)
            }
            ApiError::NotFound(_) => ("invalid_request_error", "not_found", None),
            ApiError::PayloadTooLarge(_) => ("invalid_request_error", "request_too_large", None),
            ApiError::Exhausted { .. } => ("server_error", "capacity_exhausted", None),
            ApiError::Auth(_) => ("invalid_request_error", "invalid_api_key", None),
            ApiError::Service(e) => match e {
                ServiceError::ModelNotFound { .. } => {
                    ("invalid_request_error", "model_not_found", Some("model"))
                }
                ServiceError::ProviderNotAllowed(_) => {
                    ("permission_error", "provider_not_allowed", Some("model"))
                }
                ServiceError::InvalidSessionId => {
                    ("invalid_request_error", "invalid_session_id", None)
                }
                ServiceError::SessionNotFound(_) => {
                    ("invalid_request_error", "session_not_found", None)
                }
                ServiceError::SessionBusy(_) => ("conflict_error", "session_busy", None),
                ServiceError::SessionTooLarge(_) => {
                    ("invalid_request_error", "session_too_large", None)
                }
                ServiceError::StoreUnavailable(_) => {
                    ("server_error", "session_store_unavailable", None)
                }
                ServiceError::Provider(e) => provider_codes(e),
            },
        };
        json!({"error": {"message": self.client_message(), "type": kind, "code": code, "param": param}})
    }

    fn client_message(&self) -> String {
        match self {
            ApiError::Service(ServiceError::Provider(ProviderError::UsageLimited {
                provider,
                resets_at: Some(at),
            })) => format!(
                "provider '{provider}' hit its subscription usage limit; it resets at {}",
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(*at as u64))
            ),
            _ => self.to_string(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Exhausted { retry_after, .. } => Some(*retry_after),
            ApiError::Service(ServiceError::Provider(ProviderError::Busy {
                retry_after, ..
            })) => Some(retry_after.as_secs().max(1)),
            ApiError::Service(ServiceError::Provider(ProviderError::UsageLimited {
                resets_at,
                ..
            })) => Some(resets_at.map_or(60, |at| (at - unix_now()).max(1) as u64)),
            _ => None,
        }
    }
}

fn provider_status(e: &ProviderError) -> StatusCode {
    match e {
        ProviderError::Busy { .. } | ProviderError::UsageLimited { .. } => {
            StatusCode::TOO_MANY_REQUESTS
        }
        ProviderError::NotLoggedIn { .. } | ProviderError::Spawn { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ProviderError::Upstream { .. } | ProviderError::Crashed { .. } => StatusCode::BAD_GATEWAY,
        ProviderError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
    }
}

fn provider_codes(e: &ProviderError) -> (&'static str, &'static str, Option<&'static str>) {
    let (kind, code) = match e {
        ProviderError::Busy { .. } => ("rate_limit_error", "rate_limit_exceeded"),
        ProviderError::UsageLimited { .. } => ("rate_limit_error", "usage_limit_reached"),
        ProviderError::NotLoggedIn { .. } => ("provider_error", "provider_not_logged_in"),
        ProviderError::Spawn { .. } => ("provider_error", "provider_unavailable"),
        ProviderError::Upstream { .. } => ("provider_error", "upstream_error"),
        ProviderError::Crashed { .. } => ("provider_error", "provider_failed"),
        ProviderError::Timeout { .. } => ("provider_error", "provider_timeout"),
    };
    (kind, code, None)
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        ApiError::Service(ServiceError::Provider(e))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge(
                "The request body is larger than this hub accepts (see max_body_bytes)".into(),
            );
        }
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "Expected a JSON body with 'Content-Type: application/json'".to_string()
            }
            other => other.body_text(),
        };
        ApiError::bad_request(message, None)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status(), Json(self.body())).into_response();
        if matches!(self, ApiError::Auth(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Seconds since the epoch, for OpenAI's `created` fields.
pub fn created_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
