//! Prompt templates: ready-made user messages a client fills in and sends to a model (for
//! example through the `chat` tool).

use rmcp::ErrorData;
use rmcp::model::{GetPromptResult, JsonObject, Prompt, PromptArgument, PromptMessage, Role};

struct Arg {
    name: &'static str,
    description: &'static str,
    required: bool,
}

struct Template {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    args: &'static [Arg],
    render: fn(&Args) -> String,
}

/// The filled-in arguments of one request.
struct Args<'a>(&'a JsonObject);

impl Args<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .and_then(|v| v.as_str())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    }

    fn text(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }
}

const TEMPLATES: &[Template] = &[
    Template {
        name: "summarize",
        title: "Summarize a text",
        description: "Summarize a text faithfully, keeping the facts, figures and conclusions \
                      and leaving out nothing the reader would need.",
        args: &[
            Arg {
                name: "text",
                description: "The text to summarize",
                required: true,
            },
            Arg {
                name: "length",
                description: "How long the summary may be, e.g. 'one sentence', '5 bullet points' \
                              (default: a short paragraph)",
                required: false,
            },
            Arg {
                name: "audience",
                description: "Who will read the summary, e.g. 'executives', 'engineers new to \
                              the project'",
                required: false,
            },
        ],
        render: |a| {
            let length = a.get("length").unwrap_or("a short paragraph");
            let audience = a
                .get("audience")
                .map(|x| format!(" The summary is for {x}: choose what matters to them."))
                .unwrap_or_default();
            format!(
                "Summarize the text below in {length}. Keep the key facts, numbers, decisions and \
                 open questions; add nothing that is not in the text.{audience}\n\n\
                 <text>\n{}\n</text>",
                a.text("text")
            )
        },
    },
    Template {
        name: "translate",
        title: "Translate a text",
        description: "Translate a text into another language, keeping its meaning, tone and \
                      formatting (Markdown, code and placeholders stay as they are).",
        args: &[
            Arg {
                name: "text",
                description: "The text to translate",
                required: true,
            },
            Arg {
                name: "target_language",
                description: "The language to translate into, e.g. 'German', 'pt-BR'",
                required: true,
            },
            Arg {
                name: "source_language",
                description: "The text's language (detected when not given)",
                required: false,
            },
            Arg {
                name: "tone",
                description: "Register of the translation, e.g. 'formal', 'casual'",
                required: false,
            },
        ],
        render: |a| {
            let from = a
                .get("source_language")
                .map(|l| format!(" from {l}"))
                .unwrap_or_default();
            let tone = a
                .get("tone")
                .map(|t| format!(" Use a {t} register."))
                .unwrap_or_default();
            format!(
                "Translate the text below{from} into {}. Keep the meaning, tone and formatting; \
                 leave code, URLs and placeholders such as {{name}} unchanged.{tone} Answer with \
                 the translation only.\n\n<text>\n{}\n</text>",
                a.text("target_language"),
                a.text("text")
            )
        },
    },
    Template {
        name: "review_code",
        title: "Review code",
        description: "Review a piece of code or a diff: bugs first, then security, then \
                      readability, each finding with the line it concerns and a fix.",
        args: &[
            Arg {
                name: "code",
                description: "The code or unified diff to review",
                required: true,
            },
            Arg {
                name: "language",
                description: "Programming language (guessed when not given)",
                required: false,
            },
            Arg {
                name: "focus",
                description: "What to look at most, e.g. 'security', 'performance', \
                              'error handling'",
                required: false,
            },
        ],
        render: |a| {
            let language = a.get("language").unwrap_or("");
            let focus = a
                .get("focus")
                .map(|f| format!(" Pay particular attention to {f}."))
                .unwrap_or_default();
            format!(
                "Review the code below as a careful senior engineer.{focus} List findings in order \
                 of severity: bugs and incorrect behaviour, then security problems, then \
                 performance, then readability. For each, quote the line, explain the problem \
                 and propose a concrete fix. Say so plainly if you find nothing serious.\n\n\
                 ```{language}\n{}\n```",
                a.text("code")
            )
        },
    },
    Template {
        name: "commit_message",
        title: "Write a commit message",
        description: "Write a git commit message for a diff: a short imperative subject line \
                      and a body that says why.",
        args: &[
            Arg {
                name: "diff",
                description: "The output of `git diff --staged` (or any unified diff)",
                required: true,
            },
            Arg {
                name: "style",
                description: "Conventions to follow, e.g. 'Conventional Commits'",
                required: false,
            },
        ],
        render: |a| {
            let style = a
                .get("style")
                .map(|s| format!(" Follow {s}."))
                .unwrap_or_default();
            format!(
                "Write a git commit message for the diff below: a subject line of at most 72 \
                 characters in the imperative mood, a blank line, then a body wrapped at 72 \
                 columns that explains what changed and why.{style} Answer with the message \
                 only.\n\n```diff\n{}\n```",
                a.text("diff")
            )
        },
    },
];

