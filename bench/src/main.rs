//! `junction-bench`: the load generator's command line (see the library's docs).

use clap::Parser;

/// The generator shares the machine with the broker: keep its own allocation cost low.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    junction_bench::run(junction_bench::Cli::parse())
        .await
        .map(|_| ())
}
