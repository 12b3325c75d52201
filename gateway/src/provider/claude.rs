//! Claude Code (`claude`): long-lived `--input-format stream-json` processes.
//!
//! One process serves one request after another; between two requests the runtime sends
//! `/clear` and checks the empty result, so no conversation leaks into the next request.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::json_line::Obj;

use super::{
    Adapter, CliEvent, ControlReply, Failure, LaunchProfile, LaunchSpec, Message, ProcessMode,
    ProviderKind, ToolEndpoint, TurnResult, Usage, quiet_env, tools, transcript,
};

pub struct Claude;

/// Inline settings: every built-in tool that touches files, the shell or the web is denied, and
/// git instructions are off (with its default system prompt claude adds the branch and recent
/// commit messages of a repository around its working directory; `--system-prompt` already
/// drops them, this keeps it so).
///
/// Both kinds of rule are needed, measured per version: on 2.1.330 a bare `Read` rule stops an
/// `@path` mention from being read, on 2.1.197 it does not and only a path rule does
/// (`Read(//**)`: every absolute path, which `~/…` and relative mentions resolve to). A rule
/// naming a tool a version lacks (`LS` on 2.1.197) only prints a warning.
const LOCKDOWN_SETTINGS: &str = r#"--settings={"includeGitInstructions":false,"permissions":{"deny":["Read","Glob","Grep","LS","Edit","Write","NotebookEdit","Bash","WebFetch","WebSearch","Read(//**)","Edit(//**)","Write(//**)","NotebookEdit(//**)"]}}"#;

/// The system prompt's file in the process's private scratch directory.
const SYSTEM_PROMPT_FILE: &str = "system-prompt.txt";

/// Inherited variables claude may see: its OAuth token and where its per-user state lives.
const ALLOWED_ENV: &[&str] = &[
    "CLAUDE_CODE_OAUTH_TOKEN",
    "CLAUDE_CONFIG_DIR",
    "CLAUDE_CODE_OAUTH_TOKEN_FILE_DESCRIPTOR",
];

impl Adapter for Claude {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Claude
    }

    fn mode(&self) -> ProcessMode {
        ProcessMode::LongLived
    }

    fn launch(
        &self,
        profile: &LaunchProfile,
        scratch: &Path,
        _env: &dyn Fn(&str) -> Option<String>,
        _tools: Option<&ToolEndpoint>,
    ) -> LaunchSpec {
        // `--opt=value` keeps a value that starts with '-' from being read as a flag.
        let mut args: Vec<String> = [
            "-p",
            "--input-format=stream-json",
            "--output-format=stream-json",
            "--verbose",
            "--include-partial-messages",
            // No built-in tools, no MCP servers, no settings files that could add either (or an
            // apiKeyHelper): a prompt must not be able to read the mounted token.
            "--tools=",
            "--strict-mcp-config",
            "--setting-sources=",
            // With no tools, claude still reads a file named in the text as `@path` and sends it
            // to the model (measured: `@/any/file` in a user turn reached the model server). Its
            // permission rules do stop that, so every file and shell tool is denied outright.
            LOCKDOWN_SETTINGS,
            "--no-session-persistence",
        ]
        .map(String::from)
        .to_vec();
        args.push(format!("--model={}", profile.model));
        let mut files = Vec::new();
        if let Some(system) = &profile.system {
            // A file, not an argument: an argument shows in `ps`, and a NUL byte or more than
            // ≈128 KiB in it made the spawn fail (marking the provider down for everyone).
            files.push((PathBuf::from(SYSTEM_PROMPT_FILE), system.clone()));
            args.push(format!(
                "--system-prompt-file={}",
                scratch.join(SYSTEM_PROMPT_FILE).display()
            ));
        }
        if profile.tools.is_some() {
            // The client's tools, as one MCP server the hub answers over the control protocol
            // on stdin/stdout (`type: sdk`): no port, no file, no other process. Only its tools
            // are allowed; every built-in stays off (`--tools=`) and denied.
            args.push(format!(
                "--mcp-config={}",
                json!({"mcpServers": {tools::SERVER_NAME: {"type": "sdk", "name": tools::SERVER_NAME}}})
            ));
            args.push(format!("--allowedTools=mcp__{}", tools::SERVER_NAME));
        }
        LaunchSpec {
            args,
            env: quiet_env(),
            allowed_env: ALLOWED_ENV,
            files,
            links: Vec::new(),
        }
    }

    fn encode_turn(&self, messages: &[Message]) -> Vec<u8> {
        user_line(&guard_slash(transcript::render(messages)))
    }

    fn reset_turn(&self) -> Option<&'static [u8]> {
        // Sent after every request: built once.
        static CLEAR: std::sync::LazyLock<Vec<u8>> =
            std::sync::LazyLock::new(|| user_line("/clear"));
        Some(&CLEAR)
    }

    fn reports_credential_source(&self) -> bool {
        true
    }

    fn control_reply(&self, request_id: &str, reply: ControlReply) -> Option<Vec<u8>> {
        let response = match reply {
            ControlReply::Mcp(message) => json!({"subtype": "success", "request_id": request_id,
                                                 "response": {"mcp_response": message}}),
            ControlReply::Refused(why) => {
                json!({"subtype": "error", "request_id": request_id, "error": why})
            }
        };
        let mut line = json!({"type": "control_response", "response": response})
            .to_string()
            .into_bytes();
        line.push(b'\n');
        Some(line)
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn announces_message_end(&self) -> bool {
        true
    }

    fn tool_name<'a>(&self, model_name: &'a str) -> Option<&'a str> {
        model_name
            .strip_prefix("mcp__")?
            .strip_prefix(tools::SERVER_NAME)?
            .strip_prefix("__")
    }

    fn parse_stdout(&self, line: &str) -> Option<CliEvent> {
        parse_line(line)
    }

    fn parse_stderr(&self, _line: &str) -> Option<CliEvent> {
        None
    }

    fn classify_exit(&self, code: Option<i32>, stderr_tail: &str) -> Failure {
        Failure::Crashed(format!(
            "claude exited ({}) before its result: {}",
            code.map_or("signal".to_string(), |c| c.to_string()),
            stderr_tail
        ))
    }
}

