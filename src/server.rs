//! Listeners, the connection limit and graceful shutdown.
//!
//! [`run`] opens the broker, binds every enabled listener, prints one `junction: <protocol>
//! listening on <addr>` line per listener to stdout (tests read the bound port from it) and
//! writes the same to `<data_dir>/listeners.json`. On shutdown it stops accepting, asks every
//! connection to close with its protocol's close, waits up to `shutdown_timeout_ms`, then
//! stops the queues (saving consumer offsets) and closes the store (flush and checkpoint).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::core::{Broker, CoreConfig};
use crate::gateway;

/// Runs the broker until `shutdown` completes.
///
/// # Errors
/// Opening the store or metadata, or binding a listener.
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut core = CoreConfig::new(&cfg.data_dir);
    core.store = cfg.store_config(&cfg.data_dir.join("store"));
    core.default_user = (
        cfg.default_user.name.clone(),
        cfg.default_user.password.clone(),
    );
    core.memory_high_watermark = cfg.limits.memory_high_watermark;
    let broker = Broker::open(core)
        .await
        .with_context(|| format!("opening the broker in {}", cfg.data_dir.display()))?;

    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(cfg.limits.max_connections));
    let mut bound: Vec<(&str, SocketAddr)> = Vec::new();

    if cfg.native.enabled {
        let listener = TcpListener::bind(cfg.native.listen)
            .await
            .with_context(|| format!("binding the native listener on {}", cfg.native.listen))?;
        let addr = listener.local_addr()?;
        bound.push(("native", addr));
        let settings = gateway::native::Settings {
            max_frame: cfg.limits.max_frame,
            ..Default::default()
        };
        let (broker, stop2, tracker2, slots) = (
            broker.clone(),
            stop.clone(),
            tracker.clone(),
            Arc::clone(&slots),
        );
        tracker.spawn(accept_loop(
            listener,
            "native",
            slots,
            stop2.clone(),
            tracker2,
            move |stream, peer| {
                gateway::native::serve(
                    stream,
                    peer,
                    broker.clone(),
                    stop2.clone(),
                    settings.clone(),
                )
            },
        ));
    }

    if cfg.amqp.enabled {
        let listener = TcpListener::bind(cfg.amqp.listen)
            .await
            .with_context(|| format!("binding the amqp listener on {}", cfg.amqp.listen))?;
        let addr = listener.local_addr()?;
        bound.push(("amqp", addr));
        let settings = gateway::amqp::Settings {
            frame_max: cfg.amqp.frame_max,
            channel_max: cfg.amqp.channel_max,
            heartbeat_s: cfg.amqp.heartbeat_s,
            max_message_size: cfg.store.max_record_size,
            ..Default::default()
        };
        let (broker, stop2, tracker2, slots) = (
            broker.clone(),
            stop.clone(),
            tracker.clone(),
            Arc::clone(&slots),
        );
        tracker.spawn(accept_loop(
            listener,
            "amqp",
            slots,
            stop2.clone(),
            tracker2,
            move |stream, peer| {
                gateway::amqp::serve(
                    stream,
                    peer,
                    broker.clone(),
                    stop2.clone(),
                    settings.clone(),
                )
            },
        ));
    }

    let http = if cfg.http.enabled {
        let listener = TcpListener::bind(cfg.http.listen)
            .await
            .with_context(|| format!("binding the http listener on {}", cfg.http.listen))?;
        bound.push(("http", listener.local_addr()?));
        Some(listener)
    } else {
        None
    };
    if let Some(listener) = http {
        let all = bound.iter().map(|(p, a)| (p.to_string(), *a)).collect();
        tracker.spawn(crate::admin::serve(
            listener,
            broker.clone(),
            all,
            stop.clone(),
        ));
    }

    let listeners: Vec<serde_json::Value> = bound
        .iter()
        .map(|(p, a)| serde_json::json!({"protocol": p, "address": a.to_string()}))
        .collect();
    crate::core::meta::write_atomic(
        &cfg.data_dir.join("listeners.json"),
        serde_json::to_string_pretty(&listeners)?.as_bytes(),
    )?;
    for (p, a) in &bound {
        tracing::info!(protocol = p, address = %a, "listening");
        println!("junction: {p} listening on {a}");
    }

    shutdown.await;
    tracing::info!("shutting down: closing connections");
    stop.cancel();
    tracker.close();
    if tokio::time::timeout(
        Duration::from_millis(cfg.shutdown_timeout_ms),
        tracker.wait(),
    )
    .await
    .is_err()
    {
        tracing::warn!("some connections did not close in time");
    }
    broker.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
    tracker: TaskTracker,
    serve: F,
) where
    F: Fn(tokio::net::TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(protocol, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(protocol, peer = %peer, "connection limit reached: refusing");
            drop(stream);
            continue;
        };
        let fut = serve(stream, peer);
        tracker.spawn(async move {
            fut.await;
            drop(permit);
        });
    }
}
