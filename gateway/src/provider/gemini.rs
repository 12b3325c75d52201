//! Gemini CLI (`gemini`): pre-started one-shot processes.
//!
//! The CLI spends ≈1.5 s starting Node before it reads stdin, so the pool starts processes
//! ahead of time; a request writes its prompt, closes stdin and reads one answer.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::json_line::Obj;
use super::{
    Adapter, CliEvent, Failure, LaunchProfile, LaunchSpec, Message, ProcessMode, ProviderKind,
    ToolEndpoint, TurnResult, Usage, quiet_env, tools, transcript,
};

pub struct Gemini;

/// Inherited variables gemini may see beyond the common list: the Google Cloud project a
/// Workspace (Standard/Enterprise) account's Code Assist needs; a personal account needs none.
const ALLOWED_ENV: &[&str] = &["GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_PROJECT_ID"];

/// The login files a private home links to. Everything else gemini writes there (chat
/// recordings of every conversation, project lists, temp files) dies with the process.
const LOGIN_FILES: &[&str] = &[
    "oauth_creds.json",
    "google_accounts.json",
    "installation_id",
];

/// The private home's user settings: only the login type. The user's own file is never read:
/// it can run commands (a tool discovery command ran from it, measured), add tools, or pick a
/// metered login.
const USER_SETTINGS: &str = "settings.json";

/// gemini's "Login with Google": the subscription, the only login the hub runs gemini on.
const GOOGLE_LOGIN: &str = "oauth-personal";

/// The system-level settings file the hub writes per process. System settings override the
/// user's own, so no user file can bring tools or MCP servers back.
const SETTINGS_FILE: &str = "hub-settings.json";
const SYSTEM_PROMPT_FILE: &str = "system.md";
const PRIVATE_HOME: &str = "home";

/// What gemini sends when no system prompt is asked for: its own coding-agent prompt would tell
/// the model about files and tools it does not have.
/// How gemini names the tools of the hub's MCP server to the model: `mcp_<server>_<tool>`.
const TOOL_PREFIX: &str = "mcp_hub_";
/// gemini's own limit on one MCP call; the hub's wait limit (`tool_result_timeout_secs`) ends
/// the turn well before it.
const TOOL_CALL_TIMEOUT_MS: u64 = 24 * 3600 * 1000;

pub const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

impl Adapter for Gemini {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn mode(&self) -> ProcessMode {
        ProcessMode::OneShot
    }

