//! A CLI's turns read without I/O: a request's turn (the CLI's events go in, what the client gets
//! and how the turn ends come out) and the reset turn between two requests (did the conversation
//! go?). No I/O and no clock, so each rule is unit-tested here; the pool reads the events, writes
//! the answers to tool calls and keeps the time.

use std::collections::BTreeMap;

use super::parked::Waiting;
use crate::provider::{Adapter, CliEvent, Failure, ProviderError, ToolSet, Usage};

/// A tool call of the client's as the model made it: (model's call id, tool name, arguments).
pub type Call = (String, String, String);

/// What the pool does with one event of the turn.
#[derive(Debug)]
pub enum Step {
    /// Nothing reaches the client.
    Nothing,
    /// The CLI named its conversation: the process keeps the id (a reset is proven by a new one
    /// on versions that print no `conversation_reset`).
    Session(String),
    /// Text for the client.
    Text(String),
    /// The CLI waits on a result of one of the client's tools: the pool answers it from the
    /// request's results, or hands the call out and asks `handed_out` whether the turn is over.
    Waiting(Waiting),
    /// The model called the client's tools: the turn ends, and the client gets the calls.
    Calls(Vec<Call>),
    /// The model answered. `text` is the answer when none of it was streamed (it came whole
    /// with the result).
    Answered {
        text: Option<String>,
        usage: Option<Usage>,
    },
    /// The turn failed.
    Failed(ProviderError),
}

/// The state of one turn between its events.
pub struct TurnState<'a> {
    provider: &'a str,
    adapter: &'static dyn Adapter,
    /// The client's tools: only calls to them are handed out.
    tools: Option<&'a ToolSet>,
    max_upstream_retries: u32,
    /// Nothing is forwarded until the CLI said it runs on the OAuth login.
    credential_checked: bool,
    saw_text: bool,
    /// Tool calls of the model message being streamed, by block index.
    calls: BTreeMap<u32, Call>,
}

