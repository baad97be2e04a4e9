//! A blocking client of the broker's HTTP admin API, for the end-to-end tests of the API, the
//! policies and the definitions.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::TestBroker;

/// A blocking HTTP client for the broker's API.
pub struct Api {
    base: String,
    agent: ureq::Agent,
    auth: Option<String>,
}

/// An answer: status, body text and the body as JSON (Null if it is not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub json: Value,
    pub headers: ureq::http::HeaderMap,
}

impl Answer {
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        self.json
    }

    /// An error answer: JSON `{"error", "reason"}` with this status; returns `error`.
    pub fn error(self, status: u16) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(self.json["reason"].is_string(), "{}", self.text);
        self.json["error"]
            .as_str()
            .expect("an error code")
            .to_string()
    }
}

/// Runs blocking HTTP off the async workers when called from a test runtime.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Api {
    pub fn new(b: &TestBroker, user: &str, password: &str) -> Api {
        use base64::Engine;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build();
        Api {
            base: format!("http://{}", b.http),
            agent: config.into(),
            auth: Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
        }
    }

    pub fn anonymous(b: &TestBroker) -> Api {
        let mut a = Api::new(b, "", "");
        a.auth = None;
        a
    }

    pub fn call(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        blocking(|| {
            let url = format!("{}{path}", self.base);
            let send = || {
                let mut req = ureq::http::Request::builder().method(method).uri(&url);
                if let Some(a) = &self.auth {
                    req = req.header("authorization", a);
                }
                match body {
                    Some(b) => self.agent.run(
                        req.header("content-type", "application/json")
                            .body(b.to_string())
                            .unwrap(),
                    ),
                    None => self.agent.run(req.body(()).unwrap()),
                }
            };
            // A server that answers before reading a request's body (a refused login) may close
            // that keep-alive connection; the agent can pick it from its pool for the next
            // request. Such a request is sent once more, on a new connection.
            let res = send().or_else(|e| {
                eprintln!("{method} {path}: {e}; sending it again");
                send()
            });
            let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let status = res.status().as_u16();
            let headers = res.headers().clone();
            let text = res.body_mut().read_to_string().unwrap_or_default();
            let json = serde_json::from_str(&text).unwrap_or(Value::Null);
            Answer {
                status,
                text,
                json,
                headers,
            }
        })
    }

    pub fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None)
    }
    pub fn delete(&self, path: &str) -> Answer {
        self.call("DELETE", path, None)
    }
    pub fn put(&self, path: &str, body: Value) -> Answer {
        self.call("PUT", path, Some(&body.to_string()))
    }
    pub fn post(&self, path: &str, body: Value) -> Answer {
        self.call("POST", path, Some(&body.to_string()))
    }
}

/// Polls `f` until it returns `Some`, for at most 30 s.
pub fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        blocking(|| std::thread::sleep(Duration::from_millis(50)));
    }
}
