//! SUBSCRIBE and UNSUBSCRIBE: a plain subscription is a binding of `amq.topic` to the
//! session queue, with its options kept in the binding's arguments; a shared one is a
//! consumer on the group's queue; retained messages are sent as a subscription is made.

use junction_mqtt::{
    topic, Packet, ProtocolVersion, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, Unsubscribe,
};
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::{Close, Conn, OutMsg};
use super::mapping;
use crate::core::{
    BindingDecl, ConsumeSpec, ConsumerTag, CoreError, CoreResult, QueueDecl, StartFrom, Value,
};

/// `$queue/<name>` subscribes to a queue by name (see [`Conn::subscribe_queue`]).
const QUEUE_PREFIX: &str = "$queue/";

const ARG_FILTER: &str = "x-mqtt-filter";
const ARG_QOS: &str = "x-mqtt-qos";
const ARG_NO_LOCAL: &str = "x-mqtt-no-local";
const ARG_RAP: &str = "x-mqtt-retain-as-published";
const ARG_ID: &str = "x-mqtt-subscription-id";

/// A plain subscription of this session.
#[derive(Debug, Clone)]
pub(super) struct Sub {
    /// The MQTT filter.
    pub(super) filter: String,
    /// Its `amq.topic` binding key.
    pub(super) key: String,
    pub(super) opts: SubscriptionOptions,
    /// 5.0 subscription identifier.
    pub(super) id: Option<u32>,
}

impl Sub {
    fn args(&self) -> Vec<(String, Value)> {
        let mut a = vec![
            (ARG_FILTER.into(), Value::Str(self.filter.clone())),
            (ARG_QOS.into(), Value::I64(self.opts.qos as i64)),
        ];
        if self.opts.no_local {
            a.push((ARG_NO_LOCAL.into(), Value::Bool(true)));
        }
        if self.opts.retain_as_published {
            a.push((ARG_RAP.into(), Value::Bool(true)));
        }
        if let Some(id) = self.id {
            a.push((ARG_ID.into(), Value::I64(i64::from(id))));
        }
        a
    }

    /// The subscription a binding made by [`Sub::args`] stands for.
    fn from_binding(b: &BindingDecl) -> Option<Sub> {
        let arg = |k: &str| b.args.iter().find(|(n, _)| n == k).map(|(_, v)| v);
        let Some(Value::Str(filter)) = arg(ARG_FILTER) else {
            return None;
        };
        let qos = match arg(ARG_QOS) {
            Some(Value::I64(q)) => QoS::from_bits(*q as u8)?,
            _ => QoS::AtMostOnce,
        };
        Some(Sub {
            filter: filter.clone(),
            key: b.routing_key.clone(),
            opts: SubscriptionOptions {
                qos,
                no_local: matches!(arg(ARG_NO_LOCAL), Some(Value::Bool(true))),
                retain_as_published: matches!(arg(ARG_RAP), Some(Value::Bool(true))),
                retain_handling: RetainHandling::SendAtSubscribe,
            },
            id: match arg(ARG_ID) {
                Some(Value::I64(id)) => u32::try_from(*id).ok(),
                _ => None,
            },
        })
    }

    fn binding(&self, exchange: &str, queue: &str) -> BindingDecl {
        BindingDecl {
            exchange: exchange.into(),
            destination: queue.into(),
            destination_is_exchange: false,
            routing_key: self.key.clone(),
            args: self.args(),
        }
    }
}

/// A subscription served by a consumer of a named queue: a `$share` group's queue, or a
/// `$queue/<name>` subscription.
#[derive(Debug, Clone)]
pub(super) struct Shared {
    /// The full `$share/<group>/<filter>`.
    pub(super) full: String,
    pub(super) opts: SubscriptionOptions,
    pub(super) id: Option<u32>,
}