impl<'a> TurnState<'a> {
    /// A turn of a fresh prompt, or (`resuming`) the continuation of one parked on tool calls,
    /// whose credential source was checked when it started.
    pub fn new(
        provider: &'a str,
        adapter: &'static dyn Adapter,
        tools: Option<&'a ToolSet>,
        max_upstream_retries: u32,
        resuming: bool,
    ) -> TurnState<'a> {
        TurnState {
            provider,
            adapter,
            tools,
            max_upstream_retries,
            credential_checked: resuming || !adapter.reports_credential_source(),
            saw_text: false,
            calls: BTreeMap::new(),
        }
    }

    /// What one event of the CLI means for the request.
    pub fn on_event(&mut self, event: CliEvent) -> Step {
        match event {
            CliEvent::Started {
                api_key_source: Some(source),
                ..
            } if source != "none" => self.unsafe_cli(format!(
                "the CLI reports credential source '{source}', which would bill an API key"
            )),
            CliEvent::Started {
                session_id,
                api_key_source,
                ..
            } => {
                self.credential_checked |= api_key_source.as_deref() == Some("none");
                session_id.map_or(Step::Nothing, Step::Session)
            }
            CliEvent::TextDelta(_) | CliEvent::AssistantText(_) | CliEvent::Result(_)
                if !self.credential_checked =>
            {
                self.unsafe_cli(
                    "the CLI answered without first reporting its credential source".into(),
                )
            }
            CliEvent::ConversationReset
            | CliEvent::ToolServer { .. }
            | CliEvent::ControlRequest { .. } => Step::Nothing,
            CliEvent::ToolUseStart { index, id, name } => {
                // Only the client's tools are handed out; a call to anything else is refused by
                // the CLI itself and the model goes on.
                if let Some(name) = self.client_tool(&name) {
                    self.calls.insert(index, (id, name, String::new()));
                }
                Step::Nothing
            }
            CliEvent::ToolUse {
                id,
                name,
                arguments,
            } => {
                if let Some(name) = self.client_tool(&name) {
                    let index = self.calls.keys().next_back().map_or(0, |i| i + 1);
                    self.calls.insert(index, (id, name, arguments));
                }
                Step::Nothing
            }
            CliEvent::ToolUseArgs { index, json } => {
                if let Some(call) = self.calls.get_mut(&index) {
                    call.2.push_str(&json);
                }
                Step::Nothing
            }
            CliEvent::MessageEnd { stop_reason } => {
                let calls = std::mem::take(&mut self.calls);
                if stop_reason.as_deref() == Some("tool_use") && !calls.is_empty() {
                    Step::Calls(calls.into_values().collect())
                } else {
                    Step::Nothing
                }
            }
            CliEvent::ToolCallWaiting {
                request_id,
                rpc_id,
                tool_use_id,
                name,
                arguments,
            } => Step::Waiting(Waiting {
                request_id,
                rpc_id,
                tool_use_id,
                name,
                arguments,
            }),
            // claude prints the deltas and then the whole message: the message is forwarded only
            // when no delta came before it.
            CliEvent::AssistantText(_) if self.saw_text => Step::Nothing,
            CliEvent::TextDelta(text) | CliEvent::AssistantText(text) => {
                if text.is_empty() {
                    return Step::Nothing;
                }
                self.saw_text = true;
                Step::Text(text)
            }
            CliEvent::Retrying {
                status: Some(401 | 403),
                ..
            } => Step::Failed(ProviderError::NotLoggedIn {
                provider: self.provider.to_string(),
            }),
            // A CLI that retries after text went out would send that text again; what reached
            // the client cannot be taken back, so the request fails.
            CliEvent::Retrying { .. } if self.saw_text => {
                self.upstream("the model's stream broke off midway".into())
            }
            CliEvent::Retrying { attempt, status } if attempt > self.max_upstream_retries => self
                .upstream(match status {
                    Some(s) => format!("the model server answered {s}, {attempt} attempts"),
                    None => format!("the model server is unreachable, {attempt} attempts"),
                }),
            CliEvent::Retrying { .. } => Step::Nothing,
            CliEvent::Failure(failure) => self.failed(failure),
            CliEvent::Result(result) if result.is_error => {
                self.failed(Failure::from_status(result.api_status, &result.text))
            }
            CliEvent::Result(result) => Step::Answered {
                text: (!self.saw_text && !result.text.is_empty()).then_some(result.text),
                usage: result.usage,
            },
        }
    }

    /// After a call was handed to the client: the turn ends here when the CLI announces no
    /// message end (gemini), since such a CLI has announced all its calls by the time it makes
    /// the first. claude may ask for a call before its message ends (it starts read-only tools
    /// early), so its turn ends at the message's end.
    pub fn handed_out(&mut self) -> Option<Vec<Call>> {
        (!self.calls.is_empty() && !self.adapter.announces_message_end())
            .then(|| std::mem::take(&mut self.calls).into_values().collect())
    }

    /// The client's name of a tool the model called, when it is one of the client's tools.
    fn client_tool(&self, model_name: &str) -> Option<String> {
        let name = self.adapter.tool_name(model_name)?;
        self.tools
            .is_some_and(|t| t.contains(name))
            .then(|| name.to_string())
    }

    fn failed(&self, failure: Failure) -> Step {
        Step::Failed(ProviderError::from_failure(self.provider, failure))
    }

    fn unsafe_cli(&self, detail: String) -> Step {
        self.failed(Failure::Unsafe(detail))
    }

    fn upstream(&self, detail: String) -> Step {
        Step::Failed(ProviderError::Upstream {
            provider: self.provider.to_string(),
            detail,
        })
    }
}

/// How a reset turn came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reset {
    /// Empty and clean, and the CLI showed that it dropped the conversation: it said so
    /// (`conversation_reset`, claude 2.1.330) or started a new one (a new session id in its
    /// init line, claude 2.1.197).
    Verified,
    /// Empty and clean, but nothing showed the conversation is gone.
    Unproven,
    /// Text, an error, silence or an exit: the conversation may survive.
    Failed,
}

/// Reads a reset turn's events until they tell whether the conversation is gone (silence and
/// exits are the pool's to judge: both fail the reset).
pub struct ResetReading {
    /// The conversation the process held before the reset.
    before: Option<String>,
    now: Option<String>,
    proven: bool,
}