/// In stream-json input mode claude runs a user turn that starts with '/' as one of its own
/// commands (`/model haiku` switches the model of the pooled process, `/clear` resets it). A
/// client's text must never do that; a leading space makes the CLI send it as plain text.
fn guard_slash(text: String) -> String {
    if text.starts_with('/') {
        format!(" {text}")
    } else {
        text
    }
}

fn user_line(text: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        r#type: &'static str,
        message: UserMessage<'a>,
    }
    #[derive(serde::Serialize)]
    struct UserMessage<'a> {
        role: &'static str,
        content: [TextBlock<'a>; 1],
    }
    #[derive(serde::Serialize)]
    struct TextBlock<'a> {
        r#type: &'static str,
        text: &'a str,
    }
    let line = Line {
        r#type: "user",
        message: UserMessage {
            role: "user",
            content: [TextBlock {
                r#type: "text",
                text,
            }],
        },
    };
    // The prompt's length plus the envelope: one allocation for the whole line.
    let mut out = Vec::with_capacity(text.len() + 96);
    serde_json::to_writer(&mut out, &line).expect("a struct of strings serializes");
    out.push(b'\n');
    out
}

/// Parses one stream-json line. Unknown types and malformed lines are skipped, not fatal.
pub fn parse_line(line: &str) -> Option<CliEvent> {
    let v = Obj::parse(line.trim())?;
    match v.str("type")?.as_ref() {
        "system" => match v.str("subtype")?.as_ref() {
            "init" => Some(CliEvent::Started {
                model: v.string("model"),
                api_key_source: v.string("apiKeySource"),
                session_id: v.string("session_id"),
            }),
            "api_retry" => Some(CliEvent::Retrying {
                attempt: v.u64("attempt").unwrap_or(0) as u32,
                status: v.u64("error_status").map(|s| s as u16),
            }),
            _ => None,
        },
        "stream_event" => stream_event(&v.obj("event")?),
        // The CLI asks its host something: for the hub, only MCP messages to the tools server.
        "control_request" => {
            let request_id = v.string("request_id")?;
            let request = v.obj("request")?;
            let subtype = request.string("subtype").unwrap_or_default();
            Some(
                if subtype == "mcp_message" && request.is("server_name", tools::SERVER_NAME) {
                    CliEvent::ToolServer {
                        request_id,
                        message: request.get("message").unwrap_or(Value::Null),
                    }
                } else {
                    CliEvent::ControlRequest {
                        request_id,
                        subtype,
                    }
                },
            )
        }
        "assistant" => {
            if let Some(error) = v.str("error") {
                return Some(CliEvent::Failure(assistant_error(&error)));
            }
            let message = v.obj("message")?;
            // The CLI's own placeholder, not the model's words: 2.1.197 answers `/clear` with
            // a `<synthetic>` message "(no content)".
            if message.is("model", "<synthetic>") {
                return None;
            }
            let text: String = message
                .objs("content")?
                .iter()
                .filter(|b| b.is("type", "text"))
                .filter_map(|b| b.str("text"))
                .collect();
            Some(CliEvent::AssistantText(text))
        }
        // `/clear` answers with this line, then an empty result marked `local_command`.
        "conversation_reset" => v
            .is("trigger", "clear")
            .then_some(CliEvent::ConversationReset),
        "rate_limit_event" => {
            let info = v.obj("rate_limit_info")?;
            (info.str("status")? == "rejected").then(|| {
                CliEvent::Failure(Failure::UsageLimited {
                    resets_at: info.i64("resetsAt"),
                })
            })
        }
        "result" => {
            let usage = v.obj("usage").map(|u| Usage {
                input_tokens: u.u64("input_tokens").unwrap_or(0),
                output_tokens: u.u64("output_tokens").unwrap_or(0),
            });
            Some(CliEvent::Result(TurnResult {
                text: v.string("result").unwrap_or_default(),
                usage,
                is_error: v.bool("is_error").unwrap_or(false) || !v.is("subtype", "success"),
                api_status: v.u64("api_error_status").map(|s| s as u16),
            }))
        }
        _ => None,
    }
}

