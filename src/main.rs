//! The `junction` command.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use junction::config::Config;

/// mimalloc: the broker allocates many small, short-lived buffers per message; measured faster
/// than the system allocator on the native publish/consume benchmark (see README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "junction", version, about = "Junction message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker: every enabled listener on its standard port, data under ./data.
    Serve {
        /// Configuration file (default: built-in defaults, as in conf/junction.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data directory (overrides the file and JUNCTION_DATA_DIR).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Native protocol listen address (overrides the file and JUNCTION_NATIVE_LISTEN).
        #[arg(long)]
        native_listen: Option<std::net::SocketAddr>,
        /// AMQP 0-9-1 listen address (overrides the file and JUNCTION_AMQP_LISTEN).
        #[arg(long)]
        amqp_listen: Option<std::net::SocketAddr>,
        /// HTTP admin API listen address (overrides the file and JUNCTION_HTTP_LISTEN).
        #[arg(long)]
        http_listen: Option<std::net::SocketAddr>,
    },
    /// Manage a running broker over its HTTP API: queues, exchanges, bindings, users,
    /// permissions, vhosts, connections, publish/get, lookup, definitions export/import.
    Ctl(junction::ctl::CtlArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Ctl(args) = cli.command {
        // No log lines on a command-line client's stderr: its errors are its output.
        if let Err(e) = junction::ctl::run(args) {
            eprintln!("junction ctl: {e}");
            std::process::exit(1);
        }
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command {
        Command::Serve {
            config,
            data_dir,
            native_listen,
            amqp_listen,
            http_listen,
        } => {
            let mut cfg = Config::load(config.as_deref(), std::env::vars())
                .context("loading the configuration")?;
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(a) = native_listen {
                cfg.native.listen = a;
            }
            if let Some(a) = amqp_listen {
                cfg.amqp.listen = a;
            }
            if let Some(a) = http_listen {
                cfg.http.listen = a;
            }
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            // The handlers are installed before the broker starts: a SIGTERM that arrives
            // right after `junction: ready` (a busy machine may not run the main task again
            // for a while) must not kill the process with the default action.
            let shutdown = {
                let _rt = rt.enter();
                shutdown_signal()
            };
            rt.block_on(junction::server::run(cfg, shutdown))
        }
        Command::Ctl(_) => Ok(()),
    }
}

/// Installs the SIGINT and SIGTERM handlers now; the future resolves on either signal.
/// Needs a runtime context (`Runtime::enter`).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let (int, term) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    );
    async move {
        let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
            match s {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = wait(int) => {}
            _ = wait(term) => {}
        }
    }
}
