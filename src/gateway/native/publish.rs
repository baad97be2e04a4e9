//! Publishing over the native protocol, and what a resource alarm does to it.
//!
//! While an alarm is on, every connection is told `Flow { blocked: true }` (the SDK then
//! holds its sends: its consumers go on acknowledging). A publish that arrives anyway is held,
//! not refused: the connection is not read until the alarm clears, then the publish is stored
//! and answered as usual. A batch held part way keeps what was stored and goes on from the
//! message that was refused.

use std::collections::VecDeque;

use super::{props_in, routes_out, wire, Body, Connection, Pending};
use crate::core::{CoreError, Message, PublishOptions, TxOutcome};

/// A publish request a resource alarm holds.
pub(super) struct Held {
    request_id: u32,
    what: HeldWhat,
}

enum HeldWhat {
    One(One),
    Batch(Batch),
    Half {
        exchange: String,
        routing_key: String,
        message: Message,
        group: String,
    },
    End {
        transaction_id: u64,
        outcome: TxOutcome,
    },
}

/// A `Publish`, in core terms.
struct One {
    exchange: String,
    routing_key: String,
    mandatory: bool,
    confirm: bool,
    opts: PublishOptions,
    message: Message,
}

/// A `PublishBatch`: the messages not stored yet, and the routes of those that were.
struct Batch {
    exchange: String,
    routing_key: String,
    rest: VecDeque<(Option<String>, Message, PublishOptions)>,
    routes: Vec<Vec<wire::Route>>,
    last: u64,
}

type Reply = Result<Option<Body>, CoreError>;

impl Connection {
    /// `Publish`: answered `Published` once stored (if `confirm`), `Returned` at once if it is
    /// mandatory and unroutable.
    pub(super) fn publish(&mut self, id: u32, p: wire::Publish) -> Reply {
        let one = One {
            opts: PublishOptions {
                deliver_at_ms: p.properties.deliver_at_ms,
                producer: p.producer,
            },
            message: Message {
                properties: props_in(p.properties),
                body: p.body,
            },
            exchange: p.exchange,
            routing_key: p.routing_key,
            mandatory: p.mandatory,
            confirm: p.confirm,
        };
        self.publish_one(id, one)
    }

    fn publish_one(&mut self, id: u32, one: One) -> Reply {
        let published = match self.session.publish_with(
            &one.exchange,
            &one.routing_key,
            &one.message,
            &one.opts,
        ) {
            Err(CoreError::Blocked(why)) => return self.hold(id, HeldWhat::One(one), &why),
            r => r?,
        };
        if published.unroutable() && one.mandatory {
            return Ok(Some(Body::Returned(wire::Returned {
                reply_code: wire::ErrorCode::NoRoute.code(),
                reply_text: "NO_ROUTE".into(),
            })));
        }
        if one.confirm {
            self.pending.push_back(Pending::One {
                seq: published.seq,
                request_id: id,
                routes: routes_out(published.routed),
                duplicate: published.duplicate,
            });
        }
        Ok(None)
    }

    /// `PublishBatch`: answered `PublishedBatch` once the last message is stored.
    pub(super) fn publish_batch(&mut self, id: u32, b: wire::PublishBatch) -> Reply {
        let n = b.messages.len();
        let rest = b
            .messages
            .into_iter()
            .map(|m| {
                let opts = PublishOptions {
                    deliver_at_ms: m.properties.deliver_at_ms,
                    ..PublishOptions::default()
                };
                let msg = Message {
                    properties: props_in(m.properties),
                    body: m.body,
                };
                (m.routing_key, msg, opts)
            })
            .collect();
        let batch = Batch {
            exchange: b.exchange,
            routing_key: b.routing_key,
            rest,
            routes: Vec::with_capacity(n),
            last: 0,
        };
        self.publish_rest(id, batch)
    }