fn consume_spec(queue: String, tag: String, window: u16) -> ConsumeSpec {
    ConsumeSpec {
        queue,
        group: String::new(),
        prefetch: u32::from(window),
        no_ack: false,
        start: StartFrom::Committed,
        exclusive_partitions: false,
        tag,
        exclusive: false,
        ..ConsumeSpec::default()
    }
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Picks up an existing session: its subscriptions from the session queue's bindings.
    /// Returns whether there was one.
    pub(super) async fn restore(&mut self) -> CoreResult<bool> {
        let bindings = match self.session.queue_bindings(&self.queue) {
            Ok(b) => b,
            Err(CoreError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        for b in bindings
            .iter()
            .filter(|b| b.exchange == self.settings.exchange)
        {
            if let Some(s) = Sub::from_binding(b) {
                self.subs.insert(s.filter.clone(), s);
            }
        }
        self.consume_queue().await?;
        Ok(true)
    }

    /// Declares the session queue if needed and consumes it.
    /// Declares the session queue if it does not exist; it is routable on return.
    fn declare_session_queue(&mut self) -> CoreResult<()> {
        match self.session.queue_bindings(&self.queue) {
            Ok(_) => return Ok(()),
            Err(CoreError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut args = Vec::new();
        if self.expiry > 0 && self.expiry != u32::MAX {
            args.push((
                "x-expires".to_string(),
                Value::I64(i64::from(self.expiry) * 1000),
            ));
        }
        self.session.declare_queue_nowait(QueueDecl {
            name: self.queue.clone(),
            durable: self.expiry > 0,
            args,
            ..QueueDecl::default()
        })
    }

    /// Declares the session queue if needed and consumes it.
    pub(super) async fn ensure_queue(&mut self) -> CoreResult<()> {
        if self.queue_tag.is_some() {
            return Ok(());
        }
        self.declare_session_queue()?;
        self.consume_queue().await
    }

    async fn consume_queue(&mut self) -> CoreResult<()> {
        let (tag, _) = self
            .session
            .consume(consume_spec(
                self.queue.clone(),
                "mqtt-session".into(),
                self.window,
            ))
            .await?;
        self.queue_tag = Some(tag);
        Ok(())
    }

    pub(super) async fn subscribe(&mut self, s: Subscribe) -> Result<(), Close> {
        let id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.subscriptions.len());
        let mut retained = Vec::new();
        let replay = s
            .properties
            .user_properties
            .iter()
            .find(|(k, _)| k == "x-stream-offset")
            .map(|(_, v)| v.clone());
        for sub in s.subscriptions {
            if let Some(queue) = sub.filter.strip_prefix(QUEUE_PREFIX) {
                let r = self
                    .subscribe_queue(&sub.filter, queue, sub.options, id, replay.as_deref())
                    .await;
                codes.push(match r {
                    Ok(()) => ReasonCode(sub.options.qos as u8),
                    Err(e) => {
                        tracing::info!(client_id = %self.client_id, filter = %sub.filter, error = %e, "mqtt: subscription refused");
                        self.failure(match e {
                            CoreError::AccessRefused(_) => ReasonCode::NOT_AUTHORIZED,
                            CoreError::NotFound { .. } | CoreError::Invalid(_) => {
                                ReasonCode::TOPIC_FILTER_INVALID
                            }
                            _ => ReasonCode::UNSPECIFIED_ERROR,
                        })
                    }
                });
                continue;
            }
            let parsed = match topic::parse_filter(&sub.filter) {
                Ok(p) => p,
                Err(_) => {
                    codes.push(self.failure(ReasonCode::TOPIC_FILTER_INVALID));
                    continue;
                }
            };
            let r = match parsed.share_group {
                Some(group) => {
                    if sub.options.no_local {
                        return Err(Close::protocol(
                            ReasonCode::PROTOCOL_ERROR,
                            "No Local on a shared subscription",
                        ));
                    }
                    let (group, filter) = (group.to_string(), parsed.filter.to_string());
                    self.subscribe_shared(&sub.filter, &group, &filter, sub.options, id)
                        .await
                }
                None => {
                    self.subscribe_plain(&sub.filter, sub.options, id, &mut retained)
                        .await
                }
            };
            codes.push(match r {
                Ok(()) => ReasonCode(sub.options.qos as u8),
                Err(e) => {
                    tracing::info!(client_id = %self.client_id, filter = %sub.filter, error = %e, "mqtt: subscription refused");
                    self.failure(match e {
                        CoreError::AccessRefused(_) => ReasonCode::NOT_AUTHORIZED,
                        CoreError::Invalid(_) => ReasonCode::TOPIC_FILTER_INVALID,
                        CoreError::ResourceLimit(_) => ReasonCode::QUOTA_EXCEEDED,
                        _ => ReasonCode::UNSPECIFIED_ERROR,
                    })
                }
            });
        }
        self.io.send(&Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            properties: Default::default(),
            codes,
        }));
        for m in retained {
            self.send_out(m);
        }
        Ok(())
    }

    /// A SUBACK failure code: the 5.0 reason, or 0x80 in 3.1.1.
    fn failure(&self, v5: ReasonCode) -> ReasonCode {
        match self.io.version {
            ProtocolVersion::V5 => v5,
            ProtocolVersion::V311 => ReasonCode::UNSPECIFIED_ERROR,
        }
    }

    async fn subscribe_plain(
        &mut self,
        filter: &str,
        opts: SubscriptionOptions,
        id: Option<u32>,
        retained: &mut Vec<OutMsg>,
    ) -> CoreResult<()> {
        let key = topic::filter_to_amqp(filter).map_err(|e| CoreError::Invalid(e.to_string()))?;
        // Queue and binding first, both synchronous: the subscription catches what is published
        // from the moment the SUBSCRIBE is read, before the consumer is attached.
        if self.queue_tag.is_none() {
            self.declare_session_queue()?;
        }
        let sub = Sub {
            filter: filter.to_string(),
            key,
            opts,
            id,
        };
        let exchange = self.settings.exchange.clone();
        let old = self.subs.get(filter).cloned();
        let new_binding = sub.binding(&exchange, &self.queue);
        match &old {
            Some(o) if o.args() == sub.args() => {}
            _ => {
                self.session.bind(new_binding)?;
                if let Some(o) = &old {
                    self.session.unbind(o.binding(&exchange, &self.queue))?;
                }
            }
        }
        self.subs.insert(filter.to_string(), sub.clone());
        self.ensure_queue().await?;
        let send = match opts.retain_handling {
            RetainHandling::SendAtSubscribe => true,
            RetainHandling::SendIfNew => old.is_none(),
            RetainHandling::DoNotSend => false,
        };
        if send {
            for r in self.session.retained(&exchange, &sub.key)? {
                let name = match topic::amqp_to_name(&r.routing_key) {
                    Ok(n) if topic::matches(&n, filter) => n,
                    _ => continue,
                };
                let qos = mapping::published_qos(&r.message.properties).min(opts.qos);
                let age = (super::now_ms() - r.store_ts).max(0) as u64;
                let remaining = r.message.properties.ttl_ms.map(|t| t.saturating_sub(age));
                retained.push(OutMsg {
                    topic: name,
                    qos,
                    retain: true,
                    dup: false,
                    sub_ids: id.into_iter().collect(),
                    message: r.message,
                    remaining_ttl_ms: remaining,
                    delivery: None,
                    pos: None,
                });
            }
        }
        Ok(())
    }

    /// `$queue/<name>`: consume a queue by name, competing with its other consumers, or, with
    /// the user property `x-stream-offset`, replaying it from there in a group of its own.
    async fn subscribe_queue(
        &mut self,
        full: &str,
        queue: &str,
        opts: SubscriptionOptions,
        id: Option<u32>,
        replay: Option<&str>,
    ) -> CoreResult<()> {
        if queue.is_empty() {
            return Err(CoreError::Invalid("empty queue name".into()));
        }
        if self.shared.values().any(|s| s.full == full) {
            return Ok(());
        }
        let (group, start) = match replay {
            None => (String::new(), StartFrom::Committed),
            Some(v) => {
                let start = StartFrom::from_stream_offset(
                    &Value::Str(v.to_string()),
                    crate::core::now_ms(),
                )
                .ok_or_else(|| CoreError::Invalid(format!("invalid x-stream-offset {v:?}")))?;
                let group = format!(
                    "{}replay-{}-{queue}",
                    crate::core::EPHEMERAL_GROUP_PREFIX,
                    self.session.id()
                );
                (group, start)
            }
        };
        let mut spec = consume_spec(queue.to_string(), full.to_string(), self.window);
        spec.group = group;
        spec.start = start;
        let (tag, _) = self.session.consume(spec).await?;
        self.shared.insert(
            tag,
            Shared {
                full: full.to_string(),
                opts,
                id,
            },
        );
        Ok(())
    }

    async fn subscribe_shared(
        &mut self,
        full: &str,
        group: &str,
        filter: &str,
        opts: SubscriptionOptions,
        id: Option<u32>,
    ) -> CoreResult<()> {
        if let Some(s) = self.shared.values_mut().find(|s| s.full == full) {
            s.opts = opts;
            s.id = id;
            return Ok(());
        }
        let key = topic::filter_to_amqp(filter).map_err(|e| CoreError::Invalid(e.to_string()))?;
        let queue = format!("mqtt-share/{group}/{filter}");
        self.session
            .declare_queue(QueueDecl {
                name: queue.clone(),
                auto_delete: true,
                ..QueueDecl::default()
            })
            .await?;
        self.session.bind(BindingDecl {
            exchange: self.settings.exchange.clone(),
            destination: queue.clone(),
            destination_is_exchange: false,
            routing_key: key,
            args: Vec::new(),
        })?;
        let (tag, _) = self
            .session
            .consume(consume_spec(
                queue,
                format!("mqtt-share/{group}/{filter}"),
                self.window,
            ))
            .await?;
        self.shared.insert(
            tag,
            Shared {
                full: full.to_string(),
                opts,
                id,
            },
        );
        Ok(())
    }

    pub(super) async fn unsubscribe(&mut self, u: Unsubscribe) -> Result<(), Close> {
        let mut codes = Vec::with_capacity(u.filters.len());
        let exchange = self.settings.exchange.clone();
        for f in &u.filters {
            let shared: Option<ConsumerTag> = self
                .shared
                .iter()
                .find(|(_, s)| &s.full == f)
                .map(|(t, _)| t.clone());
            let code = if let Some(tag) = shared {
                self.shared.remove(&tag);
                let _ = self.session.close_consumer(&tag);
                ReasonCode::SUCCESS
            } else if let Some(s) = self.subs.remove(f) {
                match self.session.unbind(s.binding(&exchange, &self.queue)) {
                    Ok(()) => ReasonCode::SUCCESS,
                    Err(CoreError::AccessRefused(_)) => ReasonCode::NOT_AUTHORIZED,
                    Err(_) => ReasonCode::UNSPECIFIED_ERROR,
                }
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            };
            codes.push(code);
        }
        self.io.send(&Packet::UnsubAck(SubAck {
            packet_id: u.packet_id,
            properties: Default::default(),
            codes,
        }));
        Ok(())
    }
}
