//! metav1 Conditions with stable transition times.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// Sets a condition, keeping `lastTransitionTime` when the status does not change.
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) {
    let status_s = if status { "True" } else { "False" };
    let message = message.into();
    let transition = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status_s)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let new = Condition {
        type_: type_.to_owned(),
        status: status_s.to_owned(),
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    };
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
}

/// The (status, reason) of a condition, if set.
pub fn get<'a>(conditions: &'a [Condition], type_: &str) -> Option<(&'a str, &'a str)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_transition_time_while_status_is_unchanged() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t1: Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let mut c = Vec::new();
        set(&mut c, "Ready", false, "Starting", "m", Some(1), t0);
        set(&mut c, "Ready", false, "Still", "m2", Some(2), t1);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].last_transition_time, Time(t0));
        assert_eq!(c[0].reason, "Still");
        set(&mut c, "Ready", true, "Ok", "m3", Some(2), t1);
        assert_eq!(c[0].last_transition_time, Time(t1));
        assert_eq!(get(&c, "Ready"), Some(("True", "Ok")));
    }
}