/// One event of the model's streamed answer: text, a tool call's start or arguments, or the end
/// of one model message (`stop_reason` says whether it asks for tools).
fn stream_event(event: &Obj) -> Option<CliEvent> {
    let index = || event.u64("index").unwrap_or(0) as u32;
    match event.str("type")?.as_ref() {
        "content_block_delta" => {
            let delta = event.obj("delta")?;
            match delta.str("type")?.as_ref() {
                "text_delta" => Some(CliEvent::TextDelta(
                    delta.string("text").unwrap_or_default(),
                )),
                "input_json_delta" => Some(CliEvent::ToolUseArgs {
                    index: index(),
                    json: delta.string("partial_json").unwrap_or_default(),
                }),
                _ => None,
            }
        }
        "content_block_start" => {
            let block = event.obj("content_block")?;
            block
                .is("type", "tool_use")
                .then(|| CliEvent::ToolUseStart {
                    index: index(),
                    id: block.string("id").unwrap_or_default(),
                    name: block.string("name").unwrap_or_default(),
                })
        }
        "message_delta" => Some(CliEvent::MessageEnd {
            stop_reason: event.obj("delta")?.string("stop_reason"),
        }),
        _ => None,
    }
}

fn assistant_error(error: &str) -> Failure {
    match error {
        "authentication_failed" | "oauth_org_not_allowed" => Failure::NotLoggedIn,
        "rate_limit" | "billing_error" => Failure::UsageLimited { resets_at: None },
        "server_error" | "overloaded" => Failure::Upstream(error.to_string()),
        other => Failure::from_status(None, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Role;

    #[test]
    fn launch_locks_the_cli_down() {
        let spec = Claude.launch(
            &LaunchProfile {
                model: "sonnet".into(),
                system: Some("--be brief".into()),
                tools: None,
            },
            Path::new("/tmp/x"),
            &|_| None,
            None,
        );
        for flag in [
            "--tools=",
            "--strict-mcp-config",
            "--setting-sources=",
            "--input-format=stream-json",
        ] {
            assert!(spec.args.contains(&flag.to_string()), "{flag} missing");
        }
        // The system prompt travels in a file of the scratch directory, never in argv.
        assert!(
            spec.args
                .contains(&"--system-prompt-file=/tmp/x/system-prompt.txt".to_string())
        );
        assert!(!spec.args.iter().any(|a| a.contains("--be brief")));
        assert_eq!(
            spec.files,
            vec![(PathBuf::from("system-prompt.txt"), "--be brief".to_string())]
        );
        assert!(spec.args.contains(&"--model=sonnet".to_string()));
        assert!(!spec.args.iter().any(|a| a == "--bare"));
        // `@path` in a prompt is read through the Read tool's permission check.
        let settings = spec
            .args
            .iter()
            .find_map(|a| a.strip_prefix("--settings="))
            .expect("inline settings");
        let settings: serde_json::Value = serde_json::from_str(settings).unwrap();
        let denied = settings["permissions"]["deny"].as_array().unwrap();
        for tool in ["Read", "Bash", "WebFetch"] {
            assert!(denied.iter().any(|d| d == tool), "{tool} not denied");
        }
        assert_eq!(settings["includeGitInstructions"], false);
    }

    #[test]
    fn turn_is_one_json_line_and_slash_text_is_not_a_command() {
        let bytes = Claude.encode_turn(&[Message::text(Role::User, "/clear everything")]);
        let line = String::from_utf8(bytes).unwrap();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let v: Value = serde_json::from_str(&line).unwrap();
        let text = v["message"]["content"][0]["text"].as_str().unwrap();
        assert_eq!(text, " /clear everything");
        assert_eq!(
            (v["type"].as_str(), v["message"]["role"].as_str()),
            (Some("user"), Some("user"))
        );

        let reset = Claude.reset_turn().unwrap();
        assert!(reset.ends_with(b"\n") && reset.iter().filter(|b| **b == b'\n').count() == 1);
        let v: Value = serde_json::from_slice(reset).unwrap();
        assert_eq!(v["message"]["content"][0]["text"], "/clear");
    }

    #[test]
    fn parses_a_successful_turn() {
        let lines = [
            r#"{"type":"system","subtype":"init","session_id":"s","model":"claude-sonnet","tools":[],"mcp_servers":[],"apiKeySource":"none"}"#,
            r#"{"type":"stream_event","event":{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}}"#,
            r#"{"type":"stream_event","event":{"type":"message_stop"}}"#,
            r#"{"type":"assistant","message":{"id":"m","role":"assistant","content":[{"type":"text","text":"Hello"}]}}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"result":"Hello","usage":{"input_tokens":3,"output_tokens":2}}"#,
        ];
        let events: Vec<_> = lines.iter().filter_map(|l| parse_line(l)).collect();
        assert_eq!(
            events,
            vec![
                CliEvent::Started {
                    model: Some("claude-sonnet".into()),
                    api_key_source: Some("none".into()),
                    session_id: Some("s".into()),
                },
                CliEvent::TextDelta("Hel".into()),
                CliEvent::AssistantText("Hello".into()),
                CliEvent::Result(TurnResult {
                    text: "Hello".into(),
                    usage: Some(Usage {
                        input_tokens: 3,
                        output_tokens: 2
                    }),
                    is_error: false,
                    api_status: None,
                }),
            ]
        );
    }

    #[test]
    fn parses_failures() {
        assert_eq!(
            parse_line(
                r#"{"type":"assistant","error":"authentication_failed","message":{"content":[{"type":"text","text":"Not logged in · Please run /login"}]}}"#
            ),
            Some(CliEvent::Failure(Failure::NotLoggedIn))
        );
        assert_eq!(
            parse_line(
                r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1767000000,"rateLimitType":"five_hour"}}"#
            ),
            Some(CliEvent::Failure(Failure::UsageLimited {
                resets_at: Some(1767000000)
            }))
        );
        assert_eq!(
            parse_line(r#"{"type":"rate_limit_event","rate_limit_info":{"status":"allowed"}}"#),
            None
        );
        assert_eq!(
            parse_line(
                r#"{"type":"system","subtype":"api_retry","attempt":2,"max_retries":10,"retry_delay_ms":1200,"error_status":529}"#
            ),
            Some(CliEvent::Retrying {
                attempt: 2,
                status: Some(529)
            })
        );
        let Some(CliEvent::Result(r)) = parse_line(
            r#"{"type":"result","subtype":"success","is_error":true,"api_error_status":429,"result":"You've hit your session limit"}"#,
        ) else {
            panic!()
        };
        assert!(r.is_error);
        assert_eq!(r.api_status, Some(429));
    }

    #[test]
    fn survives_garbage() {
        for line in ["", "not json", "{}", r#"{"type":"new_thing"}"#, "[1,2]"] {
            assert_eq!(parse_line(line), None, "{line}");
        }
    }

    #[test]
    fn a_clear_on_2_1_197_reads_as_a_new_session_and_an_empty_result() {
        // Seen on claude 2.1.197 after `/clear`: no `conversation_reset` line, a new init, a
        // synthetic placeholder and an empty result.
        let lines = [
            r#"{"type":"system","subtype":"init","session_id":"b5629a17","model":"claude-sonnet-5","tools":[],"mcp_servers":[],"apiKeySource":"none"}"#,
            r#"{"type":"assistant","message":{"id":"x","model":"<synthetic>","role":"assistant","content":[{"type":"text","text":"(no content)"}]},"session_id":"b5629a17"}"#,
            r#"{"type":"result","subtype":"success","is_error":false,"num_turns":0,"result":"","session_id":"b5629a17"}"#,
        ];
        let events: Vec<_> = lines.iter().filter_map(|l| parse_line(l)).collect();
        assert!(
            matches!(&events[0], CliEvent::Started { session_id: Some(s), .. } if s == "b5629a17")
        );
        assert_eq!(events.len(), 2, "the placeholder is no text: {events:?}");
        assert!(matches!(&events[1], CliEvent::Result(r) if r.text.is_empty() && !r.is_error));
    }

    #[test]
    fn the_lockdown_denies_file_tools_by_name_and_by_path() {
        let settings: serde_json::Value =
            serde_json::from_str(LOCKDOWN_SETTINGS.strip_prefix("--settings=").unwrap()).unwrap();
        let deny: Vec<&str> = settings["permissions"]["deny"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for rule in [
            "Read",
            "Read(//**)",
            "Edit(//**)",
            "Write(//**)",
            "Bash",
            "WebFetch",
        ] {
            assert!(deny.contains(&rule), "{rule} missing from {deny:?}");
        }
    }
}
