//! The broker's HTTP surface: the admin API under `/api` (RabbitMQ-management-like JSON),
//! Prometheus `/metrics`, the OpenAPI document `/api/openapi.json` and the dashboard page
//! (`/`, `/dashboard`).
//!
//! - `auth`: HTTP basic authentication against the broker's users, and who may do what.
//! - `error`: every failure as JSON `{"error": ..., "reason": ...}` with its status code.
//! - `json`: core values, properties and messages <-> JSON.
//! - `overview`, `access`, `topology`, `groups`, `messages`, `policies`: the handlers.
//! - `alarms`: the memory high watermark and disk free limit, set while running.
//! - `rates`: a once-a-second sampler of the message counters, for rates.
//! - `metrics`: the Prometheus exposition, built from the same counters at scrape time.
//! - `mqtt`: MQTT sessions and retained messages.
//! - `dashboard`: the web page, bundled in the binary, a client of this API.
//!
//! The API keeps no state of its own: it reads the core, and what it changes on a vhost it
//! changes through a core session of the requesting user, so permissions mean the same here as
//! in every protocol. It is not a protocol gateway: requests are not listed as connections.

mod access;
mod alarms;
mod auth;
mod dashboard;
mod error;
mod extract;
mod groups;
mod json;
mod limits;
mod messages;
mod metrics;
mod mqtt;
mod overview;
mod policies;
pub mod rates;
mod topology;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post, put};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::core::Broker;
use crate::gateway::metered::Meters;

pub use error::ApiError;

/// What every handler sees.
#[derive(Clone)]
pub struct AppState {
    broker: Broker,
    listeners: Arc<Vec<(String, SocketAddr)>>,
    meters: Arc<Meters>,
    rates: Arc<rates::Rates>,
}

/// The OpenAPI 3.1 document of the API (hand-written; a test checks it against [`ROUTES`]).
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the API serves, as (path in OpenAPI syntax, methods).
pub const ROUTES: &[(&str, &[&str])] = &[
    ("/api/overview", &["get"]),
    ("/api/whoami", &["get"]),
    ("/api/connections", &["get"]),
    ("/api/connections/{id}", &["get", "delete"]),
    ("/api/vhosts", &["get"]),
    ("/api/vhosts/{vhost}", &["get", "put", "delete"]),
    ("/api/users", &["get"]),
    ("/api/users/{user}", &["get", "put", "delete"]),
    ("/api/permissions", &["get"]),
    ("/api/permissions/{vhost}/{user}", &["get", "put", "delete"]),
    ("/api/topic-permissions", &["get"]),
    (
        "/api/topic-permissions/{vhost}/{user}",
        &["get", "put", "delete"],
    ),
    ("/api/vhost-limits", &["get"]),
    ("/api/vhost-limits/{vhost}/{name}", &["put", "delete"]),
    ("/api/user-limits", &["get"]),
    ("/api/user-limits/{user}/{name}", &["put", "delete"]),
    ("/api/policies", &["get"]),
    ("/api/policies/{vhost}", &["get"]),
    ("/api/policies/{vhost}/{name}", &["get", "put", "delete"]),
    ("/api/limits/memory-watermark", &["get", "put"]),
    ("/api/limits/disk-free-limit", &["get", "put"]),
    ("/api/exchanges", &["get"]),
    ("/api/exchanges/{vhost}", &["get"]),
    ("/api/exchanges/{vhost}/{name}", &["get", "put", "delete"]),
    ("/api/exchanges/{vhost}/{name}/publish", &["post"]),
    ("/api/queues", &["get"]),
    ("/api/queues/{vhost}", &["get"]),
    ("/api/queues/{vhost}/{name}", &["get", "put", "delete"]),
    ("/api/queues/{vhost}/{name}/contents", &["delete"]),
    ("/api/queues/{vhost}/{name}/get", &["post"]),
    ("/api/queues/{vhost}/{name}/messages", &["get"]),
    ("/api/queues/{vhost}/{name}/bindings", &["get"]),
    ("/api/queues/{vhost}/{name}/groups", &["get"]),
    ("/api/queues/{vhost}/{name}/groups/{group}", &["delete"]),
    (
        "/api/queues/{vhost}/{name}/groups/{group}/offsets",
        &["put"],
    ),
    ("/api/bindings", &["get"]),
    ("/api/bindings/{vhost}", &["get"]),
    (
        "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
        &["get", "post"],
    ),
    (
        "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
        &["get", "delete"],
    ),
    ("/api/messages/{vhost}", &["get"]),
    ("/api/mqtt/sessions", &["get"]),
    ("/api/mqtt/sessions/{vhost}", &["get"]),
    ("/api/mqtt/sessions/{vhost}/{client_id}", &["get"]),
    ("/api/mqtt/retained", &["get"]),
    ("/api/mqtt/retained/{vhost}", &["get", "delete"]),
    ("/api/openapi.json", &["get"]),
    ("/metrics", &["get"]),
];

