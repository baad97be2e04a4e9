//! Routes from name servers: which broker groups hold a topic, and where each group's master
//! and slaves listen.
//!
//! A name server answers over HTTP/JSON (`GET /routes/{topic}?vhost=`, `GET /groups/{name}`);
//! [`NameServers`] asks each configured one in turn until one answers, as RocketMQ clients
//! do. Name servers hold no state of their own, so any of them will do.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::{Result, SdkError};

/// One broker of a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RouteBroker {
    /// Its id in the group (0 = the configured master).
    pub broker_id: u64,
    /// Its listeners by protocol: `native`, `amqp`, `mqtt`, `stomp`, `http`, `ha`.
    pub listeners: BTreeMap<String, String>,
    /// Its CommitLog end when it last heartbeated.
    #[serde(default)]
    pub log_end: u64,
}

impl RouteBroker {
    /// The address of one of its listeners.
    pub fn listener(&self, protocol: &str) -> Option<&str> {
        self.listeners.get(protocol).map(String::as_str)
    }
}

/// A broker group: a master (when one is alive) and its slaves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GroupRoute {
    /// Cluster name.
    pub cluster: String,
    /// Broker group name.
    pub broker_name: String,
    /// The broker accepting writes now.
    pub master: Option<RouteBroker>,
    /// The read-only copies.
    pub slaves: Vec<RouteBroker>,
    /// Partitions of the topic in this group (0 when the group was asked for by name).
    pub partitions: u16,
}

/// Every broker group holding a topic.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicRoute {
    /// The topic (queue name).
    pub topic: String,
    /// Its virtual host.
    pub vhost: String,
    /// The groups, by name.
    pub groups: Vec<GroupRoute>,
}

/// The name servers a client asks for routes.
#[derive(Debug, Clone)]
pub struct NameServers {
    addrs: Vec<String>,
    timeout: Duration,
}

impl NameServers {
    /// Name servers at `addrs` (`host:port` of their HTTP listeners).
    pub fn new(addrs: Vec<String>, timeout: Duration) -> NameServers {
        NameServers { addrs, timeout }
    }

    /// Where `topic` of `vhost` lives.
    ///
    /// # Errors
    /// [`SdkError::Route`] when no name server answers or none knows the topic.
    pub async fn topic(&self, vhost: &str, topic: &str) -> Result<TopicRoute> {
        let path = format!("/routes/{}?vhost={}", encode(topic), encode(vhost));
        self.get(&path).await
    }

    /// One broker group.
    ///
    /// # Errors
    /// [`SdkError::Route`] when no name server answers or none knows the group.
    pub async fn group(&self, broker_name: &str) -> Result<GroupRoute> {
        self.get(&format!("/groups/{}", encode(broker_name))).await
    }

    async fn get<T: for<'de> Deserialize<'de> + Send + 'static>(&self, path: &str) -> Result<T> {
        let (addrs, path, timeout) = (self.addrs.clone(), path.to_string(), self.timeout);
        let asked = tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(timeout))
                .http_status_as_error(false)
                .build()
                .new_agent();
            let mut last = String::from("no name server configured");
            for a in &addrs {
                match agent.get(format!("http://{a}{path}")).call() {
                    Ok(mut r) if r.status().is_success() => match r.body_mut().read_json::<T>() {
                        Ok(v) => return Ok(v),
                        Err(e) => last = format!("{a}: bad answer: {e}"),
                    },
                    Ok(mut r) => {
                        let body = r.body_mut().read_to_string().unwrap_or_default();
                        last = format!("{a}: {} {body}", r.status());
                    }
                    Err(e) => last = format!("{a}: {e}"),
                }
            }
            Err(SdkError::Route(last))
        })
        .await;
        asked.unwrap_or_else(|e| Err(SdkError::Route(e.to_string())))
    }
}

/// Percent-encodes a path segment or query value.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_and_routes_decode() {
        assert_eq!(encode("/"), "%2F");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
        let r: TopicRoute = serde_json::from_str(
            r#"{"topic":"t","vhost":"/","groups":[{"cluster":"c","broker_name":"a",
            "master":{"broker_id":0,"listeners":{"native":"127.0.0.1:1"},"log_end":5},
            "slaves":[],"partitions":4}]}"#,
        )
        .unwrap();
        let m = r.groups[0].master.as_ref().unwrap();
        assert_eq!(m.listener("native"), Some("127.0.0.1:1"));
    }

    #[tokio::test]
    async fn no_name_server_is_a_route_error() {
        let ns = NameServers::new(vec!["127.0.0.1:1".into()], Duration::from_millis(200));
        assert!(matches!(ns.group("a").await, Err(SdkError::Route(_))));
    }
}
