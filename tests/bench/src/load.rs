//! Closed-loop load: `clients` tasks each send one request after another for a fixed time.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::client::Timing;
use crate::stats::Lat;

#[derive(Default)]
pub struct LoadResult {
    pub clients: usize,
    pub ttft: Lat,
    pub total: Lat,
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Every request sent, warm-up included.
    pub sent: u64,
    /// From the start of the measured window to the last measured completion.
    pub window: Duration,
}

impl LoadResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "clients": self.clients,
            "ok": self.ok,
            "sent": self.sent,
            "errors": self.errors,
            "window_s": self.window.as_secs_f64(),
            "rps": self.rps(),
            "ttft": self.ttft.to_json(),
            "total": self.total.to_json(),
        })
    }
}

struct ClientResult {
    ttft: Lat,
    total: Lat,
    ok: u64,
    errors: BTreeMap<String, u64>,
    sent: u64,
    last_done: Option<Instant>,
}

/// The runs of a scenario: closed loop at every level, then the paced levels, where each client
/// pauses `think` before a request so that the cores are not saturated and the measured part's
/// own latency shows.
pub fn closed_then_paced(
    levels: &[usize],
    paced: &[usize],
    think: Duration,
) -> Vec<(usize, Duration)> {
    let closed = levels.iter().map(|&c| (c, Duration::ZERO));
    closed.chain(paced.iter().map(|&c| (c, think))).collect()
}

/// Runs `clients` loops of `request(client, seq)`. Requests started during the first `warmup`
/// are not recorded; no request starts after `warmup + measure`. Every loop is bounded by
/// that deadline (a request in flight at the deadline is awaited and recorded).
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    measure: Duration,
    request: F,
) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Timing, String>> + Send + 'static,
{
    let request = Arc::new(request);
    let begin = Instant::now();
    let measure_from = begin + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut r = ClientResult {
                ttft: Lat::default(),
                total: Lat::default(),
                ok: 0,
                errors: BTreeMap::new(),
                sent: 0,
                last_done: None,
            };
            let mut seq = 0u64;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let outcome = request(client, seq).await;
                seq += 1;
                r.sent += 1;
                if started < measure_from {
                    continue;
                }
                r.last_done = Some(Instant::now());
                match outcome {
                    Ok(t) => {
                        r.ok += 1;
                        r.ttft.record(t.ttft);
                        r.total.record(t.total);
                    }
                    Err(e) => {
                        *r.errors.entry(e).or_default() += 1;
                        // Do not spin on a fast failure.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            r
        }));
    }
    let mut result = LoadResult {
        clients,
        ..LoadResult::default()
    };
    let mut last = measure_from;
    for task in tasks {
        let r = task.await.expect("client task");
        result.ttft.add(&r.ttft);
        result.total.add(&r.total);
        result.ok += r.ok;
        result.sent += r.sent;
        for (e, n) in r.errors {
            *result.errors.entry(e).or_default() += n;
        }
        if let Some(t) = r.last_done {
            last = last.max(t);
        }
    }
    result.window = last.saturating_duration_since(measure_from);
    result
}
