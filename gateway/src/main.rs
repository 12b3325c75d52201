use clap::Parser;

use llm_mcp_hub::cli::{Cli, Command};
use llm_mcp_hub::config::Config;
use llm_mcp_hub::{server, telemetry};

// ≈ 10 % less CPU per request than glibc's malloc under load (BENCHMARKS.md, "The local hub").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let Some(command) = cli.command else {
        // `arg_required_else_help` leaves only `--version` here.
        runtime()?.block_on(print_versions());
        return Ok(());
    };
    match command {
        Command::Serve(args) => {
            let config = Config::load(args.config.as_deref(), &args)?;
            telemetry::init(config.log_format);
            runtime()?.block_on(server::serve(config))
        }
        Command::Router(args) => {
            let config = Config::load(args.config.as_deref(), &args)?;
            telemetry::init(config.log_format);
            runtime()?.block_on(server::router(config))
        }
        Command::Worker(args) => {
            let config = Config::load(args.serve.config.as_deref(), &args.serve)?;
            telemetry::init(config.log_format);
            runtime()?.block_on(server::worker(config, args))
        }
        Command::McpStdio(args) => {
            let config = Config::load(args.serve.config.as_deref(), &args.serve)?;
            // stdout carries MCP frames only; telemetry writes to stderr.
            telemetry::init(config.log_format);
            runtime()?.block_on(llm_mcp_hub::mcp::stdio::run(
                config,
                args.hub_url,
                args.api_key,
            ))
        }
        Command::Keygen(args) => {
            let (key, hash) = llm_mcp_hub::auth::generate_key();
            let entry = llm_mcp_hub::auth::KeyEntry {
                id: args.id,
                sha256: hash,
                providers: (!args.providers.is_empty()).then_some(args.providers),
            };
            // stdout: the key alone. stderr: valid TOML (comments and the entry), so
            // `keygen 2>>keys.toml` builds a keys file.
            eprintln!("# New hub API key (shown once on stdout; the hub keeps only its hash).");
            println!("{key}");
            eprintln!("# Add this entry to the api_keys_file (or the Secret it is mounted from):");
            eprint!("[[keys]]\n{}", toml::to_string(&entry)?);
            Ok(())
        }
        Command::Config(args) if args.reference => {
            print!("{}", llm_mcp_hub::config::reference::markdown());
            Ok(())
        }
        Command::Config(args) => {
            let config = Config::load(args.serve.config.as_deref(), &args.serve)?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

/// The hub's version, and each CLI's as `<cli> --version` on PATH says it, placed against the
/// range the hub is tested with.
async fn print_versions() {
    use llm_mcp_hub::provider::ProviderKind;
    use llm_mcp_hub::runtime::version;
    println!("llm-mcp-hub {}", env!("CARGO_PKG_VERSION"));
    for kind in [ProviderKind::Claude, ProviderKind::Gemini] {
        let (oldest, newest) = version::tested_range(kind);
        let name = kind.as_str();
        match version::read(std::path::Path::new(name), kind).await {
            Some(v) => {
                let place = match v.support {
                    version::Support::Tested => "in",
                    version::Support::Newer => "newer than",
                    version::Support::TooOld => "older than",
                    version::Support::Unknown => "not comparable with",
                };
                println!(
                    "{name} {} ({place} the tested range {oldest} to {newest})",
                    v.version
                )
            }
            None => println!("{name}: not found on PATH (tested {oldest} to {newest})"),
        }
    }
}
