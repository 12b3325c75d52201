//! Which version of a CLI the hub runs, and where it stands against the range this hub is
//! tested with. The CLIs update themselves, so the hub reads `--version` at start, reports it
//! (log, `/v1/providers`, the `cli_info` metric) and says plainly when it is outside the range.
//! Behaviour that differs between versions is still checked at runtime (the reset between
//! requests, the `apiKeySource` guard), never assumed from the number.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::provider::{ProcessMode, ProviderKind, quiet_env};

/// The oldest version each CLI is tested with in CI, and the newest (the pinned one).
pub fn tested_range(kind: ProviderKind) -> (&'static str, &'static str) {
    match kind {
        ProviderKind::Claude => ("2.1.197", "2.1.330"),
        ProviderKind::Gemini => ("0.45.2", "0.61.0"),
    }
}

/// How long `--version` may take (gemini's takes ≈1.4 s).
const VERSION_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Support {
    /// Within the tested range.
    Tested,
    /// Older than the oldest tested version: lock-down flags may mean something else.
    TooOld,
    /// Newer than the newest tested version: it runs, checked at runtime.
    Newer,
    /// The version string could not be read as numbers.
    Unknown,
}

impl Support {
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Tested => "tested",
            Support::TooOld => "too_old",
            Support::Newer => "newer",
            Support::Unknown => "unknown",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CliVersion {
    pub version: String,
    pub support: Support,
    pub oldest_tested: String,
    pub newest_tested: String,
}

impl CliVersion {
    pub fn of(kind: ProviderKind, output: &str) -> Option<CliVersion> {
        let version = parse_version(output)?;
        let (oldest, newest) = tested_range(kind);
        let support = match (numbers(&version), numbers(oldest), numbers(newest)) {
            (Some(v), Some(lo), _) if v < lo => Support::TooOld,
            (Some(v), _, Some(hi)) if v > hi => Support::Newer,
            (Some(_), _, _) => Support::Tested,
            _ => Support::Unknown,
        };
        Some(CliVersion {
            version,
            support,
            oldest_tested: oldest.into(),
            newest_tested: newest.into(),
        })
    }

    pub fn log(&self, provider: &str, mode: ProcessMode) {
        let (v, lo, hi) = (&self.version, &self.oldest_tested, &self.newest_tested);
        match self.support {
            Support::Tested => tracing::info!(%provider, version = %v, ?mode, "CLI version"),
            Support::Newer => tracing::warn!(%provider, version = %v, newest_tested = %hi,
                "this CLI is newer than the versions this hub is tested with; its reset and lock-down are checked at runtime"),
            Support::TooOld => tracing::warn!(%provider, version = %v, oldest_tested = %lo,
                "this CLI is OLDER than the oldest version this hub is tested with: update it (its lock-down flags may not hold)"),
            Support::Unknown => {
                tracing::warn!(%provider, version = %v, "cannot compare this CLI version with the tested range")
            }
        }
    }
}

/// The first word that looks like a version: `2.1.197 (Claude Code)` → `2.1.197`.
pub fn parse_version(output: &str) -> Option<String> {
    output
        .split_whitespace()
        .map(|w| w.trim_start_matches('v'))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(String::from)
}

/// `2.1.197` → `[2, 1, 197]` (a pre-release suffix is ignored).
fn numbers(version: &str) -> Option<Vec<u64>> {
    version
        .split(['-', '+'])
        .next()?
        .split('.')
        .map(|n| n.parse().ok())
        .collect()
}

/// Runs `<command> --version` with the quiet environment and no stdin.
pub async fn read(command: &Path, kind: ProviderKind) -> Option<CliVersion> {
    let mut cmd = tokio::process::Command::new(command);
    cmd.arg("--version")
        .env_clear()
        .envs(quiet_env())
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    for name in ["PATH", "HOME"] {
        if let Some(v) = std::env::var_os(name) {
            cmd.env(name, v);
        }
    }
    let output = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
        .await
        .ok()?
        .ok()?;
    CliVersion::of(kind, &String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_placed_against_the_tested_range() {
        let of = |kind, out| CliVersion::of(kind, out).unwrap().support;
        assert_eq!(
            of(ProviderKind::Claude, "2.1.197 (Claude Code)\n"),
            Support::Tested
        );
        assert_eq!(
            of(ProviderKind::Claude, "2.1.330 (Claude Code)"),
            Support::Tested
        );
        assert_eq!(
            of(ProviderKind::Claude, "2.1.96 (Claude Code)"),
            Support::TooOld
        );
        assert_eq!(of(ProviderKind::Claude, "2.2.0"), Support::Newer);
        assert_eq!(of(ProviderKind::Gemini, "0.61.0\n"), Support::Tested);
        assert_eq!(of(ProviderKind::Gemini, "0.9.0"), Support::TooOld);
        assert_eq!(
            of(ProviderKind::Gemini, "0.61.1-nightly.2026"),
            Support::Newer
        );
        assert!(CliVersion::of(ProviderKind::Claude, "no version here").is_none());
    }
}
