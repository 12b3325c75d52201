//! Turns waiting on the client's tool results.
//!
//! When the model calls the client's tools, the CLI process stays up, blocked on the calls, and
//! the response ends with `tool_calls`. The client's follow-up carries the results; if it comes
//! back here in time, to the process that made the calls, the process continues where it
//! stopped (no new start-up, no re-sent conversation). A parked process holds no concurrency
//! slot; at most `max_parked` are kept, each for at most `park_limit`; past either, the process
//! is killed and the follow-up is answered by a fresh process from the rendered transcript.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::CliProcess;
use crate::provider::{Message, Role, ToolCall};

/// This hub process's id, random per start: the first part of every tool call id it hands out,
/// so a router can send the follow-up to the worker that holds the process.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string())
}

/// The instance part of a tool call id the hub made (`call_<instance><park>_<n>`).
pub fn instance_of(call_id: &str) -> Option<&str> {
    park_of(call_id).and_then(instance_of_park)
}

/// The instance part of a park id.
pub fn instance_of_park(park: &str) -> Option<&str> {
    park.get(..8)
}

/// The park part (instance included) of a tool call id the hub made.
fn park_of(call_id: &str) -> Option<&str> {
    let rest = call_id.strip_prefix("call_")?;
    let (park, n) = rest.split_once('_')?;
    (park.len() == 32
        && park.bytes().all(|b| b.is_ascii_hexdigit())
        && n.bytes().all(|b| b.is_ascii_digit()))
    .then_some(park)
}

fn new_park_id() -> String {
    format!(
        "{}{}",
        instance_id(),
        &uuid::Uuid::new_v4().simple().to_string()[..24]
    )
}

/// A call as the model made it, with the id the client got for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingCall {
    pub call: ToolCall,
    /// The model's own id (claude's `toolu_…`), which the CLI's request names.
    pub tool_use_id: String,
}

/// A request of the CLI for a call's result, not answered yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub request_id: String,
    pub rpc_id: Value,
    /// The model's id for the call, when the CLI's request names it (claude); else the call is
    /// found by its name and arguments (gemini).
    pub tool_use_id: Option<String>,
    pub name: String,
    pub arguments: Value,
}

/// The results of a resumed turn, handed to the CLI's requests one by one.
pub struct Answers {
    /// (call, result), not handed out yet.
    left: Vec<(PendingCall, String)>,
}

impl Answers {
    pub fn new(calls: Vec<PendingCall>, mut results: HashMap<String, String>) -> Answers {
        let left = calls
            .into_iter()
            .filter_map(|c| {
                let result = results.remove(&c.tool_use_id)?;
                Some((c, result))
            })
            .collect();
        Answers { left }
    }

    /// The result for the CLI's request `w`: by the model's call id when the request names it,
    /// else the first call of that name with the same arguments, else of that name.
    pub fn take(&mut self, w: &Waiting) -> Option<String> {
        let same_args = |c: &PendingCall| {
            serde_json::from_str::<Value>(&c.call.arguments)
                .ok()
                .as_ref()
                == Some(&w.arguments)
        };
        let at = match &w.tool_use_id {
            Some(id) => self.left.iter().position(|(c, _)| &c.tool_use_id == id),
            None => self
                .left
                .iter()
                .position(|(c, _)| c.call.name == w.name && same_args(c))
                .or_else(|| self.left.iter().position(|(c, _)| c.call.name == w.name)),
        }?;
        Some(self.left.remove(at).1)
    }
}

pub struct ParkedTurn {
    pub process: CliProcess,
    /// The key that started the turn: only it may continue it.
    pub owner: String,
    pub calls: Vec<PendingCall>,
    /// Requests the CLI made before the turn was parked.
    pub waiting: Vec<Waiting>,
    parked_at: Instant,
}

/// Assigns the client's ids to the model's calls: `call_<park>_<n>`.
pub fn name_calls(calls: Vec<(String, String, String)>) -> (String, Vec<PendingCall>) {
    let park = new_park_id();
    let calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, (tool_use_id, name, arguments))| PendingCall {
            call: ToolCall {
                id: format!("call_{park}_{i}"),
                name,
                arguments: if arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    arguments
                },
            },
            tool_use_id,
        })
        .collect();
    (park, calls)
}

/// The results a follow-up brings for `calls`, by the model's call id, when the follow-up
/// continues exactly that answer: its last assistant message holds those calls unchanged, and
/// a `tool` message answers each.
pub fn results_for(messages: &[Message], calls: &[PendingCall]) -> Option<HashMap<String, String>> {
    let at = messages
        .iter()
        .rposition(|m| m.role == Role::Assistant && !m.tool_calls.is_empty())?;
    let asked: Vec<&ToolCall> = calls.iter().map(|c| &c.call).collect();
    if messages[at].tool_calls.iter().collect::<Vec<_>>() != asked {
        return None;
    }
    let mut results = HashMap::new();
    for m in &messages[at + 1..] {
        if m.role != Role::Tool {
            return None;
        }
        let call = calls
            .iter()
            .find(|c| Some(&c.call.id) == m.tool_call_id.as_ref())?;
        results.insert(call.tool_use_id.clone(), m.content.clone());
    }
    (results.len() == calls.len()).then_some(results)
}

/// The park a follow-up names: that of the calls in its last assistant message.
pub fn park_named(messages: &[Message]) -> Option<&str> {
    let last_calls = messages.iter().rev().find(|m| !m.tool_calls.is_empty())?;
    park_of(&last_calls.tool_calls.first()?.id)
}

pub struct Parking {
    turns: Mutex<HashMap<String, ParkedTurn>>,
    max_parked: usize,
    park_limit: Duration,
}

