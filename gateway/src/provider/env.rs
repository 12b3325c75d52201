//! The environment a CLI process gets: built from an allow-list, never inherited wholesale.
//!
//! A stray `ANTHROPIC_API_KEY` would silently switch claude to metered API billing, and
//! `GEMINI_API_KEY`/`GOOGLE_API_KEY`/`GOOGLE_GENAI_USE_VERTEXAI` do the same for gemini, so the hub
//! passes only the variables a CLI needs to run and to find its OAuth login.

use std::collections::BTreeMap;

/// Variables every CLI may inherit from the hub's environment.
const COMMON: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_STATE_HOME",
    "XDG_CACHE_HOME",
    // Corporate proxies and private CAs are how some users reach the vendor at all.
    "HTTPS_PROXY",
    "HTTP_PROXY",
    "NO_PROXY",
    "https_proxy",
    "http_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
];

/// Names that must never reach a CLI, whatever the configuration says.
const DENIED: &[&str] = &[
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "OPENAI_API_KEY",
    "CODEX_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// True for a variable the hub refuses to pass to any CLI.
pub fn is_denied(name: &str) -> bool {
    DENIED.contains(&name)
        || name.ends_with("_API_KEY")
        || name.starts_with("CLAUDE_CODE_USE_")
        || name.starts_with("AWS_")
}

/// Builds a CLI's environment from the hub's own (`inherited`): the common allow-list plus the
/// provider's `extra_allowed` names, then the hub's fixed settings (`fixed`), minus every denied
/// name. `fixed` wins over inherited values.
pub fn build_env<'a>(
    inherited: impl IntoIterator<Item = (String, String)>,
    extra_allowed: impl IntoIterator<Item = &'a str> + Clone,
    fixed: impl IntoIterator<Item = (String, String)>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(name, _)| {
            COMMON.contains(&name.as_str()) || extra_allowed.clone().into_iter().any(|a| a == name)
        })
        .collect();
    env.extend(fixed);
    env.retain(|name, _| !is_denied(name));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keeps_allow_listed_and_drops_everything_else() {
        let env = build_env(
            vars(&[
                ("PATH", "/bin"),
                ("HOME", "/home/u"),
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("GEMINI_API_KEY", "g"),
                ("GOOGLE_API_KEY", "g"),
                ("OPENAI_API_KEY", "o"),
                ("GOOGLE_GENAI_USE_VERTEXAI", "true"),
                ("SOME_SECRET", "s"),
                ("CLAUDE_CODE_OAUTH_TOKEN", "tok"),
            ]),
            ["CLAUDE_CODE_OAUTH_TOKEN"],
            vars(&[("DISABLE_TELEMETRY", "1")]),
        );
        assert_eq!(
            env.keys().map(String::as_str).collect::<Vec<_>>(),
            vec![
                "CLAUDE_CODE_OAUTH_TOKEN",
                "DISABLE_TELEMETRY",
                "HOME",
                "PATH"
            ]
        );
    }

    #[test]
    fn denied_names_lose_even_when_configured() {
        let env = build_env(
            vars(&[("ANTHROPIC_API_KEY", "sk")]),
            ["ANTHROPIC_API_KEY", "MY_API_KEY"],
            vars(&[("GOOGLE_API_KEY", "x"), ("CLAUDE_CODE_USE_BEDROCK", "1")]),
        );
        assert!(env.is_empty(), "{env:?}");
    }
}
