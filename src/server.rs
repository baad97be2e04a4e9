//! Listeners, the connection limits (all connections; those in their handshake) and graceful
//! shutdown.
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
use crate::gateway::metered::Metered;
use crate::tls::{self, Stream};

/// Runs the broker until `shutdown` completes.
///
/// With `[cluster]` on, the broker may restart in place when its role changes (an old master
/// demoted by the controllers, cutting its CommitLog first): the listeners come back on the
/// same addresses.
///
/// # Errors
/// Opening the store or metadata, or binding a listener.
pub async fn run(mut cfg: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (restart, bound) = run_once(&cfg, shutdown.as_mut()).await?;
        let Some(restart) = restart else {
            return Ok(());
        };
        keep_addresses(&mut cfg, &bound);
        if let crate::cluster::Restart::Truncate(at) = restart {
            let store = cfg.store_config(&cfg.data_dir.join("store"));
            tokio::task::spawn_blocking(move || junction_store::truncate_log(&store, at))
                .await?
                .context("cutting the CommitLog")?;
        }
        tracing::info!(?restart, "restarting the broker");
    }
}

/// Listeners bound on port 0 come back on the port they got.
fn keep_addresses(cfg: &mut Config, bound: &[(&str, SocketAddr)]) {
    for (p, a) in bound {
        match *p {
            "native" => cfg.native.listen = *a,
            "amqp" => cfg.amqp.listen = *a,
            "mqtt" => cfg.mqtt.listen = *a,
            "mqtt-ws" => cfg.mqtt.ws_listen = *a,
            "stomp" => cfg.stomp.listen = *a,
            "stomp-ws" => cfg.stomp.ws_listen = *a,
            "http" => cfg.http.listen = *a,
            "native-tls" => cfg.native.tls_listen = *a,
            "amqps" => cfg.amqp.tls_listen = *a,
            "mqtts" => cfg.mqtt.tls_listen = *a,
            "mqtt-wss" => cfg.mqtt.wss_listen = *a,
            "stomps" => cfg.stomp.tls_listen = *a,
            "stomp-wss" => cfg.stomp.wss_listen = *a,
            "https" => cfg.http.tls_listen = *a,
            "ha" => cfg.cluster.ha_listen = *a,
            _ => {}
        }
    }
}