impl ResetReading {
    pub fn new(session_id: Option<String>) -> ResetReading {
        ResetReading {
            now: session_id.clone(),
            before: session_id,
            proven: false,
        }
    }

    /// The verdict, once this event gives it.
    pub fn on_event(&mut self, event: CliEvent) -> Option<Reset> {
        match event {
            CliEvent::ConversationReset => self.proven = true,
            CliEvent::Started {
                session_id: Some(id),
                ..
            } => {
                self.proven |= self.before.as_ref().is_some_and(|b| *b != id);
                self.now = Some(id);
            }
            CliEvent::Result(r) => {
                return Some(
                    match (!r.is_error && r.text.trim().is_empty(), self.proven) {
                        (true, true) => Reset::Verified,
                        (true, false) => Reset::Unproven,
                        (false, _) => Reset::Failed,
                    },
                );
            }
            CliEvent::TextDelta(t) | CliEvent::AssistantText(t) if !t.trim().is_empty() => {
                return Some(Reset::Failed);
            }
            CliEvent::Failure(_) => return Some(Reset::Failed),
            _ => {}
        }
        None
    }

    /// The CLI's conversation id after the reset.
    pub fn session_id(self) -> Option<String> {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{ProviderKind, ToolSpec, TurnResult};

    fn weather() -> ToolSet {
        ToolSet::new(vec![ToolSpec {
            name: "get_weather".into(),
            description: String::new(),
            parameters: serde_json::json!({"type": "object"}),
        }])
    }

    fn started(source: &str) -> CliEvent {
        CliEvent::Started {
            model: None,
            api_key_source: Some(source.into()),
            session_id: Some("s-1".into()),
        }
    }

    fn result(text: &str) -> CliEvent {
        CliEvent::Result(TurnResult {
            text: text.into(),
            usage: Some(Usage {
                input_tokens: 3,
                output_tokens: 2,
            }),
            ..Default::default()
        })
    }

    fn claude_turn(tools: Option<&ToolSet>) -> TurnState<'_> {
        TurnState::new("claude", ProviderKind::Claude.adapter(), tools, 3, false)
    }

