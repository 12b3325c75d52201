//! Writes the CustomResourceDefinitions of the hub as YAML.
//!
//! `cargo run -p llm-mcp-hub-crds --bin crdgen` writes them into `crds/` (and the Helm chart's
//! `crds/`); `crdgen --stdout` prints them instead.

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let crds = llm_mcp_hub_crds::crds();
    if std::env::args().any(|a| a == "--stdout") {
        for crd in &crds {
            print!("---\n{}", llm_mcp_hub_crds::crd_yaml(crd));
        }
        return Ok(());
    }
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chart_dir = crate_dir.join("../charts/llm-mcp-hub/crds");
    for dir in [crate_dir.clone(), chart_dir] {
        std::fs::create_dir_all(&dir)?;
        for crd in &crds {
            let path = dir.join(llm_mcp_hub_crds::crd_file_name(crd));
            std::fs::write(&path, llm_mcp_hub_crds::crd_yaml(crd))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}
