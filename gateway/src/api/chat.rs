//! `POST /v1/chat/completions`, plain and streaming.

use std::convert::Infallible;

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures::{Stream, StreamExt, stream};

use super::AppState;
use super::error::{ApiError, created_now};
use super::openai::{
    ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Choice, ChunkChoice, Delta,
    DeltaFunction, DeltaToolCall, OutputMessage, OutputToolCall, UsageOut,
};
use crate::auth::Caller;
use crate::provider::{ChatEvent, ProviderError, Usage};
use crate::service::{ServiceError, TurnRequest};

/// The request header that continues a conversation; every response carries it.
pub const SESSION_HEADER: &str = "x-session-id";

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<ChatCompletionRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let conversation = request.conversation()?;
    let session_id = match headers.get(SESSION_HEADER) {
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::Service(ServiceError::InvalidSessionId))?
                .to_string(),
        ),
        None => None,
    };
    let turn = state
        .chat
        .start_turn(
            &caller,
            TurnRequest {
                model: request.model.clone(),
                session_id,
                system: conversation.system,
                messages: conversation.messages,
                tools: conversation.tools,
            },
        )
        .await?;
    let model = turn.model;
    let mut events = turn.events;
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = created_now();

    // The first event decides the status: a usage limit, a login failure or a full pool becomes
    // a proper HTTP error even for a streaming request.
    let first = events
        .next()
        .await
        .unwrap_or_else(|| Err(stream_ended(&model.provider).into()))?;

    let mut response = if !request.stream {
        let mut content = String::new();
        let mut tool_calls = Vec::new();
        let mut usage = None;
        let mut next = Some(Ok(first));
        while let Some(event) = next {
            match event? {
                ChatEvent::Delta(text) => content.push_str(&text),
                ChatEvent::ToolCalls(calls) => {
                    tool_calls.extend(calls.into_iter().map(OutputToolCall::from))
                }
                ChatEvent::Done { usage: u } => {
                    usage = u;
                    break;
                }
            }
            next = events.next().await;
            if next.is_none() {
                return Err(ServiceError::from(stream_ended(&model.provider)).into());
            }
        }
        Json(ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model: model.id(),
            choices: vec![Choice {
                index: 0,
                finish_reason: if tool_calls.is_empty() {
                    "stop"
                } else {
                    "tool_calls"
                },
                message: OutputMessage {
                    role: "assistant",
                    content: (!content.is_empty() || tool_calls.is_empty()).then_some(content),
                    tool_calls,
                },
            }],
            usage: usage.unwrap_or_default().into(),
        })
        .into_response()
    } else {
        let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
        let chunks = sse_chunks(
            ChunkMeta {
                id,
                created,
                model: model.id(),
            },
            stream::iter([Ok(first)]).chain(events),
            include_usage,
        );
        Sse::new(chunks)
            .keep_alive(KeepAlive::default())
            .into_response()
    };
    if let Some(session_id) = turn.session_id
        && let Ok(value) = HeaderValue::from_str(&session_id)
    {
        response.headers_mut().insert(SESSION_HEADER, value);
    }
    Ok(response)
}

fn stream_ended(provider: &str) -> ProviderError {
    ProviderError::Crashed {
        provider: provider.to_string(),
        detail: "the event stream ended without a result".into(),
    }
}

struct ChunkMeta {
    id: String,
    created: u64,
    model: String,
}

impl ChunkMeta {
    fn chunk(&self, delta: Delta, finish: Option<&'static str>) -> Event {
        self.event(&ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            usage: None,
        })
    }

    fn usage_chunk(&self, usage: Usage) -> Event {
        self.event(&ChatCompletionChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![],
            usage: Some(UsageOut::from(usage)),
        })
    }

    fn event(&self, chunk: &ChatCompletionChunk) -> Event {
        // Serialised straight into the event's buffer.
        Event::default().json_data(chunk).expect("chunks serialise")
    }
}

/// OpenAI's chunk sequence: the role first, content deltas, a final chunk with `finish_reason`,
/// the usage chunk when asked for, then `[DONE]`. A failure midway ends the stream with an
/// error event (and no `[DONE]`), as OpenAI does.
fn sse_chunks(
    meta: ChunkMeta,
    mut events: impl Stream<Item = Result<ChatEvent, ServiceError>> + Send + Unpin + 'static,
    include_usage: bool,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    async_stream::stream! {
        yield Ok(meta.chunk(Delta { role: Some("assistant"), content: Some(String::new()), ..Delta::default() }, None));
        let mut calls = 0;
        while let Some(event) = events.next().await {
            match event {
                Ok(ChatEvent::Delta(text)) => {
                    yield Ok(meta.chunk(Delta { content: Some(text), ..Delta::default() }, None));
                }
                Ok(ChatEvent::ToolCalls(made)) => {
                    for call in made {
                        let index = calls;
                        calls += 1;
                        let head = DeltaToolCall {
                            index,
                            id: Some(call.id),
                            kind: Some("function"),
                            function: DeltaFunction { name: Some(call.name), arguments: String::new() },
                        };
                        yield Ok(meta.chunk(Delta { tool_calls: Some(vec![head]), ..Delta::default() }, None));
                        let args = DeltaToolCall {
                            index,
                            id: None,
                            kind: None,
                            function: DeltaFunction { name: None, arguments: call.arguments },
                        };
                        yield Ok(meta.chunk(Delta { tool_calls: Some(vec![args]), ..Delta::default() }, None));
                    }
                }
                Ok(ChatEvent::Done { usage }) => {
                    let finish = if calls > 0 { "tool_calls" } else { "stop" };
                    yield Ok(meta.chunk(Delta::default(), Some(finish)));
                    if include_usage {
                        yield Ok(meta.usage_chunk(usage.unwrap_or_default()));
                    }
                    yield Ok(Event::default().data("[DONE]"));
                    return;
                }
                Err(e) => {
                    let error = ApiError::from(e);
                    yield Ok(Event::default().data(error.body().to_string()));
                    return;
                }
            }
        }
        let error = ApiError::from(ServiceError::from(stream_ended(&meta.model)));
        yield Ok(Event::default().data(error.body().to_string()));
    }
}