impl Parking {
    pub fn new(max_parked: usize, park_limit: Duration) -> Arc<Parking> {
        Arc::new(Parking {
            turns: Mutex::new(HashMap::new()),
            max_parked,
            park_limit,
        })
    }

    /// Turns parked now.
    pub fn count(&self) -> usize {
        self.turns.lock().expect("parking lock").len()
    }

    /// Keeps `turn` until its follow-up or its time limit; the oldest parked turn makes room
    /// when all places are taken. Returns the processes let go (killed when dropped).
    pub fn park(
        self: &Arc<Self>,
        id: String,
        process: CliProcess,
        owner: String,
        calls: Vec<PendingCall>,
        waiting: Vec<Waiting>,
    ) -> Vec<ParkedTurn> {
        let mut evicted = Vec::new();
        {
            let mut turns = self.turns.lock().expect("parking lock");
            while !turns.is_empty() && turns.len() >= self.max_parked {
                let oldest = turns
                    .iter()
                    .min_by_key(|(_, t)| t.parked_at)
                    .map(|(id, _)| id.clone())
                    .expect("not empty");
                evicted.extend(turns.remove(&oldest));
            }
            if self.max_parked == 0 {
                return evicted;
            }
            turns.insert(
                id.clone(),
                ParkedTurn {
                    process,
                    owner,
                    calls,
                    waiting,
                    parked_at: Instant::now(),
                },
            );
        }
        let parking = Arc::downgrade(self);
        let limit = self.park_limit;
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            if let Some(parking) = parking.upgrade() {
                let expired = parking.turns.lock().expect("parking lock").remove(&id);
                if expired.is_some() {
                    tracing::debug!(park = %id, "tool results did not come in time; the waiting CLI is stopped");
                }
            }
        });
        evicted
    }

    /// Takes the parked turn a follow-up continues, with the results by the model's call id.
    /// None (and the turn stays parked) when the follow-up is another key's, names no parked
    /// turn, or does not answer that turn's calls unchanged.
    pub fn resume(
        &self,
        messages: &[Message],
        owner: &str,
    ) -> Option<(ParkedTurn, HashMap<String, String>)> {
        let id = park_named(messages)?;
        let mut turns = self.turns.lock().expect("parking lock");
        let turn = turns.get_mut(id)?;
        if turn.owner != owner {
            return None;
        }
        let results = results_for(messages, &turn.calls)?;
        let turn = turns.remove(id).expect("present");
        drop(turns);
        let mut turn = turn;
        // A process that died while it waited cannot continue: the follow-up is answered
        // afresh instead of failing.
        if !turn.process.is_alive() {
            tracing::debug!(park = %id, "the process parked on tool calls is gone; answering afresh");
            return None;
        }
        Some((turn, results))
    }

    /// Stops every parked process.
    pub fn clear(&self) {
        let drained: Vec<_> = self.turns.lock().expect("parking lock").drain().collect();
        drop(drained);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call_msg(calls: &[PendingCall]) -> Message {
        let mut m = Message::text(Role::Assistant, "");
        m.tool_calls = calls.iter().map(|c| c.call.clone()).collect();
        m
    }

    fn result(id: &str, text: &str) -> Message {
        let mut m = Message::text(Role::Tool, text);
        m.tool_call_id = Some(id.into());
        m
    }

    #[test]
    fn ids_carry_the_park_and_the_instance() {
        let (park, calls) = name_calls(vec![
            ("toolu_a".into(), "f".into(), String::new()),
            ("toolu_b".into(), "g".into(), r#"{"x":1}"#.into()),
        ]);
        assert_eq!(calls[0].call.id, format!("call_{park}_0"));
        assert_eq!(calls[0].call.arguments, "{}");
        assert_eq!(park_of(&calls[1].call.id), Some(park.as_str()));
        assert_eq!(instance_of(&calls[1].call.id), Some(instance_id()));
        for foreign in ["call_abc", "toolu_1", "call_zz_0", ""] {
            assert_eq!(park_of(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn requests_without_an_id_find_their_call_by_name_and_arguments() {
        let (_, calls) = name_calls(vec![
            ("t1".into(), "f".into(), r#"{"city":"Paris"}"#.into()),
            ("t2".into(), "f".into(), r#"{"city":"Rome"}"#.into()),
        ]);
        let results = HashMap::from([("t1".into(), "P".into()), ("t2".into(), "R".into())]);
        let mut answers = Answers::new(calls, results);
        let asks = |city: &str| Waiting {
            request_id: "r".into(),
            rpc_id: Value::from(1),
            tool_use_id: None,
            name: "f".into(),
            arguments: serde_json::json!({"city": city}),
        };
        assert_eq!(answers.take(&asks("Rome")).as_deref(), Some("R"));
        assert_eq!(answers.take(&asks("Paris")).as_deref(), Some("P"));
        assert_eq!(answers.take(&asks("Paris")), None);
    }

    #[test]
    fn a_follow_up_must_answer_every_call_unchanged() {
        let (_, calls) = name_calls(vec![
            ("toolu_a".into(), "f".into(), "{}".into()),
            ("toolu_b".into(), "g".into(), "{}".into()),
        ]);
        let user = Message::text(Role::User, "go");
        let both = [
            user.clone(),
            call_msg(&calls),
            result(&calls[1].call.id, "B"),
            result(&calls[0].call.id, "A"),
        ];
        let got = results_for(&both, &calls).unwrap();
        assert_eq!(got["toolu_a"], "A");
        assert_eq!(got["toolu_b"], "B");
        // One result missing.
        assert!(results_for(&both[..3], &calls).is_none());
        // The client changed the arguments it was given.
        let mut edited = both.clone();
        edited[1].tool_calls[0].arguments = r#"{"evil":true}"#.into();
        assert!(results_for(&edited, &calls).is_none());
    }
}
