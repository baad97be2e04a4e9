//! The dashboard: one web page (HTML, CSS and JavaScript compiled into the binary with
//! `include_str!`) served at `/` and `/dashboard`, a client of the JSON API like any other.
//!
//! It signs in with the user's basic-auth credentials (kept in the tab's `sessionStorage`),
//! polls `/api/overview` and the open view's listing once a second, and draws its rate charts
//! on `<canvas>` with its own code: no framework, no CDN, nothing fetched from elsewhere, so it
//! works on a broker with no route to the internet. The page holds no secret and needs no
//! credentials to load; every figure it shows comes from an authenticated API call.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderName;
use axum::response::IntoResponse;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

/// Only this origin's script, style and API; `data:` for the icon; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, content_type),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, CSP),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
        ],
        body,
    )
}

/// `GET /` and `GET /dashboard`: the page.
pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/app.js`.
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /dashboard/app.css`.
pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX),
            ("app.js", SCRIPT),
            ("app.css", STYLE),
        ] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                assert!(
                    !text.contains(needle),
                    "{name} refers to something outside the binary: {needle}"
                );
            }
        }
        assert!(INDEX.contains(r#"src="/dashboard/app.js""#));
        assert!(INDEX.contains(r#"href="/dashboard/app.css""#));
    }
}
