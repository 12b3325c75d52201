//! Starts a fake Anthropic and a fake Gemini server and prints
//! `anthropic=http://127.0.0.1:P gemini=http://127.0.0.1:Q`, then serves until killed.
//!
//! Usage: `fake-models [--anthropic-port P] [--gemini-port Q]` (default: free ports).

use fake_models::{FakeServer, Vendor};
use std::io::Write;

#[tokio::main]
async fn main() {
    let mut ports = (0u16, 0u16);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let port = |v: Option<String>| -> u16 {
            v.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{a} needs a port number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--anthropic-port" => ports.0 = port(args.next()),
            "--gemini-port" => ports.1 = port(args.next()),
            "-h" | "--help" => {
                println!("usage: fake-models [--anthropic-port P] [--gemini-port Q]");
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    let a = FakeServer::start(Vendor::Anthropic, ports.0)
        .await
        .expect("bind anthropic port");
    let g = FakeServer::start(Vendor::Gemini, ports.1)
        .await
        .expect("bind gemini port");
    println!("anthropic={} gemini={}", a.base_url, g.base_url);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
}
