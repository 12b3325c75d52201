//! Starts a fake Anthropic and a fake Gemini server and prints
//! `anthropic=http://127.0.0.1:P gemini=http://127.0.0.1:Q`, then serves until killed.
//!
//! Usage: `fake-models [--host ADDR] [--anthropic-port P] [--gemini-port Q] [--google DIR --gemini-cli CLI]`
//! (default: 127.0.0.1, free ports). `--host` applies to the Anthropic and plain Gemini fakes.
//!
//! With `--google`, gemini's side is a fake Google instead (gemini on its Google login, as the
//! hub runs it; needs root, see the library docs): its CA, hosts file, a logged-in gemini home
//! and a wrapper around `CLI` go to `DIR`, and the line adds `gemini-cli=<wrapper>
//! gemini-home=<home>`; `gemini=` is then the fake's control address (`/_fake/requests`).

use fake_models::{FakeServer, TokenState, Vendor};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let mut ports = (0u16, 0u16);
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (mut google_dir, mut gemini_cli) = (None::<PathBuf>, None::<PathBuf>);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let port = |v: Option<String>| -> u16 {
            v.and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("{a} needs a port number");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--host" => {
                host = args.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                    eprintln!("--host needs an IP address");
                    std::process::exit(2)
                })
            }
            "--anthropic-port" => ports.0 = port(args.next()),
            "--gemini-port" => ports.1 = port(args.next()),
            "--google" => google_dir = args.next().map(PathBuf::from),
            "--gemini-cli" => gemini_cli = args.next().map(PathBuf::from),
            "-h" | "--help" => {
                println!(
                    "usage: fake-models [--host ADDR] [--anthropic-port P] [--gemini-port Q] [--google DIR --gemini-cli CLI]"
                );
                return;
            }
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    let a = FakeServer::start_on(Vendor::Anthropic, SocketAddr::new(host, ports.0))
        .await
        .expect("bind anthropic port");
    let (g, login) = match (google_dir, gemini_cli) {
        (Some(dir), Some(cli)) => {
            let g = FakeServer::google(&dir).await.unwrap_or_else(|e| {
                eprintln!("fake Google: {e}");
                std::process::exit(1)
            });
            let login = g.gemini_login(&cli, &dir, TokenState::Fresh);
            let line = format!(
                " gemini-cli={} gemini-home={}",
                login.cli.display(),
                login.home.display()
            );
            (g, line)
        }
        (None, None) => {
            let g = FakeServer::start_on(Vendor::Gemini, SocketAddr::new(host, ports.1))
                .await
                .expect("bind gemini port");
            (g, String::new())
        }
        _ => {
            eprintln!("--google and --gemini-cli go together");
            std::process::exit(2)
        }
    };
    println!("anthropic={} gemini={}{login}", a.base_url, g.base_url);
    let _ = std::io::stdout().flush();
    let _ = tokio::signal::ctrl_c().await;
}
