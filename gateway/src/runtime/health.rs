//! What the hub knows about a provider's ability to answer, learned from real requests.
//!
//! A usage limit or a failed login is sticky: until the limit resets (or a re-check interval
//! passes) requests fail fast with an honest error instead of starting a CLI that would fail.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::provider::ProviderError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Answering, or not tried yet.
    Ready,
    /// Recent upstream failures, timeouts or crashes; still tried.
    Degraded,
    UsageLimited,
    NotLoggedIn,
    /// The CLI cannot be started at all (not installed, not on PATH).
    Unavailable,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub state: HealthState,
    /// Unix time the usage limit resets.
    pub limited_until: Option<i64>,
    /// A client-safe description of the last failure.
    pub last_error: Option<String>,
    changed: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            state: HealthState::Ready,
            limited_until: None,
            last_error: None,
            changed: Instant::now(),
        }
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Health {
    /// Fails fast while a known limit or login failure stands.
    pub fn gate(&self, provider: &str, login_recheck: Duration) -> Result<(), ProviderError> {
        match self.state {
            HealthState::UsageLimited => match self.limited_until {
                Some(until) if until > unix_now() => Err(ProviderError::UsageLimited {
                    provider: provider.to_string(),
                    resets_at: Some(until),
                }),
                _ => Ok(()),
            },
            HealthState::NotLoggedIn if self.changed.elapsed() < login_recheck => {
                Err(ProviderError::NotLoggedIn {
                    provider: provider.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    pub fn record_success(&mut self) {
        if self.state != HealthState::Ready {
            *self = Health::default();
        }
    }

    /// Updates the state from a failed request. `limit_backoff` stands in for a reset time the
    /// CLI did not give.
    pub fn record_failure(&mut self, error: &ProviderError, limit_backoff: Duration) {
        let (state, until) = match error {
            ProviderError::UsageLimited { resets_at, .. } => (
                HealthState::UsageLimited,
                Some(resets_at.unwrap_or(unix_now() + limit_backoff.as_secs() as i64)),
            ),
            ProviderError::NotLoggedIn { .. } => (HealthState::NotLoggedIn, None),
            ProviderError::Spawn { .. }
            | ProviderError::LockDown { .. }
            | ProviderError::Unavailable { .. } => (HealthState::Unavailable, None),
            ProviderError::Upstream { .. }
            | ProviderError::Timeout { .. }
            | ProviderError::Crashed { .. } => (HealthState::Degraded, None),
            // Load, or a request the CLI cannot take, says nothing about the provider's health.
            ProviderError::Busy { .. } | ProviderError::Unsupported { .. } => return,
        };
        self.state = state;
        self.limited_until = until;
        self.last_error = Some(error.to_string());
        self.changed = Instant::now();
    }

    /// True unless the CLI cannot be started, or a failed login stands (until the re-check
    /// interval lets a request try again). A usage limit still answers: fast, with its reset.
    pub fn can_answer(&self, login_recheck: Duration) -> bool {
        match self.state {
            HealthState::Unavailable => false,
            HealthState::NotLoggedIn => self.changed.elapsed() >= login_recheck,
            _ => true,
        }
    }

    /// True when the provider is worth sending requests to.
    pub fn is_serving(&self) -> bool {
        match self.state {
            HealthState::NotLoggedIn | HealthState::Unavailable => false,
            HealthState::UsageLimited => self.limited_until.is_none_or(|u| u <= unix_now()),
            HealthState::Ready | HealthState::Degraded => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_limit_gates_until_reset() {
        let mut h = Health::default();
        h.record_failure(
            &ProviderError::UsageLimited {
                provider: "claude".into(),
                resets_at: Some(unix_now() + 100),
            },
            Duration::from_secs(5),
        );
        let err = h.gate("claude", Duration::from_secs(30)).unwrap_err();
        assert!(
            matches!(err, ProviderError::UsageLimited { resets_at: Some(t), .. } if t > unix_now())
        );
        assert!(!h.is_serving());
        h.limited_until = Some(unix_now() - 1);
        assert!(h.gate("claude", Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn login_failure_is_rechecked_after_interval() {
        let mut h = Health::default();
        h.record_failure(
            &ProviderError::NotLoggedIn {
                provider: "gemini".into(),
            },
            Duration::from_secs(5),
        );
        assert!(h.gate("gemini", Duration::from_secs(30)).is_err());
        assert!(h.gate("gemini", Duration::ZERO).is_ok());
        h.record_success();
        assert_eq!(h.state, HealthState::Ready);
    }
}
