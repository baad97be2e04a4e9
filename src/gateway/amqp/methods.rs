//! The methods of an open channel: exchange, queue, basic, confirm and tx classes.

use junction_amqp::amq_protocol::protocol::{
    access, basic, channel, confirm, exchange, queue, tx, AMQPClass,
};
use junction_amqp::amq_protocol::types::{FieldTable, ShortString};
use junction_amqp::reply_code as rc;

use super::channel::Channel;
use super::error::AmqpError;
use super::mapping::table_in;
use crate::core::{BindingDecl, ConsumeSpec, ExchangeDecl, ExchangeKind, QueueDecl, StartFrom};

type R = Result<(), AmqpError>;

fn ids(m: &AMQPClass) -> (u16, u16) {
    (m.get_amqp_class_id(), m.get_amqp_method_id())
}

impl Channel {
    pub(super) async fn on_method(&mut self, m: AMQPClass) -> R {
        let (class_id, method_id) = ids(&m);
        let core = |e: crate::core::CoreError| AmqpError::core(&e, class_id, method_id);
        match m {
            AMQPClass::Exchange(x) => self.exchange(x).map_err(core),
            AMQPClass::Queue(q) => self.queue(q).await.map_err(core),
            AMQPClass::Basic(b) => self.basic(b).await,
            AMQPClass::Confirm(confirm::AMQPMethod::Select(s)) => {
                self.confirm_select()?;
                if !s.nowait {
                    self.method(&AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(
                        confirm::SelectOk {},
                    )));
                }
                Ok(())
            }
            AMQPClass::Tx(t) => self.tx(t).await,
            AMQPClass::Channel(channel::AMQPMethod::Flow(f)) => {
                if !f.active {
                    return Err(AmqpError::new(
                        rc::NOT_IMPLEMENTED,
                        "NOT_IMPLEMENTED - active=false",
                        class_id,
                        method_id,
                    ));
                }
                self.method(&AMQPClass::Channel(channel::AMQPMethod::FlowOk(
                    channel::FlowOk { active: true },
                )));
                Ok(())
            }
            AMQPClass::Channel(channel::AMQPMethod::FlowOk(_)) => Ok(()),
            // Deprecated in 0-9-1; RabbitMQ answers it without checking anything.
            AMQPClass::Access(access::AMQPMethod::Request(_)) => {
                self.method(&AMQPClass::Access(access::AMQPMethod::RequestOk(
                    access::RequestOk {},
                )));
                Ok(())
            }
            _ => Err(AmqpError::new(
                rc::COMMAND_INVALID,
                "COMMAND_INVALID - unexpected method on an open channel",
                class_id,
                method_id,
            )),
        }
    }

    fn exchange(&mut self, m: exchange::AMQPMethod) -> Result<(), crate::core::CoreError> {
        use crate::core::CoreError;
        let (reply, nowait) = match m {
            exchange::AMQPMethod::Declare(d) => {
                let kind = ExchangeKind::parse(d.kind.as_str()).ok_or_else(|| {
                    CoreError::Invalid(format!("unknown exchange type '{}'", d.kind.as_str()))
                });
                let kind = match kind {
                    Ok(k) => k,
                    // A passive declare does not look at the type.
                    Err(_) if d.passive => ExchangeKind::Direct,
                    Err(e) => return Err(e),
                };
                self.session.declare_exchange(ExchangeDecl {
                    name: d.exchange.as_str().to_string(),
                    kind,
                    durable: d.durable,
                    auto_delete: d.auto_delete,
                    internal: d.internal,
                    passive: d.passive,
                    args: table_in(&d.arguments),
                })?;
                (
                    exchange::AMQPMethod::DeclareOk(exchange::DeclareOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Delete(d) => {
                self.session
                    .delete_exchange(d.exchange.as_str(), d.if_unused)?;
                (
                    exchange::AMQPMethod::DeleteOk(exchange::DeleteOk {}),
                    d.nowait,
                )
            }
            exchange::AMQPMethod::Bind(b) => {
                self.session.bind(binding(
                    &b.source,
                    b.destination.as_str().to_string(),
                    true,
                    &b.routing_key,
                    &b.arguments,
                ))?;
                (exchange::AMQPMethod::BindOk(exchange::BindOk {}), b.nowait)
            }
            exchange::AMQPMethod::Unbind(b) => {
                self.session.unbind(binding(
                    &b.source,
                    b.destination.as_str().to_string(),
                    true,
                    &b.routing_key,
                    &b.arguments,
                ))?;
                (
                    exchange::AMQPMethod::UnbindOk(exchange::UnbindOk {}),
                    b.nowait,
                )
            }
            _ => return Ok(()),
        };
        if !nowait {
            self.method(&AMQPClass::Exchange(reply));
        }
        Ok(())
    }

    /// A queue name from a method: "" means the channel's last declared queue.
    fn queue_name(&self, name: &ShortString) -> String {
        if name.as_str().is_empty() {
            self.last_queue.clone()
        } else {
            name.as_str().to_string()
        }
    }

    async fn queue(&mut self, m: queue::AMQPMethod) -> Result<(), crate::core::CoreError> {
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let (reply, nowait) = match m {
            queue::AMQPMethod::Declare(d) => {
                let info = self
                    .session
                    .declare_queue(QueueDecl {
                        name: d.queue.as_str().to_string(),
                        partitions: 1,
                        durable: d.durable,
                        exclusive: d.exclusive,
                        auto_delete: d.auto_delete,
                        passive: d.passive,
                        args: table_in(&d.arguments),
                    })
                    .await?;
                self.last_queue = info.name.clone();
                let ok = queue::DeclareOk {
                    queue: junction_amqp::short_string_lossy(&info.name),
                    message_count: count(info.messages),
                    consumer_count: info.consumers,
                };
                (queue::AMQPMethod::DeclareOk(ok), d.nowait)
            }
            queue::AMQPMethod::Bind(b) => {
                self.session.bind(binding(
                    &b.exchange,
                    self.queue_name(&b.queue),
                    false,
                    &b.routing_key,
                    &b.arguments,
                ))?;
                (queue::AMQPMethod::BindOk(queue::BindOk {}), b.nowait)
            }
            queue::AMQPMethod::Unbind(b) => {
                self.session.unbind(binding(
                    &b.exchange,
                    self.queue_name(&b.queue),
                    false,
                    &b.routing_key,
                    &b.arguments,
                ))?;
                (queue::AMQPMethod::UnbindOk(queue::UnbindOk {}), false)
            }
            queue::AMQPMethod::Purge(p) => {
                let n = self.session.purge_queue(&self.queue_name(&p.queue)).await?;
                let ok = queue::PurgeOk {
                    message_count: count(n),
                };
                (queue::AMQPMethod::PurgeOk(ok), p.nowait)
            }
            queue::AMQPMethod::Delete(d) => {
                let name = self.queue_name(&d.queue);
                let n = self
                    .session
                    .delete_queue(&name, d.if_unused, d.if_empty)
                    .await?;
                let ok = queue::DeleteOk {
                    message_count: count(n),
                };
                (queue::AMQPMethod::DeleteOk(ok), d.nowait)
            }
            _ => return Ok(()),
        };
        if !nowait {
            self.method(&AMQPClass::Queue(reply));
        }
        Ok(())
    }

    async fn basic(&mut self, m: basic::AMQPMethod) -> R {
        let (class_id, method_id) = ids(&AMQPClass::Basic(m.clone()));
        let core = |e: crate::core::CoreError| AmqpError::core(&e, class_id, method_id);
        match m {
            basic::AMQPMethod::Qos(q) => {
                self.prefetch = u32::from(q.prefetch_count);
                if q.global {
                    // No channel-wide window in the core: apply to every consumer of the channel.
                    for tag in self.consumers.clone() {
                        let _ = self.session.set_prefetch(&tag, self.prefetch);
                    }
                }
                self.method(&AMQPClass::Basic(basic::AMQPMethod::QosOk(basic::QosOk {})));
                Ok(())
            }
            basic::AMQPMethod::Consume(c) => self.consume(c).await.map_err(core),
            basic::AMQPMethod::Cancel(c) => {
                let tag = c.consumer_tag.as_str().to_string();
                // Unknown tags are not an error (RabbitMQ answers cancel-ok anyway).
                let _ = self.session.cancel(&tag);
                self.consumers.retain(|t| *t != tag);
                if !c.nowait {
                    self.method(&AMQPClass::Basic(basic::AMQPMethod::CancelOk(
                        basic::CancelOk {
                            consumer_tag: c.consumer_tag,
                        },
                    )));
                }
                Ok(())
            }
            basic::AMQPMethod::Get(g) => self.get(g).await.map_err(core),
            m @ (basic::AMQPMethod::Ack(_)
            | basic::AMQPMethod::Nack(_)
            | basic::AMQPMethod::Reject(_)) => {
                if self.buffer_settle(&m) {
                    return Ok(());
                }
                self.settle(&m)
            }
            basic::AMQPMethod::Recover(r) => {
                self.recover(r.requeue);
                self.method(&AMQPClass::Basic(basic::AMQPMethod::RecoverOk(
                    basic::RecoverOk {},
                )));
                Ok(())
            }
            basic::AMQPMethod::RecoverAsync(r) => {
                self.recover(r.requeue);
                Ok(())
            }
            basic::AMQPMethod::CancelOk(_) => Ok(()),
            _ => Err(AmqpError::new(
                rc::COMMAND_INVALID,
                "COMMAND_INVALID - unexpected basic method",
                class_id,
                method_id,
            )),
        }
    }

    async fn consume(&mut self, c: basic::Consume) -> Result<(), crate::core::CoreError> {
        let queue = self.queue_name(&c.queue);
        let tag = if c.consumer_tag.as_str().is_empty() {
            format!("amq.ctag-{:016x}", rand::random::<u64>())
        } else {
            c.consumer_tag.as_str().to_string()
        };
        if self.consumers.contains(&tag) {
            return Err(crate::core::CoreError::Invalid(format!(
                "NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"
            )));
        }
        // `x-stream-offset` (RabbitMQ streams): this consumer replays the queue from there in
        // a group of its own, leaving the queue's shared consumers alone.
        let (group, start) = match c
            .arguments
            .inner()
            .get(&ShortString::from("x-stream-offset"))
        {
            None => (String::new(), StartFrom::Committed),
            Some(v) => {
                let v = super::mapping::value_in(v);
                let start =
                    StartFrom::from_stream_offset(&v, crate::core::now_ms()).ok_or_else(|| {
                        crate::core::CoreError::PreconditionFailed(format!(
                            "invalid x-stream-offset {v:?}"
                        ))
                    })?;
                let group = format!(
                    "{}replay-{}-{tag}",
                    crate::core::EPHEMERAL_GROUP_PREFIX,
                    self.session.id()
                );
                (group, start)
            }
        };
        // `x-selector` (SQL92) or `x-stream-filter` (tags) consume arguments.
        let filter = crate::core::filter::Filter::from_args(|k| {
            c.arguments
                .inner()
                .get(&ShortString::from(k))
                .map(super::mapping::value_in)
        })?;
        let (tag, _) = self
            .session
            .consume(ConsumeSpec {
                queue,
                group,
                prefetch: self.prefetch,
                no_ack: c.no_ack,
                start,
                exclusive_partitions: false,
                tag,
                exclusive: c.exclusive,
                filter: filter.map(std::sync::Arc::new),
                ..ConsumeSpec::default()
            })
            .await?;
        self.consumers.push(tag.to_string());
        if !c.nowait {
            self.method(&AMQPClass::Basic(basic::AMQPMethod::ConsumeOk(
                basic::ConsumeOk {
                    consumer_tag: junction_amqp::short_string_lossy(&tag),
                },
            )));
        }
        Ok(())
    }

    async fn get(&mut self, g: basic::Get) -> Result<(), crate::core::CoreError> {
        let queue = self.queue_name(&g.queue);
        let Some(d) = self.session.get(&queue, g.no_ack).await? else {
            self.method(&AMQPClass::Basic(basic::AMQPMethod::GetEmpty(
                basic::GetEmpty {},
            )));
            return Ok(());
        };
        let left = self
            .session
            .queue_info(&queue)
            .await
            .map_or(0, |i| i.messages);
        let tag = self.next_tag;
        self.next_tag += 1;
        if !g.no_ack {
            self.tags.insert(tag, d.id);
        }
        let header = super::mapping::header_out(&d.message.properties, d.message.body.len() as u64);
        self.get_ok(tag, &d, left, &header);
        Ok(())
    }

    async fn tx(&mut self, t: tx::AMQPMethod) -> R {
        let reply = match t {
            tx::AMQPMethod::Select(_) => {
                self.tx_select()?;
                tx::AMQPMethod::SelectOk(tx::SelectOk {})
            }
            tx::AMQPMethod::Commit(_) => {
                self.tx_end(true, 20).await?;
                tx::AMQPMethod::CommitOk(tx::CommitOk {})
            }
            tx::AMQPMethod::Rollback(_) => {
                self.tx_end(false, 30).await?;
                tx::AMQPMethod::RollbackOk(tx::RollbackOk {})
            }
            _ => return Ok(()),
        };
        self.method(&AMQPClass::Tx(reply));
        Ok(())
    }

    /// `basic.recover`: every unacked delivery of the channel goes back to its queue.
    fn recover(&mut self, _requeue: bool) {
        let ids: Vec<u64> = std::mem::take(&mut self.tags).into_values().collect();
        self.settle_ids(&ids, crate::core::Settle::Requeue);
    }
}

/// The core binding for an AMQP (un)bind: `source` exchange to a queue or exchange.
fn binding(
    source: &ShortString,
    destination: String,
    destination_is_exchange: bool,
    routing_key: &ShortString,
    arguments: &FieldTable,
) -> BindingDecl {
    BindingDecl {
        exchange: source.as_str().to_string(),
        destination,
        destination_is_exchange,
        routing_key: routing_key.as_str().to_string(),
        args: table_in(arguments),
    }
}
