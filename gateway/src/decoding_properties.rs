//! Bounded fuzzing, as properties over arbitrary input, of what clients send before any CLI
//! runs: a REST chat body decoded into a turn, MCP tool and prompt arguments, and session ids.
//! Any panic is a bug; the properties also pin down what the decoders promise.

use std::time::Duration;

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::api::openai::ChatCompletionRequest;
use crate::provider::Role;
use crate::service::chat::new_turn_messages;
use crate::session::{MemoryStore, SessionStore, id};

/// Strings that matter to the decoders, and arbitrary ones.
pub(crate) fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("system"),
            Just("developer"),
            Just("tool"),
            Just("text"),
            Just("image_url"),
            Just("claude"),
            Just("claude/opus"),
            Just("/"),
            Just(""),
            Just("\u{0}"),
        ]
        .prop_map(String::from),
    ]
}

/// JSON of any shape, whose object keys are mostly the ones the decoders read.
pub(crate) fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        text().prop_map(Value::String),
    ];
    let key = prop_oneof![
        Just("model"),
        Just("messages"),
        Just("role"),
        Just("content"),
        Just("type"),
        Just("text"),
        Just("stream"),
        Just("stream_options"),
        Just("include_usage"),
        Just("n"),
        Just("tools"),
        Just("functions"),
        Just("provider"),
        Just("message"),
        Just("session_id"),
        Just("system"),
        Just("x"),
    ]
    .prop_map(String::from);
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A chat body that is mostly well-formed, so the decoder gets past serde.
fn chat_body() -> impl Strategy<Value = Value> {
    let message = (
        text(),
        prop_oneof![
            text().prop_map(Value::String),
            json_value(),
            proptest::collection::vec((text(), text()), 0..3).prop_map(|parts| {
                Value::Array(
                    parts
                        .into_iter()
                        .map(|(t, s)| json!({"type": t, "text": s}))
                        .collect(),
                )
            }),
        ],
    )
        .prop_map(|(role, content)| json!({"role": role, "content": content}));
    (
        text(),
        proptest::collection::vec(message, 0..6),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        json_value(),
    )
        .prop_map(|(model, messages, n, stream, extra)| {
            let mut body = json!({"model": model, "messages": messages, "stream": stream});
            if let Some(n) = n {
                body["n"] = json!(n);
            }
            body["temperature"] = extra;
            body
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any bytes: decoding answers or refuses, never panics.
    #[test]
    fn rest_bodies_of_any_bytes_decode_or_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(request) = serde_json::from_slice::<ChatCompletionRequest>(&bytes) {
            let _ = request.conversation();
        }
    }

    /// A decoded conversation is what a CLI can take: it ends with the user's message, holds
    /// only user and assistant turns (system text apart), and takes nothing the body lacked.
    #[test]
    fn rest_chat_bodies_become_a_turn_or_a_400(body in prop_oneof![chat_body(), json_value()]) {
        let Ok(request) = serde_json::from_value::<ChatCompletionRequest>(body.clone()) else {
            return Ok(());
        };
        if let Ok(conversation) = request.conversation() {
            let last = conversation.messages.last().expect("a turn has a message");
            prop_assert_eq!(last.role, Role::User);
            prop_assert!(conversation.messages.len() <= body["messages"].as_array().map_or(0, Vec::len));
            // The new messages of a turn never exceed what was sent.
            let new = new_turn_messages(&conversation.messages[..0], &conversation.messages);
            prop_assert_eq!(new.len(), conversation.messages.len());
        }
    }

    /// The session-id check never panics, and accepts exactly 8–128 characters of
    /// `A-Za-z0-9-_`: nothing that could reach into a store key (`:`, `/`, spaces, control
    /// characters, non-ASCII).
    #[test]
    fn session_ids_are_checked_exactly(candidate in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_:/. -]{0,140}",
    ]) {
        let expected = (8..=128).contains(&candidate.len())
            && candidate.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        prop_assert_eq!(id::is_valid(&candidate), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any owner and id (the store trusts neither): a session stored by one key is read back by
    /// it alone, whatever characters either holds.
    #[test]
    fn stores_keep_any_owner_and_id_apart(
        a in any::<String>(),
        b in any::<String>(),
        session_id in any::<String>(),
    ) {
        prop_assume!(a != b);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        runtime.block_on(async {
            let store = MemoryStore::new();
            let ttl = Duration::from_secs(60);
            crate::session::conformance::store_one(&store, &session_id, &a, ttl).await;
            assert!(store.get(&a, &session_id, ttl).await.unwrap().is_some());
            assert!(store.get(&b, &session_id, ttl).await.unwrap().is_none());
            assert!(!store.delete(&b, &session_id).await.unwrap());
            assert_eq!(store.list(&b, 0, 10).await.unwrap().len(), 0);
        });
    }
}
