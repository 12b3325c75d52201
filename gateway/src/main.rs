use clap::Parser;

use llm_mcp_hub::cli::{Cli, Command};
use llm_mcp_hub::config::Config;
use llm_mcp_hub::{server, telemetry};

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
        Command::Config(args) => {
            let config = Config::load(args.config.as_deref(), &args)?;
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}
