use clap::Parser;

use llm_mcp_hub::cli::{Cli, Command};
use llm_mcp_hub::config::Config;
use llm_mcp_hub::{server, telemetry};

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = Config::load(args.config.as_deref(), &args)?;
            telemetry::init(config.log_format);
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(server::serve(config))
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
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?
                .block_on(llm_mcp_hub::mcp::stdio::run(
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
            eprintln!("New hub API key (shown once; the hub keeps only its hash):");
            println!("{key}");
            eprintln!();
            eprintln!("Add this entry to the api_keys_file (or the Secret it is mounted from):");
            eprintln!();
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