/// The router, for a broker whose listeners are `listeners`.
pub fn router(
    broker: Broker,
    listeners: Vec<(String, SocketAddr)>,
    meters: Arc<Meters>,
    rates: Arc<rates::Rates>,
) -> Router {
    let state = AppState {
        broker,
        listeners: Arc::new(listeners),
        meters,
        rates,
    };
    Router::new()
        .route("/api/overview", get(overview::overview))
        .route("/api/whoami", get(access::whoami))
        .route("/api/connections", get(overview::connections))
        .route(
            "/api/connections/{id}",
            get(overview::connection).delete(overview::close_connection),
        )
        .route("/api/vhosts", get(access::vhosts))
        .route(
            "/api/vhosts/{vhost}",
            get(access::vhost)
                .put(access::put_vhost)
                .delete(access::delete_vhost),
        )
        .route("/api/users", get(access::users))
        .route(
            "/api/users/{user}",
            get(access::user)
                .put(access::put_user)
                .delete(access::delete_user),
        )
        .route("/api/permissions", get(access::permissions))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(access::permission)
                .put(access::put_permission)
                .delete(access::delete_permission),
        )
        .route("/api/topic-permissions", get(limits::topic_permissions))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(limits::user_topic_permissions)
                .put(limits::put_topic_permission)
                .delete(limits::delete_topic_permissions),
        )
        .route("/api/vhost-limits", get(limits::vhost_limits))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            put(limits::put_vhost_limit).delete(limits::delete_vhost_limit),
        )
        .route("/api/user-limits", get(limits::user_limits))
        .route(
            "/api/user-limits/{user}/{name}",
            put(limits::put_user_limit).delete(limits::delete_user_limit),
        )
        .route("/api/policies", get(policies::all))
        .route("/api/policies/{vhost}", get(policies::of_vhost))
        .route(
            "/api/policies/{vhost}/{name}",
            get(policies::one)
                .put(policies::put)
                .delete(policies::delete),
        )
        .route(
            "/api/limits/memory-watermark",
            get(alarms::memory).put(alarms::put_memory),
        )
        .route(
            "/api/limits/disk-free-limit",
            get(alarms::disk).put(alarms::put_disk),
        )
        .route("/api/exchanges", get(topology::all_exchanges))
        .route("/api/exchanges/{vhost}", get(topology::exchanges))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(topology::exchange)
                .put(topology::put_exchange)
                .delete(topology::delete_exchange),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/publish",
            post(messages::publish),
        )
        .route("/api/queues", get(topology::all_queues))
        .route("/api/queues/{vhost}", get(topology::queues))
        .route(
            "/api/queues/{vhost}/{name}",
            get(topology::queue)
                .put(topology::put_queue)
                .delete(topology::delete_queue),
        )
        .route(
            "/api/queues/{vhost}/{name}/contents",
            axum::routing::delete(topology::purge_queue),
        )
        .route("/api/queues/{vhost}/{name}/get", post(messages::get))
        .route("/api/queues/{vhost}/{name}/messages", get(messages::read))
        .route(
            "/api/queues/{vhost}/{name}/bindings",
            get(topology::queue_bindings),
        )
        .route("/api/queues/{vhost}/{name}/groups", get(groups::groups))
        .route(
            "/api/queues/{vhost}/{name}/groups/{group}",
            axum::routing::delete(groups::delete),
        )
        .route(
            "/api/queues/{vhost}/{name}/groups/{group}/offsets",
            axum::routing::put(groups::reset),
        )
        .route("/api/bindings", get(topology::all_bindings))
        .route("/api/bindings/{vhost}", get(topology::bindings))
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}",
            get(topology::bindings_between).post(topology::bind),
        )
        .route(
            "/api/bindings/{vhost}/e/{source}/{kind}/{destination}/{props}",
            get(topology::binding).delete(topology::unbind),
        )
        .route("/api/messages/{vhost}", get(messages::lookup))
        .route("/api/mqtt/sessions", get(mqtt::all_sessions))
        .route("/api/mqtt/sessions/{vhost}", get(mqtt::sessions))
        .route("/api/mqtt/sessions/{vhost}/{client_id}", get(mqtt::session))
        .route("/api/mqtt/retained", get(mqtt::all_retained))
        .route(
            "/api/mqtt/retained/{vhost}",
            get(mqtt::retained).delete(mqtt::delete_retained),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/metrics", get(metrics::metrics))
        .route("/", get(dashboard::index))
        .route("/dashboard", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn(no_store))
        .layer(axum::middleware::from_fn(no_challenge_for_scripts))
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}

