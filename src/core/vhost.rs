//! A virtual host: its exchanges, bindings and queues, and routing.
//!
//! Routing reads the table under a read lock; declares take the write lock of this vhost only.

use std::collections::HashMap;
use std::sync::Arc;

use super::message::{Properties, Value};
use super::meta::{BindingDef, ExchangeDef, ExchangeKind};
use super::queue::QueueHandle;
use super::topic;

/// The standard exchanges every vhost has.
pub const STANDARD_EXCHANGES: [(&str, ExchangeKind); 6] = [
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
];

/// An exchange and its outgoing bindings.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    pub(crate) def: ExchangeDef,
    pub(crate) bindings: Vec<BindingDef>,
}

/// The mutable state of a vhost.
#[derive(Debug, Default)]
pub(crate) struct VHostState {
    pub(crate) exchanges: HashMap<String, Exchange>,
    pub(crate) queues: HashMap<String, Arc<QueueHandle>>,
    /// Message counters of the whole vhost.
    pub(crate) counters: Arc<super::metrics::Counters>,
}

impl VHostState {
    /// A vhost with the standard exchanges.
    pub(crate) fn new(vhost: &str) -> VHostState {
        let mut s = VHostState::default();
        for (name, kind) in STANDARD_EXCHANGES {
            let def = ExchangeDef {
                vhost: vhost.into(),
                name: name.into(),
                kind,
                durable: true,
                auto_delete: false,
                internal: false,
                args: Vec::new(),
            };
            s.exchanges.insert(
                name.into(),
                Exchange {
                    def,
                    bindings: Vec::new(),
                },
            );
        }
        s
    }

    /// Queues a message published to `exchange` with `routing_key` reaches (each once), following
    /// exchange-to-exchange bindings without loops. `None` if the exchange does not exist.
    pub(crate) fn route(
        &self,
        exchange: &str,
        routing_key: &str,
        props: &Properties,
    ) -> Option<Vec<Arc<QueueHandle>>> {
        if exchange.is_empty() {
            // The default exchange: the queue named by the routing key. The common case.
            return Some(
                self.queues
                    .get(routing_key)
                    .map(|q| vec![Arc::clone(q)])
                    .unwrap_or_default(),
            );
        }
        self.exchanges.get(exchange)?;
        let mut out: Vec<Arc<QueueHandle>> = Vec::new();
        let mut seen_x: Vec<&str> = Vec::new();
        let mut stack = vec![exchange];
        while let Some(xname) = stack.pop() {
            if seen_x.contains(&xname) {
                continue;
            }
            seen_x.push(xname);
            let Some(x) = self.exchanges.get(xname) else {
                continue;
            };
            if x.def.name.is_empty() {
                out.extend(self.queues.get(routing_key).cloned());
                continue;
            }
            for b in &x.bindings {
                if !binding_matches(x.def.kind, b, routing_key, props) {
                    continue;
                }
                if b.dest_is_exchange {
                    stack.push(b.destination.as_str());
                } else if let Some(q) = self.queues.get(&b.destination) {
                    out.push(Arc::clone(q));
                }
            }
        }
        // A queue reached by several bindings gets the message once.
        if out.len() > 1 {
            out.sort_by_key(|q| Arc::as_ptr(q) as usize);
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        Some(out)
    }
}

fn binding_matches(
    kind: ExchangeKind,
    b: &BindingDef,
    routing_key: &str,
    props: &Properties,
) -> bool {
    match kind {
        ExchangeKind::Direct => b.routing_key == routing_key,
        ExchangeKind::Fanout => true,
        ExchangeKind::Topic => topic::matches(&b.routing_key, routing_key),
        ExchangeKind::Headers => headers_match(&b.args, props),
    }
}

/// Headers exchange: `x-match` = `all` (default) or `any` over the binding's other arguments;
/// `all-with-x` / `any-with-x` also compare `x-` arguments, as RabbitMQ does.
fn headers_match(args: &[(String, Value)], props: &Properties) -> bool {
    let mode = args
        .iter()
        .find(|(k, _)| k == "x-match")
        .and_then(|(_, v)| v.as_str_lossy())
        .unwrap_or_else(|| "all".into());
    let with_x = mode.ends_with("-with-x");
    let any = mode.starts_with("any");
    let mut wanted = args
        .iter()
        .filter(|(k, _)| k != "x-match" && (with_x || !k.starts_with("x-")));
    let hit = |(k, v): &(String, Value)| match props.header(k) {
        Some(have) => {
            matches!(v, Value::Null)
                || have == v
                || have
                    .as_str_lossy()
                    .is_some_and(|h| Some(h) == v.as_str_lossy())
        }
        None => false,
    };
    if any {
        wanted.any(hit)
    } else {
        wanted.all(hit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(h: &[(&str, &str)]) -> Properties {
        Properties {
            headers: h
                .iter()
                .map(|(k, v)| (k.to_string(), Value::Str(v.to_string())))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn headers_exchange_all_and_any() {
        let args = |m: &str| {
            vec![
                ("x-match".to_string(), Value::Str(m.into())),
                ("format".to_string(), Value::Str("pdf".into())),
                ("type".to_string(), Value::Str("report".into())),
            ]
        };
        let both = props(&[("format", "pdf"), ("type", "report")]);
        let one = props(&[("format", "pdf")]);
        assert!(headers_match(&args("all"), &both));
        assert!(!headers_match(&args("all"), &one));
        assert!(headers_match(&args("any"), &one));
        assert!(!headers_match(&args("any"), &props(&[])));
    }
}
