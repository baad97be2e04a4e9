//! The `junction` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "junction", version, about = "Junction message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Open (and recover) the message store. The protocol listeners are not built yet: this
    /// opens the store under the data directory, reports what it holds and exits.
    Serve {
        /// Data directory.
        #[arg(long, default_value = "data", env = "JUNCTION_DATA_DIR")]
        data_dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve { data_dir } => {
            let store = junction_store::Store::open(junction_store::StoreConfig::new(&data_dir))
                .with_context(|| format!("opening the store in {}", data_dir.display()))?;
            let s = store.stats();
            println!(
                "store at {}: {} queue partitions, commitlog [{}, {}), {} segment(s)",
                data_dir.display(),
                store.queues().len(),
                s.log_start,
                s.log_end,
                s.segments
            );
            println!("the protocol listeners are not built yet; nothing to serve");
            store.close().context("closing the store")?;
            Ok(())
        }
    }
}
