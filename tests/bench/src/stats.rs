//! Latency histograms (microsecond resolution) and their summaries.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Lat {
    hist: Histogram<u64>,
}

impl Default for Lat {
    fn default() -> Self {
        Lat {
            // 1 µs .. 10 min, 3 significant digits.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
        }
    }
}

impl Lat {
    pub fn record(&mut self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 600_000_000);
        self.hist.record(us).expect("value within bounds");
    }

    pub fn add(&mut self, other: &Lat) {
        self.hist.add(&other.hist).expect("same bounds");
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    /// The `q` quantile (0..=1) in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn p50(&self) -> f64 {
        self.ms(0.50)
    }

    pub fn p99(&self) -> f64 {
        self.ms(0.99)
    }

    pub fn max(&self) -> f64 {
        self.hist.max() as f64 / 1000.0
    }

    pub fn mean(&self) -> f64 {
        self.hist.mean() / 1000.0
    }

    pub fn to_json(&self) -> Value {
        json!({
            "n": self.count(),
            "p50_ms": self.p50(),
            "p90_ms": self.ms(0.90),
            "p99_ms": self.p99(),
            "max_ms": self.max(),
            "mean_ms": self.mean(),
        })
    }
}