/// API answers describe live state: no cache may keep them.
async fn no_store(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut res = next.run(req).await;
    res.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    res
}

/// A script that sends `X-Requested-With: XMLHttpRequest` (the dashboard does) handles a 401
/// itself: without the `WWW-Authenticate` challenge the browser shows no login prompt of its
/// own.
async fn no_challenge_for_scripts(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let scripted = req
        .headers()
        .get("x-requested-with")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"xmlhttprequest"));
    let mut res = next.run(req).await;
    if scripted {
        res.headers_mut()
            .remove(axum::http::header::WWW_AUTHENTICATE);
    }
    res
}

/// Serves the API on `listener` (HTTP) and `https` (HTTPS), whichever are given, until
/// `stop` fires (requests in progress finish). `meters` has the bytes in and out of the other
/// listeners.
pub async fn serve(
    listener: Option<TcpListener>,
    https: Option<crate::tls::HttpsListener>,
    broker: Broker,
    listeners: Vec<(String, SocketAddr)>,
    meters: Arc<Meters>,
    stop: CancellationToken,
) {
    let rates = Arc::new(rates::Rates::default());
    let sampler = tokio::spawn(rates::run(Arc::clone(&rates), broker.clone(), stop.clone()));
    let app = router(broker, listeners, meters, rates);
    let plain = async {
        let Some(listener) = listener else { return };
        let app = app
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "http listener failed");
        }
    };
    let tls = async {
        use axum::serve::ListenerExt;
        let Some(listener) = https else { return };
        // `tap_io` only to get axum's `ConnectInfo<SocketAddr>` for a listener of our own.
        let listener = listener.tap_io(|_| {});
        let app = app
            .clone()
            .into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "https listener failed");
        }
    };
    tokio::join!(plain, tls);
    stop.cancel();
    let _ = sampler.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_document_lists_exactly_the_routes() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        let paths = doc["paths"].as_object().expect("paths");
        let mut documented: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .into_iter()
                    .flat_map(|o| o.keys())
                    .filter(|m| *m != "parameters")
                    .map(move |m| (p.clone(), m.clone()))
            })
            .collect();
        let mut routed: Vec<(String, String)> = ROUTES
            .iter()
            .flat_map(|(p, ms)| ms.iter().map(move |m| (p.to_string(), m.to_string())))
            .collect();
        documented.sort();
        routed.sort();
        assert_eq!(documented, routed);
        for (path, ops) in paths {
            for (method, op) in ops.as_object().into_iter().flatten() {
                assert!(op["summary"].is_string(), "{method} {path} has no summary");
                assert!(
                    op["responses"].is_object(),
                    "{method} {path} has no responses"
                );
            }
        }
    }
}
