//! A blocking client of the broker's HTTP admin API.

use std::time::Duration;

use base64::Engine;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

/// Why a `junction ctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The broker could not be reached, or the answer could not be read.
    #[error("{url}: {message}")]
    Http {
        /// The request.
        url: String,
        /// What failed.
        message: String,
    },
    /// The broker answered with an error.
    #[error("{status} {error}: {reason}")]
    Api {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        error: String,
        /// Its reason.
        reason: String,
    },
    /// The command line or a file is not usable.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

/// Percent-encodes one path segment (`/` becomes `%2F`).
pub fn seg(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// The API client: base URL and credentials.
#[derive(Debug)]
pub struct Client {
    base: String,
    auth: String,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the API at `url` (e.g. `http://127.0.0.1:15672`).
    pub fn new(url: &str, user: &str, password: &str) -> Client {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build();
        Client {
            base: url.trim_end_matches('/').to_string(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            ),
            agent: config.into(),
        }
    }

    /// Sends a request; returns the JSON answer (`Null` for an empty one).
    ///
    /// # Errors
    /// [`CtlError::Http`] when the broker cannot be reached, [`CtlError::Api`] for an error
    /// answer.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CtlError> {
        self.call_with(method, path, body, None)
    }

    /// As [`Client::call`], with one extra request header.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        header: Option<(&str, &str)>,
    ) -> Result<Value, CtlError> {
        let url = format!("{}{path}", self.base);
        let http = |e: &dyn std::fmt::Display| CtlError::Http {
            url: url.clone(),
            message: e.to_string(),
        };
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("authorization", &self.auth);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let res = match body {
            Some(b) => self.agent.run(
                req.header("content-type", "application/json")
                    .body(b.to_string())
                    .map_err(|e| http(&e))?,
            ),
            None => self.agent.run(req.body(()).map_err(|e| http(&e))?),
        };
        let mut res = res.map_err(|e| http(&e))?;
        let status = res.status().as_u16();
        let text = res.body_mut().read_to_string().map_err(|e| http(&e))?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status >= 400 {
            return Err(CtlError::Api {
                status,
                error: json["error"].as_str().unwrap_or("error").to_string(),
                reason: json["reason"]
                    .as_str()
                    .map_or_else(|| json.to_string(), str::to_string),
            });
        }
        Ok(json)
    }

    /// `GET`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn get(&self, path: &str) -> Result<Value, CtlError> {
        self.call("GET", path, None)
    }

    /// `PUT` with a JSON body.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn put(&self, path: &str, body: &Value) -> Result<Value, CtlError> {
        self.call("PUT", path, Some(body))
    }

    /// `POST` with a JSON body.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, CtlError> {
        self.call("POST", path, Some(body))
    }

    /// `DELETE`.
    ///
    /// # Errors
    /// As [`Client::call`].
    pub fn delete(&self, path: &str) -> Result<Value, CtlError> {
        self.call("DELETE", path, None)
    }
}
