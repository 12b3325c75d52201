//! Structured logs through `tracing`; `RUST_LOG` filters, `log_format = "json"` for machines.

use tracing::Metadata;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    let output = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(filter)
        // Applied whatever `RUST_LOG` says.
        .with(filter_fn(shows))
        .with(output)
        .try_init();
}

/// Whether a span or event may be logged. rmcp logs each streamable-HTTP session id (an info
/// event when it creates one, and an info span around the session's worker): an id is what
/// lets a client use its session, so those never reach the hub's logs.
pub fn shows(meta: &Metadata<'_>) -> bool {
    if !meta
        .target()
        .starts_with("rmcp::transport::streamable_http_server")
    {
        return true;
    }
    let fields = meta.fields();
    fields.field("session_id").is_none() && fields.field("id").is_none()
}
