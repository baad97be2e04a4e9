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
    /// Run a name server: the route registry brokers heartbeat to and clients ask where a
    /// topic lives (HTTP/JSON; see docs/DEPLOYMENT.md).
    Namesrv {
        /// Address to listen on (port 0: any free port, printed).
        #[arg(long, default_value = "127.0.0.1:9876")]
        listen: std::net::SocketAddr,
        /// A broker silent for this long is dropped from the routes (ms).
        #[arg(long, default_value_t = 10_000)]
        broker_timeout_ms: u64,
    },
    /// Run a controller: one of (usually three) Raft nodes that elect each broker group's
    /// master when it fails (see docs/DEPLOYMENT.md).
    Controller {
        /// This controller's id (a key of --peers).
        #[arg(long)]
        id: u64,
        /// Every controller as id=host:port, comma-separated, this one included.
        #[arg(long, value_delimiter = ',')]
        peers: Vec<String>,
        /// Where its Raft log, vote and snapshot live.
        #[arg(long)]
        data_dir: PathBuf,
        /// A master silent for this long is replaced (ms).
        #[arg(long, default_value_t = 3_000)]
        broker_timeout_ms: u64,
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
            rt.block_on(async {
                // Registered before the listeners open: a signal that arrives right after
                // `junction: ready` must stop the broker cleanly, not kill it.
                let shutdown = shutdown_signal()?;
                junction::server::run(cfg, shutdown).await
            })
        }
        Command::Namesrv {
            listen,
            broker_timeout_ms,
        } => until_signal(|stop| {
            junction::cluster::namesrv::run(
                listen,
                std::time::Duration::from_millis(broker_timeout_ms),
                stop,
            )
        }),
        Command::Controller {
            id,
            peers,
            data_dir,
            broker_timeout_ms,
        } => {
            let mut map = std::collections::BTreeMap::new();
            for p in &peers {
                let (i, a) = p
                    .split_once('=')
                    .with_context(|| format!("peer {p:?} is not id=host:port"))?;
                map.insert(i.parse::<u64>().context("peer id")?, a.to_string());
            }
            until_signal(|stop| async move {
                junction::cluster::controller::run(
                    id,
                    map,
                    &data_dir,
                    std::time::Duration::from_millis(broker_timeout_ms),
                    stop,
                )
                .await
            })
        }
        Command::Ctl(_) => Ok(()),
    }
}

/// Runs `serve` on a new multi-threaded runtime with a token that SIGINT or SIGTERM cancels
/// (the handlers are installed before `serve` starts).
fn until_signal<F, Fut>(serve: F) -> anyhow::Result<()>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = tokio_util::sync::CancellationToken::new();
        let signal = shutdown_signal()?;
        let cancel = stop.clone();
        tokio::spawn(async move {
            signal.await;
            cancel.cancel();
        });
        serve(stop).await
    })
}

/// A future that resolves on SIGINT or SIGTERM; the handlers are installed when it is made.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