    fn lock_down(step: Step) -> String {
        match step {
            Step::Failed(ProviderError::LockDown { detail, .. }) => detail,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn nothing_is_forwarded_before_the_cli_reports_its_oauth_login() {
        let mut turn = claude_turn(None);
        assert!(
            lock_down(turn.on_event(CliEvent::TextDelta("hi".into())))
                .contains("without first reporting")
        );
        let mut turn = claude_turn(None);
        assert!(lock_down(turn.on_event(result("hi"))).contains("without first reporting"));
        let mut turn = claude_turn(None);
        assert!(
            lock_down(turn.on_event(started("ANTHROPIC_API_KEY"))).contains("ANTHROPIC_API_KEY")
        );
        // A continuation was checked when its turn started; gemini reports no source at all.
        let mut resumed = TurnState::new("claude", ProviderKind::Claude.adapter(), None, 3, true);
        assert!(
            matches!(resumed.on_event(CliEvent::TextDelta("hi".into())), Step::Text(t) if t == "hi")
        );
        let mut gemini = TurnState::new("gemini", ProviderKind::Gemini.adapter(), None, 3, false);
        assert!(matches!(
            gemini.on_event(CliEvent::TextDelta("hi".into())),
            Step::Text(_)
        ));
    }

    #[test]
    fn streamed_deltas_win_over_the_whole_message_printed_after_them() {
        let mut turn = claude_turn(None);
        assert!(matches!(turn.on_event(started("none")), Step::Session(id) if id == "s-1"));
        assert!(matches!(
            turn.on_event(CliEvent::TextDelta(String::new())),
            Step::Nothing
        ));
        assert!(
            matches!(turn.on_event(CliEvent::TextDelta("hel".into())), Step::Text(t) if t == "hel")
        );
        assert!(
            matches!(turn.on_event(CliEvent::TextDelta("lo".into())), Step::Text(t) if t == "lo")
        );
        assert!(matches!(
            turn.on_event(CliEvent::AssistantText("hello".into())),
            Step::Nothing
        ));
        match turn.on_event(result("hello")) {
            Step::Answered { text, usage } => {
                assert_eq!(text, None, "the answer was streamed already");
                assert_eq!(usage.map(|u| u.output_tokens), Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_answer_nothing_streamed_is_forwarded_whole() {
        let mut turn = claude_turn(None);
        turn.on_event(started("none"));
        assert!(
            matches!(turn.on_event(CliEvent::AssistantText("whole".into())), Step::Text(t) if t == "whole")
        );
        let mut turn = claude_turn(None);
        turn.on_event(started("none"));
        assert!(matches!(turn.on_event(result("only in the result")),
            Step::Answered { text: Some(t), .. } if t == "only in the result"));
    }

    #[test]
    fn only_calls_to_the_clients_tools_end_the_turn_with_their_arguments() {
        let tools = weather();
        let mut turn = claude_turn(Some(&tools));
        turn.on_event(started("none"));
        let start = |index: u32, id: &str, name: &str| CliEvent::ToolUseStart {
            index,
            id: id.into(),
            name: name.into(),
        };
        let args = |index: u32, json: &str| CliEvent::ToolUseArgs {
            index,
            json: json.into(),
        };
        for event in [
            start(0, "call-1", "mcp__hub__get_weather"),
            // The CLI's own tool (it refuses it itself) and an unknown one of the hub's server.
            start(1, "call-2", "Read"),
            start(2, "call-3", "mcp__hub__delete_everything"),
            args(0, r#"{"city":"#),
            args(1, r#"{"file_path":"/etc/passwd"}"#),
            args(0, r#""Oslo"}"#),
        ] {
            assert!(matches!(turn.on_event(event), Step::Nothing));
        }
        assert!(
            turn.handed_out().is_none(),
            "claude's turn ends at its message's end"
        );
        match turn.on_event(CliEvent::MessageEnd {
            stop_reason: Some("tool_use".into()),
        }) {
            Step::Calls(calls) => assert_eq!(
                calls,
                [(
                    "call-1".into(),
                    "get_weather".into(),
                    r#"{"city":"Oslo"}"#.into()
                )]
            ),
            other => panic!("{other:?}"),
        }
        // A message that ends otherwise drops its calls: the model went on and answered.
        turn.on_event(start(0, "call-4", "mcp__hub__get_weather"));
        assert!(matches!(
            turn.on_event(CliEvent::MessageEnd {
                stop_reason: Some("end_turn".into())
            }),
            Step::Nothing
        ));
        assert!(matches!(
            turn.on_event(CliEvent::MessageEnd {
                stop_reason: Some("tool_use".into())
            }),
            Step::Nothing
        ));
    }

    #[test]
    fn without_message_ends_the_turn_ends_at_the_first_call_handed_out() {
        let tools = weather();
        let mut turn = TurnState::new(
            "gemini",
            ProviderKind::Gemini.adapter(),
            Some(&tools),
            3,
            false,
        );
        let call = CliEvent::ToolUse {
            id: "g-1".into(),
            name: "mcp_hub_get_weather".into(),
            arguments: r#"{"city":"Oslo"}"#.into(),
        };
        assert!(matches!(turn.on_event(call), Step::Nothing));
        let waiting = CliEvent::ToolCallWaiting {
            request_id: "r-1".into(),
            rpc_id: serde_json::json!(7),
            tool_use_id: None,
            name: "get_weather".into(),
            arguments: serde_json::json!({"city": "Oslo"}),
        };
        assert!(matches!(turn.on_event(waiting), Step::Waiting(w) if w.request_id == "r-1"));
        assert_eq!(
            turn.handed_out(),
            Some(vec![(
                "g-1".into(),
                "get_weather".into(),
                r#"{"city":"Oslo"}"#.into()
            )])
        );
        assert_eq!(turn.handed_out(), None, "handed out once");
    }

    #[test]
    fn retries_fail_the_turn_past_the_limit_on_a_refused_login_or_after_text() {
        let upstream = |step: Step| match step {
            Step::Failed(ProviderError::Upstream { detail, .. }) => detail,
            other => panic!("{other:?}"),
        };
        let retry = |attempt: u32, status: Option<u16>| CliEvent::Retrying { attempt, status };
        let mut turn = claude_turn(None);
        turn.on_event(started("none"));
        assert!(matches!(turn.on_event(retry(3, Some(529))), Step::Nothing));
        assert_eq!(
            upstream(turn.on_event(retry(4, Some(529)))),
            "the model server answered 529, 4 attempts"
        );
        assert_eq!(
            upstream(turn.on_event(retry(4, None))),
            "the model server is unreachable, 4 attempts"
        );
        assert!(matches!(
            turn.on_event(retry(1, Some(401))),
            Step::Failed(ProviderError::NotLoggedIn { .. })
        ));
        turn.on_event(CliEvent::TextDelta("half".into()));
        assert_eq!(
            upstream(turn.on_event(retry(1, Some(529)))),
            "the model's stream broke off midway"
        );
    }

    #[test]
    fn a_failed_result_is_classified_by_its_status() {
        let mut turn = claude_turn(None);
        turn.on_event(started("none"));
        let failed = CliEvent::Result(TurnResult {
            text: "rate limited".into(),
            is_error: true,
            api_status: Some(429),
            ..Default::default()
        });
        assert!(matches!(
            turn.on_event(failed),
            Step::Failed(ProviderError::UsageLimited { .. })
        ));
        assert!(matches!(
            turn.on_event(CliEvent::Failure(Failure::NotLoggedIn)),
            Step::Failed(ProviderError::NotLoggedIn { .. })
        ));
    }

    fn read_reset(before: Option<&str>, events: Vec<CliEvent>) -> (Option<Reset>, Option<String>) {
        let mut reading = ResetReading::new(before.map(String::from));
        let verdict = events.into_iter().find_map(|e| reading.on_event(e));
        (verdict, reading.session_id())
    }

    fn init(session: &str) -> CliEvent {
        CliEvent::Started {
            model: None,
            api_key_source: Some("none".into()),
            session_id: Some(session.into()),
        }
    }

    #[test]
    fn a_reset_is_verified_only_when_the_cli_shows_the_conversation_went() {
        // claude 2.1.330 says so; 2.1.197 starts a new conversation instead.
        let said = read_reset(
            Some("s-1"),
            vec![init("s-1"), CliEvent::ConversationReset, result("")],
        );
        assert_eq!(said, (Some(Reset::Verified), Some("s-1".into())));
        let renewed = read_reset(
            Some("s-1"),
            vec![
                init("s-2"),
                CliEvent::AssistantText(String::new()),
                result(""),
            ],
        );
        assert_eq!(renewed, (Some(Reset::Verified), Some("s-2".into())));
        // Clean, but the same conversation, or no earlier one to compare with: unproven.
        let same = read_reset(Some("s-1"), vec![init("s-1"), result("")]);
        assert_eq!(same.0, Some(Reset::Unproven));
        let first = read_reset(None, vec![init("s-1"), result("")]);
        assert_eq!(first, (Some(Reset::Unproven), Some("s-1".into())));
    }

    #[test]
    fn a_reset_that_answers_or_errs_fails_even_when_it_said_it_reset() {
        let failed = |events: Vec<CliEvent>| {
            let mut all = vec![CliEvent::ConversationReset];
            all.extend(events);
            read_reset(Some("s-1"), all).0
        };
        assert_eq!(failed(vec![result("I remember you")]), Some(Reset::Failed));
        assert_eq!(
            failed(vec![CliEvent::TextDelta("hi".into()), result("")]),
            Some(Reset::Failed)
        );
        assert_eq!(
            failed(vec![CliEvent::Failure(Failure::NotLoggedIn)]),
            Some(Reset::Failed)
        );
        let error = CliEvent::Result(TurnResult {
            is_error: true,
            ..Default::default()
        });
        assert_eq!(failed(vec![error]), Some(Reset::Failed));
        // Whitespace is no answer; nothing but a result gives a verdict.
        assert_eq!(
            failed(vec![CliEvent::TextDelta(" \n".into()), result(" ")]),
            Some(Reset::Verified)
        );
        assert_eq!(failed(vec![init("s-1")]), None);
    }
}
