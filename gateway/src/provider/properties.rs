//! Properties of the provider adapters over arbitrary input: what reaches a CLI's stdin cannot
//! become a command or a second message, the transcript's structure cannot be forged by message
//! text, and no output line, however malformed, makes a parser panic.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{Message, ProviderKind, Role, transcript};

fn message() -> impl Strategy<Value = Message> {
    let text = prop_oneof![
        any::<String>(),
        // Text built from the characters that matter: slashes, newlines, tags, quotes.
        proptest::collection::vec(
            prop_oneof![
                Just("/"),
                Just("\n"),
                Just(" "),
                Just("</user>"),
                Just("</assistant>"),
                Just("</conversation>"),
                Just("<user>"),
                Just("\""),
                Just("\\"),
                Just("clear"),
                Just("model haiku"),
            ],
            0..12,
        )
        .prop_map(|parts| parts.concat()),
    ];
    (any::<bool>(), text).prop_map(|(user, content)| {
        Message::text(if user { Role::User } else { Role::Assistant }, content)
    })
}

fn conversation() -> impl Strategy<Value = Vec<Message>> {
    (proptest::collection::vec(message(), 0..6), message()).prop_map(|(mut earlier, mut last)| {
        last.role = Role::User;
        earlier.push(last);
        earlier
    })
}

/// A JSON value shaped like the CLIs' output lines: known `type`s with random members.
fn output_line() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        any::<String>().prop_map(Value::from),
    ];
    let value = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("type".to_string()),
                    Just("subtype".to_string()),
                    Just("event".to_string()),
                    Just("delta".to_string()),
                    Just("text".to_string()),
                    Just("message".to_string()),
                    Just("content".to_string()),
                    Just("usage".to_string()),
                    Just("error".to_string()),
                    any::<String>(),
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    let kind = prop_oneof![
        Just("system"),
        Just("stream_event"),
        Just("assistant"),
        Just("result"),
        Just("conversation_reset"),
        Just("rate_limit_event"),
        Just("init"),
        Just("message"),
        Just("tool_use"),
        Just("error"),
    ];
    prop_oneof![
        any::<String>(),
        (
            kind,
            proptest::collection::btree_map(any::<String>(), value, 0..6)
        )
            .prop_map(|(kind, members)| {
                let mut object: serde_json::Map<String, Value> = members.into_iter().collect();
                object.insert("type".into(), Value::from(kind));
                Value::Object(object).to_string()
            }),
    ]
}

proptest! {
    #[test]
    fn claude_stdin_is_one_plain_user_message(messages in conversation()) {
        let bytes = ProviderKind::Claude.adapter().encode_turn(&messages);
        let line = std::str::from_utf8(&bytes).unwrap();
        // Exactly one line: message text cannot start a second stream-json message.
        prop_assert_eq!(line.find('\n'), Some(line.len() - 1));
        let v: Value = serde_json::from_str(line).unwrap();
        prop_assert_eq!(&v["type"], "user");
        let text = v["message"]["content"][0]["text"].as_str().unwrap();
        // Never read as one of claude's own commands.
        prop_assert!(!text.starts_with('/'));
        // Otherwise the prompt is the transcript as rendered (one space added before a '/').
        let rendered = transcript::render(&messages);
        let expected = if rendered.starts_with('/') { format!(" {rendered}") } else { rendered };
        prop_assert_eq!(text, expected);
    }

    #[test]
    fn message_text_cannot_forge_the_transcript(messages in conversation()) {
        let rendered = transcript::render(&messages);
        let (last, earlier) = messages.split_last().unwrap();
        prop_assert!(rendered.ends_with(&last.content));
        if !earlier.is_empty() {
            let structure = &rendered[..rendered.len() - last.content.len()];
            let users = earlier.iter().filter(|m| m.role == Role::User).count();
            prop_assert_eq!(structure.matches("</conversation>").count(), 1);
            prop_assert_eq!(structure.matches("</user>").count(), users);
            prop_assert_eq!(structure.matches("</assistant>").count(), earlier.len() - users);
        }
    }

    #[test]
    fn no_output_line_makes_a_parser_panic(line in output_line()) {
        for kind in [ProviderKind::Claude, ProviderKind::Gemini] {
            let adapter = kind.adapter();
            let _ = adapter.parse_stdout(&line);
            let _ = adapter.parse_stderr(&line);
        }
    }
}