type Bound = Vec<(&'static str, SocketAddr)>;

async fn run_once(
    cfg: &Config,
    shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> anyhow::Result<(Option<crate::cluster::Restart>, Bound)> {
    let mut core = CoreConfig::new(&cfg.data_dir);
    core.store = cfg.store_config(&cfg.data_dir.join("store"));
    core.default_user = (
        cfg.default_user.name.clone(),
        cfg.default_user.password.clone(),
    );
    core.memory_high_watermark =
        crate::core::MemoryWatermark::Relative(cfg.limits.memory_high_watermark);
    core.keep_unknown_queues = cfg.cluster.enabled;
    core.transactions = cfg.transactions.core();
    let broker = Broker::open(core)
        .await
        .with_context(|| format!("opening the broker in {}", cfg.data_dir.display()))?;

    let stop = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut net = Net {
        broker: broker.clone(),
        stop: stop.clone(),
        tracker: tracker.clone(),
        slots: Arc::new(Semaphore::new(cfg.limits.max_connections)),
        handshakes: (cfg.limits.max_handshakes > 0)
            .then(|| gateway::handshakes::Handshakes::new(cfg.limits.max_handshakes)),
        bound: Vec::new(),
        meters: Arc::default(),
        write_timeout: (cfg.limits.write_timeout_ms > 0)
            .then(|| Duration::from_millis(cfg.limits.write_timeout_ms)),
    };
    let wants_tls = cfg.native.tls_enabled
        || cfg.amqp.tls_enabled
        || cfg.mqtt.tls_enabled
        || cfg.mqtt.wss_enabled
        || cfg.stomp.tls_enabled
        || cfg.stomp.wss_enabled
        || cfg.http.tls_enabled;
    let tls = if wants_tls {
        Some(tls::Acceptor::new(&cfg.tls).context("setting up TLS ([tls])")?)
    } else {
        None
    };
    let node = if cfg.cluster.enabled {
        let node = crate::cluster::Node::start(cfg, broker.clone()).await?;
        net.bound.push(("ha", node.ha_addr()));
        Some(node)
    } else {
        None
    };

    let handshake_timeout = Duration::from_millis(cfg.limits.handshake_timeout_ms.max(1));
    if cfg.native.enabled || cfg.native.tls_enabled {
        let settings = gateway::native::Settings {
            max_frame: cfg.limits.max_frame,
            handshake_timeout,
            ..Default::default()
        };
        let serve = move |stream, peer, who: tls::Peer, broker, stop| {
            let settings = gateway::native::Settings {
                cert_user: who.cert_user,
                ..settings.clone()
            };
            gateway::native::serve(stream, peer, broker, stop, settings)
        };
        let n = &cfg.native;
        for (on, name, addr, tls) in [
            (n.enabled, "native", n.listen, None),
            (n.tls_enabled, "native-tls", n.tls_listen, tls.clone()),
        ] {
            if on {
                net.listen(name, addr, tls, serve.clone()).await?;
            }
        }
    }

    if cfg.amqp.enabled || cfg.amqp.tls_enabled {
        let settings = gateway::amqp::Settings {
            frame_max: cfg.amqp.frame_max,
            channel_max: cfg.amqp.channel_max,
            heartbeat_s: cfg.amqp.heartbeat_s,
            max_message_size: cfg.store.max_record_size,
            handshake_timeout,
            ..Default::default()
        };
        let serve = move |stream, peer, who: tls::Peer, broker, stop| {
            let settings = gateway::amqp::Settings {
                cert_user: who.cert_user,
                ..settings.clone()
            };
            gateway::amqp::serve(stream, peer, broker, stop, settings)
        };
        let a = &cfg.amqp;
        for (on, name, addr, tls) in [
            (a.enabled, "amqp", a.listen, None),
            (a.tls_enabled, "amqps", a.tls_listen, tls.clone()),
        ] {
            if on {
                net.listen(name, addr, tls, serve.clone()).await?;
            }
        }
    }

    let m = &cfg.mqtt;
    if m.enabled || m.ws_enabled || m.tls_enabled || m.wss_enabled {
        // One registry (in the settings) for every MQTT listener: a client id is one session
        // whichever way the client comes in.
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
            connect_timeout: handshake_timeout,
            ..Default::default()
        };
        let upgrade = gateway::ws::Upgrade {
            paths: vec!["/mqtt".into(), "/ws".into(), "/".into()],
            subprotocols: vec!["mqtt".into(), "mqttv3.1".into()],
            max_message: usize::try_from(m.max_packet_size)
                .unwrap_or(usize::MAX)
                .saturating_add(8),
            timeout: settings.connect_timeout,
            outgoing: gateway::ws::Outgoing::Binary,
        };
        for (on, name, addr, tls, ws) in [
            (m.enabled, "mqtt", m.listen, None, false),
            (m.tls_enabled, "mqtts", m.tls_listen, tls.clone(), false),
            (m.ws_enabled, "mqtt-ws", m.ws_listen, None, true),
            (m.wss_enabled, "mqtt-wss", m.wss_listen, tls.clone(), true),
        ] {
            if !on {
                continue;
            }
            let settings = gateway::mqtt::Settings {
                protocol: name,
                ..settings.clone()
            };
            let upgrade = ws.then(|| upgrade.clone());
            let serve = move |stream, peer, who: tls::Peer, broker, stop| {
                let settings = gateway::mqtt::Settings {
                    cert_user: who.cert_user,
                    ..settings.clone()
                };
                let upgrade = upgrade.clone();
                // Each alternative boxed: a future is as big as its largest branch, and a plain
                // TCP connection should not carry the WebSocket handshake's or the WebSocket
                // session's size (idle connections' memory is mostly their task).
                async move {
                    match upgrade {
                        None => {
                            Box::pin(gateway::mqtt::serve(stream, peer, broker, stop, settings))
                                .await
                        }
                        Some(u) => match Box::pin(gateway::ws::accept(stream, &u)).await {
                            Ok(ws) => {
                                Box::pin(gateway::mqtt::serve(ws, peer, broker, stop, settings))
                                    .await
                            }
                            Err(e) => {
                                tracing::info!(protocol = name, peer = %peer, error = %e, "WebSocket upgrade failed")
                            }
                        },
                    }
                }
            };
            net.listen(name, addr, tls, serve).await?;
        }
    }

    let st = &cfg.stomp;
    if st.enabled || st.ws_enabled || st.tls_enabled || st.wss_enabled {
        let settings = gateway::stomp::Settings {
            max_frame: st.max_frame,
            max_headers: st.max_headers,
            max_header_length: st.max_header_length,
            heartbeat_ms: st.heartbeat_ms,
            handshake_timeout,
            default_login: Some((
                cfg.default_user.name.clone(),
                cfg.default_user.password.clone(),
            )),
            ..Default::default()
        };
        let upgrade = gateway::ws::Upgrade {
            paths: vec!["/ws".into(), "/".into()],
            subprotocols: vec!["v12.stomp".into(), "v11.stomp".into(), "v10.stomp".into()],
            // A STOMP frame may span WebSocket messages, but no message may be bigger than a
            // frame (plus its header section).
            max_message: st.max_frame.saturating_add(1 << 20),
            timeout: settings.handshake_timeout,
            outgoing: gateway::ws::Outgoing::TextWhenUtf8,
        };
        for (on, name, addr, tls, ws) in [
            (st.enabled, "stomp", st.listen, None, false),
            (st.tls_enabled, "stomps", st.tls_listen, tls.clone(), false),
            (st.ws_enabled, "stomp-ws", st.ws_listen, None, true),
            (
                st.wss_enabled,
                "stomp-wss",
                st.wss_listen,
                tls.clone(),
                true,
            ),
        ] {
            if !on {
                continue;
            }
            let settings = gateway::stomp::Settings {
                protocol: name,
                ..settings.clone()
            };
            let upgrade = ws.then(|| upgrade.clone());
            let serve = move |stream, peer, who: tls::Peer, broker, stop| {
                let settings = gateway::stomp::Settings {
                    cert_user: who.cert_user,
                    ..settings.clone()
                };
                let upgrade = upgrade.clone();
                // Each alternative boxed, as for MQTT above.
                async move {
                    match upgrade {
                        None => {
                            Box::pin(gateway::stomp::serve(stream, peer, broker, stop, settings))
                                .await
                        }
                        Some(u) => match Box::pin(gateway::ws::accept(stream, &u)).await {
                            Ok(ws) => {
                                Box::pin(gateway::stomp::serve(ws, peer, broker, stop, settings))
                                    .await
                            }
                            Err(e) => {
                                tracing::info!(protocol = name, peer = %peer, error = %e, "WebSocket upgrade failed")
                            }
                        },
                    }
                }
            };
            net.listen(name, addr, tls, serve).await?;
        }
    }

    let http = match cfg.http.enabled {
        true => Some(net.bind("http", cfg.http.listen).await?),
        false => None,
    };
    let https = match (cfg.http.tls_enabled, &tls) {
        (true, Some(acceptor)) => {
            let listener = net.bind("https", cfg.http.tls_listen).await?;
            Some(tls::HttpsListener::new(
                listener,
                acceptor.clone(),
                stop.clone(),
            )?)
        }
        _ => None,
    };
    let bound = std::mem::take(&mut net.bound);
    if http.is_some() || https.is_some() {
        let all = bound.iter().map(|(p, a)| (p.to_string(), *a)).collect();
        tracker.spawn(crate::admin::serve(
            http,
            https,
            broker.clone(),
            all,
            Arc::clone(&net.meters),
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
    if let Some(node) = &node {
        node.announce(cfg, &bound);
    }

    let restart = match &node {
        Some(node) => tokio::select! {
            () = shutdown => None,
            r = node.restart_requested() => Some(r),
        },
        None => {
            shutdown.await;
            None
        }
    };
    if let Some(node) = node {
        node.stop().await;
    }
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
    Ok((restart, bound))
}

/// What every listener shares: the broker, the stop signal, the task tracker, the connection
/// slots of `[limits] max_connections`, and the addresses bound so far.
struct Net {
    broker: Broker,
    stop: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    bound: Vec<(&'static str, SocketAddr)>,
    /// Bytes in and out per listener.
    meters: Arc<gateway::metered::Meters>,
    /// The slow-consumer cut-off of every connection.
    write_timeout: Option<Duration>,
    /// The cap on connections in their handshake (`[limits] max_handshakes`).
    handshakes: Option<Arc<gateway::handshakes::Handshakes>>,
}

impl Net {
    async fn bind(&mut self, name: &'static str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {name} listener on {addr}"))?;
        self.bound.push((name, listener.local_addr()?));
        Ok(listener)
    }

    /// Binds `addr` and serves each accepted connection with `serve`, after a TLS handshake
    /// when `tls` is given.
    async fn listen<F, Fut>(
        &mut self,
        name: &'static str,
        addr: SocketAddr,
        tls: Option<tls::Acceptor>,
        serve: F,
    ) -> anyhow::Result<()>
    where
        F: Fn(Metered<Stream>, SocketAddr, tls::Peer, Broker, CancellationToken) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = self.bind(name, addr).await?;
        let traffic = self.meters.listener(name);
        let serve = Arc::new(serve);
        let write_timeout = self.write_timeout;
        let (broker, stop, tracker, slots) = (
            self.broker.clone(),
            self.stop.clone(),
            self.tracker.clone(),
            Arc::clone(&self.slots),
        );
        self.tracker.spawn(accept_loop(
            listener,
            name,
            slots,
            self.handshakes.clone(),
            stop.clone(),
            tracker,
            move |tcp, peer| {
                let (serve, tls, broker, stop, traffic) = (
                    Arc::clone(&serve),
                    tls.clone(),
                    broker.clone(),
                    stop.clone(),
                    Arc::clone(&traffic),
                );
                async move {
                    let _ = tcp.set_nodelay(true);
                    let (stream, who) = match tls {
                        None => (Stream::plain(tcp), tls::Peer::default()),
                        // Boxed: the TLS handshake's state is large and plain connections
                        // would carry its size for their whole life.
                        Some(acceptor) => match Box::pin(acceptor.accept(tcp)).await {
                            Ok(x) => x,
                            Err(e) => {
                                tracing::info!(protocol = name, peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                        },
                    };
                    let stream = stream.with_write_timeout(write_timeout);
                    serve(Metered::new(stream, traffic), peer, who, broker, stop).await
                }
            },
        ));
        Ok(())
    }
}

async fn accept_loop<F, Fut>(
    listener: TcpListener,
    protocol: &'static str,
    slots: Arc<Semaphore>,
    handshakes: Option<Arc<gateway::handshakes::Handshakes>>,
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
        match &handshakes {
            None => {
                tracker.spawn(serve(stream, peer).map(move |()| drop(permit)));
            }
            // Refused (logged by the cap, once a second at most): the socket closes.
            Some(h) => match h.admit() {
                None => drop(stream),
                Some(pending) => {
                    tracker.spawn(pending.run(serve(stream, peer)).map(move |()| drop(permit)));
                }
            },
        }
    }
}
