//! A stand-in for `claude -p --input-format stream-json --output-format stream-json` that
//! answers at once, for measuring what the hub itself costs per request.
//!
//! It speaks the long-lived protocol of docs/cli-behaviour.md §1: it reads one
//! `{"type":"user",…}` line per turn and prints `system/init` (`"apiKeySource":"none"`), stream
//! events with two text deltas, the `assistant` message and a `result` with usage. The user text
//! `/clear` prints `conversation_reset` and an empty `result` marked `"local_command":"clear"`.
//! Arguments are accepted and ignored; stdin EOF ends the process with exit 0.
//!
//! For slow streams the user text may carry the fake model servers' directives (see
//! `tests/fake-models`): `[[words:N]]` answers `word1 … wordN`, one word per delta, and
//! `[[delay-ms:M]]` sleeps `M` ms before each delta after the first (printed as it goes).
//! Without directives the answer is the two-delta echo, printed at once.

use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{Value, json};

fn main() {
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let session = format!("fake-{}", std::process::id());
    let mut turns = 0u64;
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            continue;
        };
        if v.get("type").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let text = user_text(&v);
        turns += 1;
        let directives = fake_models::parse_directives(&text);
        let slow = directives.words.is_some() || directives.delay.is_some();
        let lines = if text == "/clear" {
            clear(&session, turns)
        } else if slow {
            answer_slow(&session, turns, &text, &directives)
        } else {
            answer(&session, turns, &text)
        };
        for l in lines {
            // A closed stdout means the hub is gone: stop quietly.
            let written = match l {
                Line::Json(v) => writeln!(out, "{v}"),
                // What was printed so far reaches the hub before the pause.
                Line::Pause(d) => out.flush().map(|()| std::thread::sleep(d)),
            };
            if written.is_err() {
                return;
            }
        }
        if out.flush().is_err() {
            return;
        }
    }
}

/// The text of a user line: `content` as a string or as text blocks.
fn user_text(v: &Value) -> String {
    match v.pointer("/message/content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn init(session: &str) -> Value {
    json!({"type": "system", "subtype": "init", "session_id": session, "model": "claude-sonnet-5-5",
           "tools": [], "mcp_servers": [], "apiKeySource": "none", "claude_code_version": "fake"})
}

/// One output line, or a pause between two of them.
enum Line {
    Json(Value),
    Pause(Duration),
}

fn answer(session: &str, turn: u64, text: &str) -> Vec<Line> {
    let head = "echo: ".to_string();
    let tail: String = text.chars().take(64).collect();
    turn_lines(session, turn, text, &[head, tail], None)
}

/// The deltas of `[[words:N]]` (or the echo), with `[[delay-ms:M]]` before each after the first.
fn answer_slow(session: &str, turn: u64, text: &str, d: &fake_models::Directives) -> Vec<Line> {
    let deltas = fake_models::reply_deltas(text, d);
    turn_lines(session, turn, text, &deltas, d.delay)
}

fn turn_lines(
    session: &str,
    turn: u64,
    text: &str,
    deltas: &[String],
    pause: Option<Duration>,
) -> Vec<Line> {
    let full: String = deltas.concat();
    let msg_id = format!("msg_fake_{turn}");
    let delta = |t: &str| {
        json!({"type": "stream_event", "session_id": session, "parent_tool_use_id": null,
               "event": {"type": "content_block_delta", "index": 0,
                         "delta": {"type": "text_delta", "text": t}}})
    };
    let event = |e: Value| json!({"type": "stream_event", "session_id": session, "event": e});
    let usage = json!({"input_tokens": text.len() / 4 + 1, "output_tokens": full.len() / 4 + 1});
    let mut streamed = Vec::new();
    for (i, t) in deltas.iter().enumerate() {
        if i > 0
            && let Some(p) = pause
        {
            streamed.push(Line::Pause(p));
        }
        streamed.push(Line::Json(delta(t)));
    }
    let head = [
        init(session),
        json!({"type": "system", "subtype": "status", "status": "requesting", "session_id": session}),
        event(
            json!({"type": "message_start", "message": {"id": msg_id, "role": "assistant",
                                                            "content": [], "usage": usage}}),
        ),
        event(json!({"type": "content_block_start", "index": 0,
                     "content_block": {"type": "text", "text": ""}})),
    ];
    let tail = [
        json!({"type": "assistant", "session_id": session,
               "message": {"id": msg_id, "model": "claude-sonnet-5-5", "role": "assistant",
                           "content": [{"type": "text", "text": full}], "stop_reason": null,
                           "usage": usage}}),
        event(json!({"type": "content_block_stop", "index": 0})),
        event(
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": usage}),
        ),
        event(json!({"type": "message_stop"})),
        json!({"type": "result", "subtype": "success", "is_error": false, "result": full,
               "stop_reason": "end_turn", "num_turns": 1, "duration_ms": 0, "duration_api_ms": 0,
               "total_cost_usd": 0, "usage": usage, "terminal_reason": "completed",
               "api_error_status": null, "session_id": session}),
    ];
    head.into_iter()
        .map(Line::Json)
        .chain(streamed)
        .chain(tail.into_iter().map(Line::Json))
        .collect()
}

fn clear(session: &str, turn: u64) -> Vec<Line> {
    [
        json!({"type": "conversation_reset", "new_conversation_id": format!("conv-{turn}"),
               "trigger": "clear", "session_id": session}),
        json!({"type": "system", "subtype": "background_tasks_changed", "tasks": []}),
        init(session),
        json!({"type": "result", "subtype": "success", "is_error": false, "num_turns": 0,
               "result": "", "local_command": "clear", "duration_api_ms": 0,
               "total_cost_usd": 0, "session_id": session}),
    ]
    .into_iter()
    .map(Line::Json)
    .collect()
}