    fn launch(
        &self,
        profile: &LaunchProfile,
        scratch: &Path,
        hub_env: &dyn Fn(&str) -> Option<String>,
        tool_endpoint: Option<&ToolEndpoint>,
    ) -> LaunchSpec {
        // System settings override the user's: no core tools, no MCP server, no telemetry, and
        // no GEMINI.md "memory" from the directories above the scratch dir (gemini otherwise
        // walks up to the first `.git` and sends every GEMINI.md it meets to the model).
        //
        // The login is Google's (the subscription), selected and enforced here: an API key, Vertex
        // AI or ADC selected in the user's settings or `.env` never applies (gemini exits 41,
        // "not logged in", when the Google login is missing). `useExternal` would skip the check.
        let mut settings = json!({
            "security": {"auth": {"selectedType": GOOGLE_LOGIN, "enforcedType": GOOGLE_LOGIN,
                                  "useExternal": false}},
            "tools": {"core": []},
            "mcp": {"allowed": []},
            "context": {"memoryBoundaryMarkers": []},
            "telemetry": {"enabled": false},
            "privacy": {"usageStatisticsEnabled": false},
        });
        if let (Some(tools), Some(endpoint)) = (&profile.tools, tool_endpoint) {
            // The client's tools as the one MCP server `hub`, on the hub's loopback tools
            // server. `tools.core` names exactly its tools (an empty list denies MCP tools
            // too), so no built-in tool comes back.
            settings["tools"]["core"] = tools
                .tools()
                .iter()
                .map(|t| json!(format!("{TOOL_PREFIX}{}", t.name)))
                .collect();
            settings["mcp"]["allowed"] = json!([tools::SERVER_NAME]);
            settings["mcpServers"] = json!({tools::SERVER_NAME: {
                "httpUrl": endpoint.url,
                "headers": {"Authorization": format!("Bearer {}", endpoint.secret)},
                // The hub runs nothing: a call waits for the client, which the hub times.
                "trust": true,
                "timeout": TOOL_CALL_TIMEOUT_MS,
            }});
        }
        let system = profile
            .system
            .clone()
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.to_string());
        let path_of = |name: &str| scratch.join(name).to_string_lossy().into_owned();
        let mut env = quiet_env();
        env.extend([
            (
                "GEMINI_CLI_SYSTEM_SETTINGS_PATH".to_string(),
                path_of(SETTINGS_FILE),
            ),
            ("GEMINI_SYSTEM_MD".to_string(), path_of(SYSTEM_PROMPT_FILE)),
            ("GEMINI_CLI_TRUST_WORKSPACE".to_string(), "true".to_string()),
            // gemini records every conversation under its home for weeks; a private home per
            // process keeps them only as long as the process.
            ("GEMINI_CLI_HOME".to_string(), path_of(PRIVATE_HOME)),
        ]);
        let user_home = hub_env("GEMINI_CLI_HOME").or_else(|| hub_env("HOME"));
        let links = user_home
            .as_ref()
            .map(|home| {
                LOGIN_FILES
                    .iter()
                    .map(|f| {
                        (
                            Path::new(PRIVATE_HOME).join(".gemini").join(f),
                            Path::new(&home).join(".gemini").join(f),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut files = vec![
            (PathBuf::from(SETTINGS_FILE), settings.to_string()),
            (PathBuf::from(SYSTEM_PROMPT_FILE), system),
            // gemini loads the first `.gemini/.env` or `.env` it meets walking up from its
            // working directory (`work/`, below this one); from a scratch dir under the home
            // that walk reached `~/.gemini/.env`, where people keep API keys and endpoints
            // (measured: a planted one's variables reached the model server). Empty ones here
            // end the walk before it leaves the scratch dir.
            (Path::new(".gemini").join(".env"), String::new()),
            (PathBuf::from(".env"), String::new()),
        ];
        files.push((
            Path::new(PRIVATE_HOME).join(".gemini").join(USER_SETTINGS),
            json!({"security": {"auth": {"selectedType": GOOGLE_LOGIN}}}).to_string(),
        ));
        LaunchSpec {
            args: vec![
                "--output-format=stream-json".into(),
                format!("--model={}", profile.model),
                "--skip-trust".into(),
                "--extensions=none".into(),
            ],
            env,
            allowed_env: ALLOWED_ENV,
            files,
            links,
        }
    }

    fn supports_tools(&self) -> bool {
        true
    }

    fn tools_over_http(&self) -> bool {
        true
    }

    fn tool_name<'a>(&self, model_name: &'a str) -> Option<&'a str> {
        model_name.strip_prefix(TOOL_PREFIX)
    }

    fn primer(&self) -> Option<&'static [u8]> {
        Some(b"\n")
    }

    fn encode_turn(&self, messages: &[Message]) -> Vec<u8> {
        transcript::render(messages).into_bytes()
    }

    fn parse_stdout(&self, line: &str) -> Option<CliEvent> {
        parse_line(line)
    }

    fn parse_stderr(&self, line: &str) -> Option<CliEvent> {
        parse_stderr_line(line)
    }

    fn classify_exit(&self, code: Option<i32>, stderr_tail: &str) -> Failure {
        match code {
            Some(41) => Failure::NotLoggedIn,
            // The CLI leaks the HTTP status into its exit code (429 & 0xFF = 173).
            Some(173) => Failure::UsageLimited { resets_at: None },
            Some(c) => Failure::Crashed(format!("gemini exited {c}: {stderr_tail}")),
            None => Failure::Crashed(format!("gemini killed by a signal: {stderr_tail}")),
        }
    }
}

/// The login type the user's gemini settings select when it is not the Google login, for a
/// warning: the hub enforces the Google login whatever they say. `None` for the Google login,
/// no choice, or a file that is not JSON.
pub fn other_login_selected(user_settings: &str) -> Option<String> {
    let settings: Value = serde_json::from_str(user_settings).ok()?;
    let selected = settings
        .pointer("/security/auth/selectedType")
        .or_else(|| settings.get("selectedAuthType"))?
        .as_str()?;
    (selected != GOOGLE_LOGIN).then(|| selected.to_string())
}

/// Where the user's gemini settings live, from the hub's environment.
pub fn user_settings_path(hub_env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let home = hub_env("GEMINI_CLI_HOME").or_else(|| hub_env("HOME"))?;
    Some(Path::new(&home).join(".gemini").join(USER_SETTINGS))
}

/// Parses one stream-json line of gemini's stdout.
pub fn parse_line(line: &str) -> Option<CliEvent> {
    let v = Obj::parse(line.trim())?;
    match v.str("type")?.as_ref() {
        "init" => Some(CliEvent::Started {
            model: v.string("model"),
            api_key_source: None,
            session_id: v.string("session_id"),
        }),
        "message" if v.is("role", "assistant") => {
            let text = v.string("content")?;
            Some(if v.bool("delta") == Some(true) {
                CliEvent::TextDelta(text)
            } else {
                CliEvent::AssistantText(text)
            })
        }
        "tool_use" => Some(CliEvent::ToolUse {
            id: v.string("tool_id")?,
            name: v.string("tool_name")?,
            arguments: v
                .get::<Value>("parameters")
                .map_or_else(|| "{}".to_string(), |p| p.to_string()),
        }),
        "error" => {
            let message = v.str("message");
            let message = message.as_deref().unwrap_or("gemini reported an error");
            Some(CliEvent::Failure(Failure::from_status(None, message)))
        }
        "result" => {
            let ok = v.is("status", "success");
            let stats = v.obj("stats");
            let count = |k: &str| stats.as_ref().and_then(|s| s.u64(k)).unwrap_or(0);
            let error_text = v
                .get::<Value>("error")
                .map(|e| {
                    e.get("message")
                        .and_then(Value::as_str)
                        .map_or_else(|| e.to_string(), String::from)
                })
                .unwrap_or_default();
            Some(CliEvent::Result(TurnResult {
                text: if ok { String::new() } else { error_text },
                usage: stats.as_ref().map(|_| Usage {
                    input_tokens: count("input_tokens"),
                    output_tokens: count("output_tokens"),
                }),
                is_error: !ok,
                api_status: None,
            }))
        }
        _ => None,
    }
}

/// Gemini retries failed model calls for minutes and says so only on stderr; these lines let
/// the hub fail fast instead of waiting for its deadline.
pub fn parse_stderr_line(line: &str) -> Option<CliEvent> {
    let lower = line.to_ascii_lowercase();
    // Gemini ignores a system settings file below a group- or world-writable directory (/tmp);
    // without it every file and web tool would be on.
    if lower.contains("skipping system settings file") {
        return Some(CliEvent::Failure(Failure::Unsafe(line.trim().to_string())));
    }
    if lower.contains("please set an auth method")
        || lower.contains("manual authorization is required")
    {
        return Some(CliEvent::Failure(Failure::NotLoggedIn));
    }
    let status = lower
        .split("failed with status ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|digits| digits.parse::<u16>().ok())?;
    Some(match status {
        429 => CliEvent::Failure(Failure::UsageLimited { resets_at: None }),
        401 | 403 => CliEvent::Failure(Failure::NotLoggedIn),
        s => CliEvent::Retrying {
            attempt: attempt_number(&lower).unwrap_or(1),
            status: Some(s),
        },
    })
}

fn attempt_number(lower: &str) -> Option<u32> {
    lower
        .split("attempt ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Role;

    #[test]
    fn launch_writes_lockdown_settings_and_system_prompt() {
        let spec = Gemini.launch(
            &LaunchProfile {
                model: "gemini-2.5-pro".into(),
                system: Some("Be terse.".into()),
                tools: None,
            },
            Path::new("/scratch"),
            &|name| (name == "HOME").then(|| "/home/u".to_string()),
            None,
        );
        assert!(spec.args.contains(&"--model=gemini-2.5-pro".to_string()));
        assert!(
            !spec
                .args
                .iter()
                .any(|a| a == "--yolo" || a.contains("approval-mode=yolo"))
        );
        let settings: Value = serde_json::from_str(&spec.files[0].1).unwrap();
        assert_eq!(settings["tools"]["core"], json!([]));
        assert_eq!(settings["mcp"]["allowed"], json!([]));
        assert_eq!(settings["context"]["memoryBoundaryMarkers"], json!([]));
        assert_eq!(spec.files[1].1, "Be terse.");
        assert!(spec.env.contains(&(
            "GEMINI_SYSTEM_MD".to_string(),
            "/scratch/system.md".to_string()
        )));
        assert!(
            spec.env
                .contains(&("GEMINI_CLI_HOME".to_string(), "/scratch/home".to_string()))
        );
        assert!(spec.links.contains(&(
            PathBuf::from("home/.gemini/oauth_creds.json"),
            PathBuf::from("/home/u/.gemini/oauth_creds.json")
        )));
    }

    #[test]
    fn the_google_login_is_selected_and_enforced_whatever_the_user_chose() {
        let spec = Gemini.launch(
            &LaunchProfile {
                model: "gemini-2.5-pro".into(),
                system: None,
                tools: None,
            },
            Path::new("/scratch"),
            &|name| (name == "HOME").then(|| "/home/u".to_string()),
            None,
        );
        let settings: Value = serde_json::from_str(&spec.files[0].1).unwrap();
        assert_eq!(
            settings["security"]["auth"],
            json!({"selectedType": "oauth-personal", "enforcedType": "oauth-personal",
                   "useExternal": false})
        );
        let home_settings = spec
            .files
            .iter()
            .find(|(path, _)| path == Path::new("home/.gemini/settings.json"))
            .map(|(_, text)| serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(
            home_settings,
            Some(json!({"security": {"auth": {"selectedType": "oauth-personal"}}}))
        );
        // The user's settings file is never linked (it may hold commands or another login).
        assert!(
            spec.links
                .iter()
                .all(|(_, to)| !to.ends_with("settings.json"))
        );
    }

    #[test]
    fn another_login_in_the_users_settings_is_named_for_a_warning() {
        let other = |s: Value| other_login_selected(&s.to_string());
        assert_eq!(
            other(json!({"security": {"auth": {"selectedType": "gemini-api-key"}}})),
            Some("gemini-api-key".into())
        );
        assert_eq!(
            other(json!({"selectedAuthType": "vertex-ai"})),
            Some("vertex-ai".into())
        );
        assert_eq!(
            other(json!({"security": {"auth": {"selectedType": "oauth-personal"}}})),
            None
        );
        assert_eq!(other(json!({"tools": {}})), None);
        assert_eq!(other_login_selected("not json"), None);
        assert_eq!(
            user_settings_path(&|n| (n == "HOME").then(|| "/home/u".to_string())),
            Some(PathBuf::from("/home/u/.gemini/settings.json"))
        );
    }

    #[test]
    fn prompt_goes_to_stdin_verbatim() {
        let bytes = Gemini.encode_turn(&[Message::text(Role::User, "--version")]);
        assert_eq!(bytes, b"--version");
    }

    #[test]
    fn parses_stream() {
        assert_eq!(
            parse_line(r#"{"type":"message","role":"assistant","content":"Hi","delta":true}"#),
            Some(CliEvent::TextDelta("Hi".into()))
        );
        assert_eq!(
            parse_line(r#"{"type":"message","role":"user","content":"q"}"#),
            None
        );
        let Some(CliEvent::Result(r)) = parse_line(
            r#"{"type":"result","status":"success","stats":{"total_tokens":9,"input_tokens":4,"output_tokens":5}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            r.usage,
            Some(Usage {
                input_tokens: 4,
                output_tokens: 5
            })
        );
        assert!(!r.is_error);
    }

    #[test]
    fn stderr_reveals_limits_and_auth() {
        assert_eq!(
            parse_stderr_line(
                "Attempt 1 failed with status 429. Retrying with backoff... _ApiError: {...}"
            ),
            Some(CliEvent::Failure(Failure::UsageLimited { resets_at: None }))
        );
        assert_eq!(
            parse_stderr_line("Please set an Auth method in your settings"),
            Some(CliEvent::Failure(Failure::NotLoggedIn))
        );
        assert_eq!(
            parse_stderr_line("Attempt 3 failed with status 503. Retrying"),
            Some(CliEvent::Retrying {
                attempt: 3,
                status: Some(503)
            })
        );
        assert_eq!(parse_stderr_line("Loaded cached credentials."), None);
        assert!(matches!(
            parse_stderr_line(
                "Security Warning: Skipping system settings file '/tmp/x/s.json': Parent directory '/tmp' is insecure"
            ),
            Some(CliEvent::Failure(Failure::Unsafe(_)))
        ));
    }

    #[test]
    fn exit_codes_classify() {
        assert_eq!(Gemini.classify_exit(Some(41), ""), Failure::NotLoggedIn);
        assert_eq!(
            Gemini.classify_exit(Some(173), ""),
            Failure::UsageLimited { resets_at: None }
        );
    }
}
