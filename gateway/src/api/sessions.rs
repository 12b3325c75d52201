//! `/v1/sessions`: read, list and delete the caller's own sessions.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use crate::auth::Caller;

const MAX_PAGE: usize = 100;

#[derive(Debug, Deserialize)]
pub struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    20
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.chat.get_session(&caller, &id).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    state.chat.delete_session(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/sessions?offset=0&limit=20`: most recently used first.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(page): Query<Page>,
) -> Result<impl IntoResponse, ApiError> {
    if page.limit == 0 || page.limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            format!("limit must be between 1 and {MAX_PAGE}"),
            Some("limit"),
        ));
    }
    // One extra tells whether another page exists.
    let mut data = state
        .chat
        .list_sessions(&caller, page.offset, page.limit + 1)
        .await?;
    let has_more = data.len() > page.limit;
    data.truncate(page.limit);
    Ok(Json(
        json!({"object": "list", "data": data, "has_more": has_more}),
    ))
}
