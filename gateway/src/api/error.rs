//! Every error a client can get, mapped once to an HTTP status and OpenAI's JSON shape
//! `{"error": {"message", "type", "code", "param"}}`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::AuthError;
use crate::errors::ClientError;
use crate::provider::ProviderError;
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

    /// What the client sees, classified once (`crate::errors`).
    pub fn classify(&self) -> ClientError {
        let message = self.to_string();
        let invalid = "invalid_request_error";
        match self {
            ApiError::BadRequest { param, .. } => ClientError {
                param: *param,
                ..ClientError::new(400, "invalid_request", message)
            },
            ApiError::NotFound(_) => ClientError::new(404, "not_found", message),
            ApiError::PayloadTooLarge(_) => ClientError::new(413, "request_too_large", message),
            ApiError::Auth(_) => ClientError {
                kind: invalid,
                ..ClientError::new(401, "invalid_api_key", message)
            },
            ApiError::Service(e) => ClientError::from(e),
        }
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.classify().status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The OpenAI-shaped body; also sent as the last SSE event when a stream fails midway.
    pub fn body(&self) -> Value {
        self.classify().body()
    }
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
        let mut response = self.classify().into_response();
        if matches!(self, ApiError::Auth(_)) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl IntoResponse for ClientError {
    /// A classified failure as an HTTP response: status, OpenAI body, `Retry-After`.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
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