pub fn list() -> Vec<Prompt> {
    TEMPLATES
        .iter()
        .map(|t| {
            let args = t
                .args
                .iter()
                .map(|a| {
                    PromptArgument::new(a.name)
                        .with_description(a.description)
                        .with_required(a.required)
                })
                .collect();
            Prompt::new(t.name, Some(t.description), Some(args)).with_title(t.title)
        })
        .collect()
}

pub fn get(name: &str, arguments: Option<JsonObject>) -> Result<GetPromptResult, ErrorData> {
    let template = TEMPLATES.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<_> = TEMPLATES.iter().map(|t| t.name).collect();
        ErrorData::invalid_params(
            format!(
                "Unknown prompt '{name}'. Available prompts: {}",
                names.join(", ")
            ),
            None,
        )
    })?;
    let arguments = arguments.unwrap_or_default();
    if let Some(unknown) = arguments
        .keys()
        .find(|k| !template.args.iter().any(|a| a.name == k.as_str()))
    {
        return Err(ErrorData::invalid_params(
            format!(
                "Prompt '{name}' has no argument '{unknown}'; it takes: {}",
                template
                    .args
                    .iter()
                    .map(|a| a.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        ));
    }
    let args = Args(&arguments);
    if let Some(missing) = template
        .args
        .iter()
        .find(|a| a.required && args.get(a.name).is_none())
    {
        return Err(ErrorData::invalid_params(
            format!(
                "Prompt '{name}' needs the argument '{}' ({})",
                missing.name, missing.description
            ),
            None,
        ));
    }
    Ok(GetPromptResult::new(vec![PromptMessage::new_text(
        Role::User,
        (template.render)(&args),
    )])
    .with_description(template.description))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(v: serde_json::Value) -> Option<JsonObject> {
        v.as_object().cloned()
    }

    #[test]
    fn every_prompt_renders_its_arguments() {
        let prompts = list();
        assert!(prompts.len() >= 3);
        let result = get(
            "translate",
            object(json!({"text": "Guten Morgen", "target_language": "French"})),
        )
        .unwrap();
        let text = serde_json::to_string(&result.messages).unwrap();
        assert!(
            text.contains("Guten Morgen") && text.contains("French"),
            "{text}"
        );
        assert!(get("summarize", object(json!({"text": "x"}))).is_ok());
        assert!(get("review_code", object(json!({"code": "fn main() {}"}))).is_ok());
        assert!(get("commit_message", object(json!({"diff": "+a"}))).is_ok());
    }

    #[test]
    fn bad_arguments_say_which() {
        let e = get("translate", object(json!({"text": "x"}))).unwrap_err();
        assert!(e.message.contains("target_language"), "{e:?}");
        let e = get("summarize", object(json!({"text": "x", "colour": "red"}))).unwrap_err();
        assert!(e.message.contains("colour"), "{e:?}");
        let e = get("poem", None).unwrap_err();
        assert!(e.message.contains("summarize"), "{e:?}");
    }
}
