//! Parsing of the `[[...]]` directives that script the fake servers' answers.

use std::time::Duration;

/// What a request asked the fake server to do, parsed from the last user message text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directives {
    /// `[[reply:TEXT]]`: answer exactly `TEXT` (the last `[[reply:...]]` wins).
    pub reply: Option<String>,
    /// `[[words:N]]`: answer `word1 word2 … wordN`, one word per delta.
    pub words: Option<usize>,
    /// `[[delay-ms:N]]`: wait `N` ms before each delta after the first.
    pub delay: Option<Duration>,
    /// `[[stall]]`: send the first delta, then keep the connection open without finishing.
    pub stall: bool,
    /// `[[drop]]`: send the first delta, then abort the connection.
    pub drop: bool,
    /// `[[status:N]]`: answer with an HTTP error of status `N` in the vendor's error shape.
    pub status: Option<u16>,
    /// `[[reset-in:S]]`: a 429 says the usage window resets in `S` seconds (default 3600).
    pub reset_in: Option<u64>,
    /// `[[tool:NAME:JSON]]`: the model asks to call tool `NAME` with input `JSON` (an attack
    /// on the lock-down when `NAME` is a built-in, a client's function otherwise). Repeated, the
    /// model calls several tools in one answer. The follow-up carrying the results is answered
    /// with `tool result: <results joined by " | ">`, unless the results hold `[[tool:…]]`
    /// directives themselves: then the model calls those next (a multi-step agent loop).
    pub tools: Vec<(String, String)>,
}

impl Directives {
    /// True when no directive was found.
    pub fn is_empty(&self) -> bool {
        *self == Directives::default()
    }
}

/// Parses every `[[name]]` / `[[name:value]]` directive in `text`.
///
/// Unknown names and malformed values are ignored, so ordinary text that happens to contain
/// `[[` is answered normally.
pub fn parse_directives(text: &str) -> Directives {
    let mut d = Directives::default();
    let mut rest = text;
    while let Some(start) = rest.find("[[") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("]]") else { break };
        let inner = &after[..end];
        rest = &after[end + 2..];
        let (name, value) = match inner.split_once(':') {
            Some((n, v)) => (n.trim(), Some(v)),
            None => (inner.trim(), None),
        };
        match (name, value) {
            ("reply", Some(v)) => d.reply = Some(v.to_string()),
            ("words", Some(v)) => {
                if let Ok(n) = v.trim().parse() {
                    d.words = Some(n)
                }
            }
            ("delay-ms", Some(v)) => {
                if let Ok(n) = v.trim().parse() {
                    d.delay = Some(Duration::from_millis(n))
                }
            }
            ("status", Some(v)) => {
                if let Ok(n) = v.trim().parse::<u16>()
                    && (100..=999).contains(&n)
                {
                    d.status = Some(n)
                }
            }
            ("tool", Some(v)) => {
                let (name, input) = v.split_once(':').unwrap_or((v, "{}"));
                d.tools
                    .push((name.trim().to_string(), input.trim().to_string()));
            }
            ("reset-in", Some(v)) => {
                if let Ok(n) = v.trim().parse() {
                    d.reset_in = Some(n)
                }
            }
            ("stall", None) => d.stall = true,
            ("drop", None) => d.drop = true,
            _ => {}
        }
    }
    d
}

/// The text deltas to stream for `last_user_text` under `d` (without timing or faults).
pub fn reply_deltas(last_user_text: &str, d: &Directives) -> Vec<String> {
    if let Some(n) = d.words {
        return (1..=n)
            .map(|i| {
                if i == 1 {
                    "word1".to_string()
                } else {
                    format!(" word{i}")
                }
            })
            .collect();
    }
    let text = match &d.reply {
        Some(r) => r.clone(),
        None => format!("echo: {last_user_text}"),
    };
    split_in_chunks(&text, 3)
}

/// Splits `text` into at most `n` non-empty pieces on char boundaries, preferring spaces.
fn split_in_chunks(text: &str, n: usize) -> Vec<String> {
    if text.is_empty() {
        return vec![String::new()];
    }
    let chars: Vec<char> = text.chars().collect();
    let per = chars.len().div_ceil(n).max(1);
    chars.chunks(per).map(|c| c.iter().collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_directives() {
        assert!(parse_directives("hello [[ world").is_empty());
        assert!(parse_directives("a [[unknown]] b [[words:x]]").is_empty());
    }

    #[test]
    fn all_directives() {
        let d = parse_directives(
            "x [[reply:Hi: there]] [[words:5]] [[delay-ms:20]] [[stall]] [[drop]] [[status:429]]",
        );
        assert_eq!(d.reply.as_deref(), Some("Hi: there"));
        assert_eq!(d.words, Some(5));
        assert_eq!(d.delay, Some(Duration::from_millis(20)));
        assert!(d.stall && d.drop);
        assert_eq!(d.status, Some(429));
    }

    #[test]
    fn deltas() {
        let d = parse_directives("[[words:3]]");
        assert_eq!(reply_deltas("", &d), vec!["word1", " word2", " word3"]);
        let d = parse_directives("[[reply:abcdef]]");
        assert_eq!(reply_deltas("", &d).concat(), "abcdef");
        assert_eq!(
            reply_deltas("hi", &Directives::default()).concat(),
            "echo: hi"
        );
        assert_eq!(reply_deltas("", &parse_directives("[[reply:]]")), vec![""]);
    }
}
