//! Which worker takes a request: pure, so every rule is unit-tested.
//!
//! Eligible: not tried yet for this request, not ejected, accepting (not draining, CLI
//! startable), logged in, and its account not usage-limited. Among them the least loaded
//! (requests in flight from this router over the worker's concurrency), ties broken at random.
//! When none is eligible the error says why, judged over all the provider's workers: all
//! accounts limited → usage limit with the earliest reset (429 + Retry-After), all logged out →
//! not logged in, else no healthy worker.

use crate::provider::ProviderError;
use crate::runtime::HealthState;

/// A worker as the choice sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// Whether its status was read at least once.
    pub known: bool,
    pub accepting: bool,
    pub health: HealthState,
    /// Unix time until which the worker's account is usage-limited (from the worker's status
    /// or a failed request), if in the future.
    pub limited_until: Option<i64>,
    pub ejected: bool,
    pub tried: bool,
    pub in_flight: usize,
    pub max_concurrency: usize,
    /// It holds the process waiting on this request's tool results: chosen whenever eligible,
    /// whatever its load (elsewhere the turn is redone from the transcript).
    pub holds_turn: bool,
}

impl View {
    fn limited(&self, now: i64) -> Option<i64> {
        self.limited_until.filter(|until| *until > now)
    }

    fn eligible(&self, now: i64) -> bool {
        self.known
            && self.accepting
            && !self.ejected
            && !self.tried
            && self.health != HealthState::NotLoggedIn
            && self.health != HealthState::Unavailable
            && self.limited(now).is_none()
    }

    fn load(&self) -> f64 {
        self.in_flight as f64 / self.max_concurrency.max(1) as f64
    }
}

/// The index of the chosen worker, or why there is none. `tie` picks among equally loaded
/// workers (a random number in production, fixed in tests).
pub fn choose(
    provider: &str,
    workers: &[View],
    now: i64,
    tie: usize,
) -> Result<usize, ProviderError> {
    let eligible: Vec<usize> = (0..workers.len())
        .filter(|&i| workers[i].eligible(now))
        .collect();
    if let Some(&holder) = eligible.iter().find(|&&i| workers[i].holds_turn) {
        return Ok(holder);
    }
    if let Some(min) = eligible
        .iter()
        .map(|&i| workers[i].load())
        .min_by(f64::total_cmp)
    {
        let least: Vec<usize> = eligible
            .into_iter()
            .filter(|&i| workers[i].load() <= min)
            .collect();
        return Ok(least[tie % least.len()]);
    }
    Err(why_none(provider, workers, now))
}

fn why_none(provider: &str, workers: &[View], now: i64) -> ProviderError {
    let provider = provider.to_string();
    if workers.is_empty() {
        return ProviderError::Unavailable {
            provider,
            detail: "no worker is discovered".into(),
        };
    }
    let known: Vec<&View> = workers.iter().filter(|w| w.known).collect();
    // Workers that could serve but for their account's limit: if there are any and nothing
    // else is usable, the client should come back at the earliest reset.
    let limits: Vec<i64> = known.iter().filter_map(|w| w.limited(now)).collect();
    let others_usable = known.iter().any(|w| {
        w.limited(now).is_none()
            && w.accepting
            && !w.ejected
            && !matches!(
                w.health,
                HealthState::NotLoggedIn | HealthState::Unavailable
            )
    });
    if !limits.is_empty() && !others_usable {
        return ProviderError::UsageLimited {
            provider,
            resets_at: limits.into_iter().min(),
        };
    }
    if !known.is_empty() && known.iter().all(|w| w.health == HealthState::NotLoggedIn) {
        return ProviderError::NotLoggedIn { provider };
    }
    let (ejected, draining) = (
        workers.iter().filter(|w| w.ejected).count(),
        known.iter().filter(|w| !w.accepting).count(),
    );
    ProviderError::Unavailable {
        provider,
        detail: format!(
            "{} workers: {ejected} failing, {draining} not accepting, {} not reporting, {} already tried",
            workers.len(),
            workers.iter().filter(|w| !w.known).count(),
            workers.iter().filter(|w| w.tried).count(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(in_flight: usize) -> View {
        View {
            known: true,
            accepting: true,
            health: HealthState::Ready,
            limited_until: None,
            ejected: false,
            tried: false,
            in_flight,
            max_concurrency: 4,
            holds_turn: false,
        }
    }

    #[test]
    fn the_worker_holding_the_turn_wins_while_it_can_serve() {
        let mut holder = ready(3);
        holder.holds_turn = true;
        let w = [ready(0), holder.clone()];
        assert_eq!(choose("c", &w, 0, 0), Ok(1));
        // Draining (or already tried): the turn is redone elsewhere.
        holder.accepting = false;
        assert_eq!(choose("c", &[ready(0), holder], 0, 0), Ok(0));
    }

    #[test]
    fn least_loaded_wins() {
        let w = [ready(3), ready(1), ready(2)];
        assert_eq!(choose("c", &w, 0, 0), Ok(1));
    }

    #[test]
    fn load_is_relative_to_capacity() {
        let mut big = ready(2);
        big.max_concurrency = 16;
        assert_eq!(choose("c", &[ready(1), big], 0, 0), Ok(1));
    }

    #[test]
    fn ties_are_spread() {
        let w = [ready(0), ready(0)];
        assert_eq!(choose("c", &w, 0, 0), Ok(0));
        assert_eq!(choose("c", &w, 0, 1), Ok(1));
    }

    #[test]
    fn limited_tried_ejected_draining_and_unknown_are_skipped() {
        let now = 1000;
        let mut limited = ready(0);
        limited.limited_until = Some(now + 10);
        let mut tried = ready(0);
        tried.tried = true;
        let mut ejected = ready(0);
        ejected.ejected = true;
        let mut draining = ready(0);
        draining.accepting = false;
        let mut unknown = ready(0);
        unknown.known = false;
        let mut old_limit = ready(3);
        old_limit.limited_until = Some(now - 1);
        let w = [limited, tried, ejected, draining, unknown, old_limit];
        assert_eq!(choose("c", &w, now, 0), Ok(5));
    }

    #[test]
    fn all_accounts_limited_is_a_usage_limit_with_the_earliest_reset() {
        let now = 1000;
        let mut a = ready(0);
        a.limited_until = Some(now + 300);
        let mut b = ready(0);
        b.limited_until = Some(now + 60);
        let mut down = ready(0);
        down.ejected = true;
        assert_eq!(
            choose("claude", &[a, b, down], now, 0),
            Err(ProviderError::UsageLimited {
                provider: "claude".into(),
                resets_at: Some(now + 60)
            })
        );
    }

    #[test]
    fn a_limited_account_is_no_excuse_while_another_worker_just_was_tried() {
        let now = 1000;
        let mut a = ready(0);
        a.limited_until = Some(now + 300);
        let mut b = ready(0);
        b.tried = true;
        // b is usable in principle (it failed for this request only): not a usage limit.
        assert!(matches!(
            choose("claude", &[a, b], now, 0),
            Err(ProviderError::Unavailable { .. })
        ));
    }

    #[test]
    fn nothing_discovered_or_all_logged_out() {
        assert!(matches!(
            choose("c", &[], 0, 0),
            Err(ProviderError::Unavailable { .. })
        ));
        let mut out = ready(0);
        out.health = HealthState::NotLoggedIn;
        assert!(matches!(
            choose("c", &[out.clone(), out], 0, 0),
            Err(ProviderError::NotLoggedIn { .. })
        ));
    }
}
