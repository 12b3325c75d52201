//! Fake Anthropic Messages and Gemini APIs on 127.0.0.1, for running the real `claude` and
//! `gemini` CLIs in tests, and a fake Google for gemini's Google login (`FakeServer::google`:
//! OAuth token info and refresh, user info and the Code Assist API over TLS, answering
//! generation calls as the Gemini API fake does).
//!
//! ```no_run
//! # async fn demo() {
//! let srv = fake_models::FakeServer::anthropic().await;
//! // run `claude` with ANTHROPIC_BASE_URL=srv.base_url …
//! let chat = srv.chat_requests();
//! # }
//! ```
//!
//! # Directives
//!
//! A conversation request is answered according to directives written anywhere in the text
//! of its **last user message**, so a test that goes through the hub scripts each request
//! without talking to the fake server. Side requests (see
//! [`RecordedRequest::is_side_request`]) ignore directives and are always answered at once.
//!
//! | directive | effect |
//! |---|---|
//! | (none) | stream `echo: <last user message text>` in 3 deltas, with usage |
//! | `[[reply:TEXT]]` | answer exactly `TEXT` (3 deltas) |
//! | `[[words:N]]` | answer `word1 word2 … wordN`, one word per delta |
//! | `[[delay-ms:N]]` | wait `N` ms between deltas |
//! | `[[stall]]` | send the first delta, then keep the connection open until the client leaves |
//! | `[[drop]]` | send the first delta, wait 100 ms, then abort the connection |
//! | `[[status:N]]` | HTTP error `N` in the vendor's shape (see below) |
//!
//! Non-streaming generations honour the same directives; with `[[stall]]` / `[[drop]]`
//! they send the headers and `{`, then stall or abort.
//!
//! Errors: Anthropic 429 is `rate_limit_error` with `anthropic-ratelimit-unified-status:
//! rejected`, `anthropic-ratelimit-unified-reset: <now+3600>`,
//! `anthropic-ratelimit-unified-representative-claim: five_hour`; 401
//! `authentication_error`; 529 `overloaded_error`; 400/403 the matching types; others
//! `api_error`. Gemini 429 `RESOURCE_EXHAUSTED`, 401 `UNAUTHENTICATED`, 503 and 529 both
//! answer 503 `UNAVAILABLE`, 400/403 the matching statuses, others `INTERNAL`.
//!
//! Besides generation, the servers answer `POST /v1/messages/count_tokens` and Gemini
//! `:countTokens` / `:embedContent`; anything else is a 404 in the vendor's error shape.
//! Every request is recorded. Processes outside the test (SDK tests driving the
//! `fake-models` binary) read the log with `GET /_fake/requests` (JSON array, see
//! [`RecordedRequest::to_json`]); `DELETE /_fake/requests` returns it and clears it.

mod directives;
mod google;
mod record;
mod server;

pub use directives::{Directives, parse_directives, reply_deltas};
pub use google::{FAKE_EMAIL, FAKE_PROJECT, GOOGLE_HOSTS, GeminiLogin, GoogleCall, TokenState};
pub use record::{RecordedRequest, Vendor, is_cli_context};
pub use server::FakeServer;
