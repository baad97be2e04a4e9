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
use futures_util::FutureExt;
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

    if cfg.mqtt.enabled {
        let listener = TcpListener::bind(cfg.mqtt.listen)
            .await
            .with_context(|| format!("binding the mqtt listener on {}", cfg.mqtt.listen))?;
        let addr = listener.local_addr()?;
        bound.push(("mqtt", addr));
        let m = &cfg.mqtt;
        let settings = gateway::mqtt::Settings {
            vhost: m.vhost.clone(),
            exchange: m.exchange.clone(),
            anonymous: m.allow_anonymous.then(|| {
                (
                    cfg.default_user.name.clone(),
                    cfg.default_user.password.clone(),
                )
            }),
            max_packet_size: m.max_packet_size,
            receive_maximum: m.receive_maximum.max(1),
            topic_alias_maximum: m.topic_alias_maximum,
            max_keep_alive: m.max_keep_alive,
            max_session_expiry: m.max_session_expiry,
            ..Default::default()
        };
        {
            let (broker, stop2, tracker2, slots) = (
                broker.clone(),
                stop.clone(),
                tracker.clone(),
                Arc::clone(&slots),
            );
            let settings = settings.clone();
            tracker.spawn(accept_loop(
                listener,
                "mqtt",
                slots,
                stop2.clone(),
                tracker2,
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    gateway::mqtt::serve(
                        stream,
                        peer,
                        broker.clone(),
                        stop2.clone(),
                        settings.clone(),
                    )
                },
            ));
        }
        if m.ws_enabled {
            let listener = TcpListener::bind(m.ws_listen)
                .await
                .with_context(|| format!("binding the mqtt-ws listener on {}", m.ws_listen))?;
            bound.push(("mqtt-ws", listener.local_addr()?));
            let upgrade = gateway::ws::Upgrade {
                paths: vec!["/mqtt".into(), "/ws".into(), "/".into()],
                subprotocols: vec!["mqtt".into(), "mqttv3.1".into()],
                max_message: usize::try_from(m.max_packet_size)
                    .unwrap_or(usize::MAX)
                    .saturating_add(8),
                timeout: settings.connect_timeout,
                outgoing: gateway::ws::Outgoing::Binary,
            };
            // One registry for both listeners: a client id is one session whichever way the
            // client comes in.
            let settings = gateway::mqtt::Settings {
                protocol: "mqtt-ws",
                ..settings
            };
            let (broker, stop2, tracker2, slots) = (
                broker.clone(),
                stop.clone(),
                tracker.clone(),
                Arc::clone(&slots),
            );
            tracker.spawn(accept_loop(
                listener,
                "mqtt-ws",
                slots,
                stop2.clone(),
                tracker2,
                move |stream, peer| {
                    let (broker, stop, settings, upgrade) = (
                        broker.clone(),
                        stop2.clone(),
                        settings.clone(),
                        upgrade.clone(),
                    );
                    async move {
                        let _ = stream.set_nodelay(true);
                        match gateway::ws::accept(stream, &upgrade).await {
                            Ok(ws) => gateway::mqtt::serve(ws, peer, broker, stop, settings).await,
                            Err(e) => {
                                tracing::info!(protocol = "mqtt-ws", peer = %peer, error = %e, "WebSocket upgrade failed")
                            }
                        }
                    }
                },
            ));
        }
    }

    if cfg.stomp.enabled || cfg.stomp.ws_enabled {
        let settings = gateway::stomp::Settings {
            max_frame: cfg.stomp.max_frame,
            max_headers: cfg.stomp.max_headers,
            max_header_length: cfg.stomp.max_header_length,
            heartbeat_ms: cfg.stomp.heartbeat_ms,
            default_login: Some((
                cfg.default_user.name.clone(),
                cfg.default_user.password.clone(),
            )),
            ..Default::default()
        };
        if cfg.stomp.enabled {
            let listener = TcpListener::bind(cfg.stomp.listen)
                .await
                .with_context(|| format!("binding the stomp listener on {}", cfg.stomp.listen))?;
            bound.push(("stomp", listener.local_addr()?));
            let (broker, stop2, tracker2, slots) = (
                broker.clone(),
                stop.clone(),
                tracker.clone(),
                Arc::clone(&slots),
            );
            let settings = settings.clone();
            tracker.spawn(accept_loop(
                listener,
                "stomp",
                slots,
                stop2.clone(),
                tracker2,
                move |stream, peer| {
                    let _ = stream.set_nodelay(true);
                    gateway::stomp::serve(
                        stream,
                        peer,
                        broker.clone(),
                        stop2.clone(),
                        settings.clone(),
                    )
                },
            ));
        }
        if cfg.stomp.ws_enabled {
            let listener = TcpListener::bind(cfg.stomp.ws_listen)
                .await
                .with_context(|| {
                    format!("binding the stomp-ws listener on {}", cfg.stomp.ws_listen)
                })?;
            bound.push(("stomp-ws", listener.local_addr()?));
            let upgrade = gateway::ws::Upgrade {
                paths: vec!["/ws".into(), "/".into()],
                subprotocols: vec!["v12.stomp".into(), "v11.stomp".into(), "v10.stomp".into()],
                // A STOMP frame may span WebSocket messages, but no message may be bigger
                // than a frame (plus its header section).
                max_message: cfg.stomp.max_frame.saturating_add(1 << 20),
                timeout: settings.handshake_timeout,
                outgoing: gateway::ws::Outgoing::TextWhenUtf8,
            };
            let settings = gateway::stomp::Settings {
                protocol: "stomp-ws",
                ..settings
            };
            let (broker, stop2, tracker2, slots) = (
                broker.clone(),
                stop.clone(),
                tracker.clone(),
                Arc::clone(&slots),
            );
            tracker.spawn(accept_loop(
                listener,
                "stomp-ws",
                slots,
                stop2.clone(),
                tracker2,
                move |stream, peer| {
                    let (broker, stop, settings, upgrade) = (
                        broker.clone(),
                        stop2.clone(),
                        settings.clone(),
                        upgrade.clone(),
                    );
                    async move {
                        match gateway::ws::accept(stream, &upgrade).await {
                            Ok(ws) => gateway::stomp::serve(ws, peer, broker, stop, settings).await,
                            Err(e) => {
                                tracing::info!(protocol = "stomp-ws", peer = %peer, error = %e, "WebSocket upgrade failed")
                            }
                        }
                    }
                },
            ));
        }
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
    println!("junction: ready");

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
        // `map`, not `async move { fut.await; drop(permit) }`: an async block keeps the future
        // it captured and the one it awaits side by side, so every connection's task would be
        // twice the size of its future (most of an idle connection's memory).
        tracker.spawn(serve(stream, peer).map(move |()| drop(permit)));
    }
}
