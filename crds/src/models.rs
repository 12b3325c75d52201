//! Which model names belong to which provider kind.
//!
//! CLIs accept aliases and dated model names that change over time, so the check is by family: a
//! name is known for a kind when it is one of the kind's aliases or starts with one of its prefixes.
//! A `gemini-2.5-pro` on a claude provider is a spec mistake the operator reports as `UnknownModel`.

use crate::ProviderKind;

/// Aliases each CLI accepts as they are.
fn aliases(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Claude => &[
            "default",
            "sonnet",
            "opus",
            "haiku",
            "opusplan",
            "sonnet[1m]",
        ],
        ProviderKind::Gemini => &["auto", "pro", "flash", "flash-lite"],
    }
}

/// Prefixes of full model names of each family.
fn prefixes(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Claude => &["claude-"],
        ProviderKind::Gemini => &["gemini-", "gemma-"],
    }
}

/// Whether `model` is a model of `kind`'s family.
pub fn is_known_model(kind: ProviderKind, model: &str) -> bool {
    aliases(kind).contains(&model) || prefixes(kind).iter().any(|p| model.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        assert!(is_known_model(ProviderKind::Claude, "sonnet"));
        assert!(is_known_model(ProviderKind::Claude, "claude-sonnet-4-5"));
        assert!(!is_known_model(ProviderKind::Claude, "gemini-2.5-pro"));
        assert!(is_known_model(ProviderKind::Gemini, "gemini-2.5-pro"));
        assert!(!is_known_model(ProviderKind::Gemini, "opus"));
    }
}