    fn publish_rest(&mut self, id: u32, mut b: Batch) -> Reply {
        while let Some((rk, msg, opts)) = b.rest.pop_front() {
            let key = rk.as_deref().unwrap_or(&b.routing_key);
            match self.session.publish_with(&b.exchange, key, &msg, &opts) {
                Ok(p) => {
                    b.last = p.seq;
                    b.routes.push(routes_out(p.routed));
                }
                Err(CoreError::Blocked(why)) => {
                    b.rest.push_front((rk, msg, opts));
                    return self.hold(id, HeldWhat::Batch(b), &why);
                }
                Err(e) => return Err(e),
            }
        }
        if b.last == 0 {
            return Ok(Some(Body::PublishedBatch(wire::PublishedBatch {
                results: b.routes,
            })));
        }
        self.pending.push_back(Pending::Batch {
            seq: b.last,
            request_id: id,
            routes: b.routes,
        });
        Ok(None)
    }

    /// `PublishHalf`: a transactional half message, answered `HalfStored` once stored.
    pub(super) fn publish_half(&mut self, id: u32, h: wire::PublishHalf) -> Reply {
        let message = Message {
            properties: props_in(h.properties),
            body: h.body,
        };
        self.half(id, h.exchange, h.routing_key, message, h.group)
    }

    fn half(
        &mut self,
        id: u32,
        exchange: String,
        routing_key: String,
        message: Message,
        group: String,
    ) -> Reply {
        match self
            .session
            .publish_half(&exchange, &routing_key, &message, &group)
        {
            Ok((transaction_id, seq)) => {
                self.pending.push_back(Pending::Half {
                    seq,
                    request_id: id,
                    transaction_id,
                });
                Ok(None)
            }
            Err(CoreError::Blocked(why)) => {
                let what = HeldWhat::Half {
                    exchange,
                    routing_key,
                    message,
                    group,
                };
                self.hold(id, what, &why)
            }
            Err(e) => Err(e),
        }
    }

    /// `EndTransaction`: a commit stores the message (answered once stored when `id` is not 0).
    pub(super) fn end_transaction(&mut self, id: u32, e: wire::EndTransaction) -> Reply {
        let outcome = match e.state {
            wire::TransactionState::Commit => TxOutcome::Commit,
            wire::TransactionState::Rollback => TxOutcome::Rollback,
            wire::TransactionState::Unknown => TxOutcome::Unknown,
        };
        self.end(id, e.transaction_id, outcome)
    }

    fn end(&mut self, id: u32, transaction_id: u64, outcome: TxOutcome) -> Reply {
        match self.session.end_transaction(transaction_id, outcome) {
            Ok(p) => {
                if id != 0 {
                    self.pending.push_back(Pending::One {
                        seq: p.seq,
                        request_id: id,
                        routes: routes_out(p.routed),
                        duplicate: false,
                    });
                }
                Ok(None)
            }
            Err(CoreError::Blocked(why)) => {
                let what = HeldWhat::End {
                    transaction_id,
                    outcome,
                };
                self.hold(id, what, &why)
            }
            Err(e) => Err(e),
        }
    }

    /// Holds a publish request until the alarm clears; tells the client publishing is paused
    /// if it has not been told yet.
    fn hold(&mut self, request_id: u32, what: HeldWhat, why: &str) -> Reply {
        tracing::debug!(why, "publish held by a resource alarm");
        self.held = Some(Box::new(Held { request_id, what }));
        if !self.blocked {
            self.blocked = true;
            self.conn.push(
                0,
                wire::Flow {
                    blocked: true,
                    reason: why.into(),
                },
            );
        }
        Ok(None)
    }

    /// The alarm cleared: carries out the held request and answers it. The caller goes on
    /// with what the client sent meanwhile.
    pub(super) fn resume(&mut self) {
        let Some(h) = self.held.take() else { return };
        let id = h.request_id;
        let r = match h.what {
            HeldWhat::One(one) => self.publish_one(id, one),
            HeldWhat::Batch(b) => self.publish_rest(id, b),
            HeldWhat::Half {
                exchange,
                routing_key,
                message,
                group,
            } => self.half(id, exchange, routing_key, message, group),
            HeldWhat::End {
                transaction_id,
                outcome,
            } => self.end(id, transaction_id, outcome),
        };
        self.reply(id, r);
    }
}
