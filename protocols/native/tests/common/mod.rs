//! proptest strategies for every message, shared by the integration tests.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use junction_native::*;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::{BoxedStrategy, Union};

/// Short strings, Unicode included (multi-byte UTF-8 exercises the byte length prefix).
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[a-z0-9./#*-]{1,12}", "\\PC{0,6}"]
}

pub fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

pub fn map() -> impl Strategy<Value = Map> {
    vec((string(), blob()), 0..4)
}

pub fn properties() -> impl Strategy<Value = Properties> {
    let a = (
        option::of(string()),
        option::of(blob()),
        option::of(string()),
        option::of(string()),
        option::of(string()),
        option::of(any::<i64>()),
        option::of(any::<u64>()),
        option::of(any::<u8>()),
    );
    let b = (
        any::<bool>(),
        option::of(string()),
        vec(string(), 0..3),
        option::of(string()),
        option::of(string()),
        option::of(any::<i64>()),
        map(),
    );
    (a, b).prop_map(
        |(
            (
                message_id,
                correlation_id,
                reply_to,
                content_type,
                content_encoding,
                timestamp_ms,
                ttl_ms,
                priority,
            ),
            (persistent, user_id, keys, tag, sharding_key, deliver_at_ms, headers),
        )| Properties {
            message_id,
            correlation_id,
            reply_to,
            content_type,
            content_encoding,
            timestamp_ms,
            ttl_ms,
            priority,
            persistent,
            user_id,
            keys,
            tag,
            sharding_key,
            deliver_at_ms,
            headers,
        },
    )
}

pub fn error_code() -> impl Strategy<Value = ErrorCode> {
    // `from_code` never yields `Other` for a named code, so these round-trip exactly.
    prop_oneof![
        select(ErrorCode::ALL),
        any::<u16>().prop_map(ErrorCode::from_code)
    ]
}

pub fn route() -> impl Strategy<Value = Route> {
    (string(), any::<u16>(), any::<u64>()).prop_map(|(queue, partition, offset)| Route {
        queue,
        partition,
        offset,
    })
}

pub fn start_position() -> impl Strategy<Value = StartPosition> {
    prop_oneof![
        Just(StartPosition::Committed),
        Just(StartPosition::Earliest),
        Just(StartPosition::Latest),
        any::<u64>().prop_map(StartPosition::Offset),
        any::<i64>().prop_map(StartPosition::Time),
    ]
}

pub fn binding() -> impl Strategy<Value = Binding> {
    (string(), string(), string(), map(), any::<bool>()).prop_map(
        |(destination, exchange, routing_key, args, destination_is_exchange)| Binding {
            destination,
            exchange,
            routing_key,
            args,
            destination_is_exchange,
        },
    )
}

fn ids() -> impl Strategy<Value = Vec<u64>> {
    vec(any::<u64>(), 0..5)
}

fn partitions() -> impl Strategy<Value = Vec<u16>> {
    vec(any::<u16>(), 0..5)
}

/// Every `Body` variant, each equally likely.
pub fn body() -> impl Strategy<Value = Body> {
    let arms: Vec<BoxedStrategy<Body>> = vec![
        (
            string(),
            string(),
            string(),
            string(),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_map(
                |(client_id, username, password, vhost, heartbeat_ms, max_frame)| {
                    Body::Hello(Hello {
                        client_id,
                        username,
                        password,
                        vhost,
                        heartbeat_ms,
                        max_frame,
                    })
                },
            )
            .boxed(),
        (string(), string(), any::<u64>(), any::<u32>(), any::<u32>())
            .prop_map(|(server, version, session_id, heartbeat_ms, max_frame)| {
                Body::Welcome(Welcome {
                    server,
                    version,
                    session_id,
                    heartbeat_ms,
                    max_frame,
                })
            })
            .boxed(),
        Just(Body::Heartbeat).boxed(),
        (any::<u16>(), string())
            .prop_map(|(code, reason)| Body::Close(Close { code, reason }))
            .boxed(),
        Just(Body::CloseOk).boxed(),
        Just(Body::Ok).boxed(),
        (error_code(), string())
            .prop_map(|(code, message)| Body::Error(ErrorResponse { code, message }))
            .boxed(),
        (
            string(),
            select(&ExchangeKind::ALL[..]),
            any::<[bool; 4]>(),
            map(),
        )
            .prop_map(
                |(name, kind, [durable, auto_delete, internal, passive], args)| {
                    Body::DeclareExchange(DeclareExchange {
                        name,
                        kind,
                        durable,
                        auto_delete,
                        internal,
                        passive,
                        args,
                    })
                },
            )
            .boxed(),
        (string(), any::<bool>())
            .prop_map(|(name, if_unused)| Body::DeleteExchange(DeleteExchange { name, if_unused }))
            .boxed(),
        (string(), any::<u16>(), any::<[bool; 4]>(), map())
            .prop_map(
                |(name, partitions, [durable, exclusive, auto_delete, passive], args)| {
                    Body::DeclareQueue(DeclareQueue {
                        name,
                        partitions,
                        durable,
                        exclusive,
                        auto_delete,
                        passive,
                        args,
                    })
                },
            )
            .boxed(),
        (string(), any::<u16>(), any::<u64>(), any::<u32>())
            .prop_map(|(name, partitions, messages, consumers)| {
                Body::QueueDeclared(QueueDeclared {
                    name,
                    partitions,
                    messages,
                    consumers,
                })
            })
            .boxed(),
        (string(), any::<bool>(), any::<bool>())
            .prop_map(|(name, if_unused, if_empty)| {
                Body::DeleteQueue(DeleteQueue {
                    name,
                    if_unused,
                    if_empty,
                })
            })
            .boxed(),
        string()
            .prop_map(|name| Body::PurgeQueue(PurgeQueue { name }))
            .boxed(),
        any::<u64>()
            .prop_map(|messages| Body::Deleted(Deleted { messages }))
            .boxed(),
        binding().prop_map(Body::Bind).boxed(),
        binding().prop_map(Body::Unbind).boxed(),
        (
            string(),
            string(),
            any::<bool>(),
            any::<bool>(),
            properties(),
            blob(),
        )
            .prop_map(
                |(exchange, routing_key, mandatory, confirm, properties, body)| {
                    Body::Publish(Publish {
                        producer: (body.len() % 2 == 1)
                            .then(|| (routing_key.clone(), body.len() as u64)),
                        exchange,
                        routing_key,
                        mandatory,
                        confirm,
                        properties,
                        body,
                    })
                },
            )
            .boxed(),
        vec(route(), 0..4)
            .prop_map(|results| {
                let duplicate = results.len() == 1;
                Body::Published(Published { results, duplicate })
            })
            .boxed(),
        (any::<u16>(), string())
            .prop_map(|(reply_code, reply_text)| {
                Body::Returned(Returned {
                    reply_code,
                    reply_text,
                })
            })
            .boxed(),
        (
            string(),
            string(),
            any::<bool>(),
            vec(
                (option::of(string()), properties(), blob()).prop_map(
                    |(routing_key, properties, body)| BatchMessage {
                        routing_key,
                        properties,
                        body,
                    },
                ),
                0..4,
            ),
        )
            .prop_map(|(exchange, routing_key, mandatory, messages)| {
                Body::PublishBatch(PublishBatch {
                    exchange,
                    routing_key,
                    mandatory,
                    messages,
                })
            })
            .boxed(),
        vec(vec(route(), 0..3), 0..4)
            .prop_map(|results| Body::PublishedBatch(PublishedBatch { results }))
            .boxed(),
        (any::<bool>(), string())
            .prop_map(|(blocked, reason)| Body::Flow(Flow { blocked, reason }))
            .boxed(),
        (string(), string(), string(), properties(), blob())
            .prop_map(|(exchange, routing_key, group, properties, body)| {
                Body::PublishHalf(PublishHalf {
                    exchange,
                    routing_key,
                    group,
                    properties,
                    body,
                })
            })
            .boxed(),
        any::<u64>()
            .prop_map(|transaction_id| Body::HalfStored(HalfStored { transaction_id }))
            .boxed(),
        (
            any::<u64>(),
            select(vec![
                TransactionState::Unknown,
                TransactionState::Commit,
                TransactionState::Rollback,
            ]),
        )
            .prop_map(|(transaction_id, state)| {
                Body::EndTransaction(EndTransaction {
                    transaction_id,
                    state,
                })
            })
            .boxed(),
        (
            any::<u64>(),
            string(),
            any::<u32>(),
            string(),
            string(),
            properties(),
            blob(),
        )
            .prop_map(
                |(transaction_id, group, checks, exchange, routing_key, properties, body)| {
                    Body::CheckTransaction(CheckTransaction {
                        transaction_id,
                        group,
                        checks,
                        exchange,
                        routing_key,
                        properties,
                        body,
                    })
                },
            )
            .boxed(),
        string()
            .prop_map(|group| Body::RegisterTransactionGroup(RegisterTransactionGroup { group }))
            .boxed(),
        (
            (
                string(),
                string(),
                any::<u32>(),
                any::<bool>(),
                start_position(),
                any::<bool>(),
            ),
            (
                string(),
                string(),
                any::<bool>(),
                any::<bool>(),
                proptest::option::of((
                    any::<u32>(),
                    proptest::collection::vec(any::<u64>(), 0..4),
                    any::<u64>(),
                )),
            ),
        )
            .prop_map(
                |(
                    (queue, group, prefetch, no_ack, start, exclusive_partitions),
                    (tags, sql, ordered, broadcast, retry),
                )| {
                    Body::Subscribe(Subscribe {
                        queue,
                        group,
                        prefetch,
                        no_ack,
                        start,
                        exclusive_partitions,
                        tags,
                        sql,
                        ordered,
                        broadcast,
                        retry: retry.map(|(max_attempts, backoff_ms, consume_timeout_ms)| {
                            junction_native::RetryPolicy {
                                max_attempts,
                                backoff_ms,
                                consume_timeout_ms,
                            }
                        }),
                    })
                },
            )
            .boxed(),
        (any::<u32>(), partitions())
            .prop_map(|(consumer_id, partitions)| {
                Body::Subscribed(Subscribed {
                    consumer_id,
                    partitions,
                })
            })
            .boxed(),
        any::<u32>()
            .prop_map(|consumer_id| Body::Unsubscribe(Unsubscribe { consumer_id }))
            .boxed(),
        (any::<u32>(), ids())
            .prop_map(|(consumer_id, delivery_ids)| {
                Body::Ack(Ack {
                    consumer_id,
                    delivery_ids,
                })
            })
            .boxed(),
        (any::<u32>(), ids(), any::<bool>())
            .prop_map(|(consumer_id, delivery_ids, requeue)| {
                Body::Nack(Nack {
                    consumer_id,
                    delivery_ids,
                    requeue,
                })
            })
            .boxed(),
        (any::<u32>(), any::<u32>())
            .prop_map(|(consumer_id, prefetch)| {
                Body::SetPrefetch(SetPrefetch {
                    consumer_id,
                    prefetch,
                })
            })
            .boxed(),
        (
            (
                any::<u32>(),
                any::<u64>(),
                string(),
                any::<u16>(),
                any::<u64>(),
                any::<bool>(),
            ),
            (
                any::<u32>(),
                any::<i64>(),
                string(),
                string(),
                properties(),
                blob(),
            ),
        )
            .prop_map(
                |(
                    (consumer_id, delivery_id, queue, partition, offset, redelivered),
                    (delivery_count, store_ts, exchange, routing_key, properties, body),
                )| {
                    Body::Deliver(Deliver {
                        consumer_id,
                        delivery_id,
                        queue,
                        partition,
                        offset,
                        redelivered,
                        delivery_count,
                        store_ts,
                        exchange,
                        routing_key,
                        properties,
                        body,
                    })
                },
            )
            .boxed(),
        (any::<u32>(), partitions())
            .prop_map(|(consumer_id, partitions)| {
                Body::Assignment(Assignment {
                    consumer_id,
                    partitions,
                })
            })
            .boxed(),
        (any::<u32>(), string())
            .prop_map(|(consumer_id, reason)| {
                Body::Cancelled(Cancelled {
                    consumer_id,
                    reason,
                })
            })
            .boxed(),
        (string(), any::<u16>(), any::<u64>(), any::<u32>())
            .prop_map(|(queue, partition, offset, max)| {
                Body::Pull(Pull {
                    queue,
                    partition,
                    offset,
                    max,
                })
            })
            .boxed(),
        (
            vec(
                (any::<u64>(), any::<i64>(), properties(), blob()).prop_map(
                    |(offset, store_ts, properties, body)| PulledMessage {
                        offset,
                        store_ts,
                        properties,
                        body,
                    },
                ),
                0..3,
            ),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(messages, next_offset, min_offset, end_offset)| {
                Body::Pulled(Pulled {
                    messages,
                    next_offset,
                    min_offset,
                    end_offset,
                })
            })
            .boxed(),
        (string(), any::<u16>(), any::<i64>())
            .prop_map(|(queue, partition, time_ms)| {
                Body::QueryOffset(QueryOffset {
                    queue,
                    partition,
                    time_ms,
                })
            })
            .boxed(),
        any::<u64>()
            .prop_map(|offset| Body::Offset(Offset { offset }))
            .boxed(),
        (
            prop_oneof![
                string().prop_map(LookupBy::Id),
                (string(), any::<i64>(), any::<i64>()).prop_map(|(key, begin_ms, end_ms)| {
                    LookupBy::Key {
                        key,
                        begin_ms,
                        end_ms,
                    }
                }),
                (string(), any::<i64>(), any::<i64>()).prop_map(|(queue, begin_ms, end_ms)| {
                    LookupBy::Time {
                        queue,
                        begin_ms,
                        end_ms,
                    }
                }),
            ],
            any::<u32>(),
        )
            .prop_map(|(by, max)| Body::Lookup(Lookup { by, max }))
            .boxed(),
        vec(
            (
                any::<u64>(),
                any::<i64>(),
                any::<i64>(),
                string(),
                string(),
                vec((string(), any::<u16>(), any::<u64>()), 0..3),
                vec(any::<u8>(), 0..16),
            ),
            0..3,
        )
        .prop_map(|ms| {
            Body::Found(Found {
                messages: ms
                    .into_iter()
                    .map(|(c, s, b, exchange, routing_key, pos, body)| FoundMessage {
                        commitlog_offset: c,
                        store_ts: s,
                        born_ts: b,
                        exchange,
                        routing_key,
                        positions: pos
                            .into_iter()
                            .map(|(queue, partition, offset)| Route {
                                queue,
                                partition,
                                offset,
                            })
                            .collect(),
                        properties: Properties::default(),
                        body: Bytes::from(body),
                    })
                    .collect(),
            })
        })
        .boxed(),
        (string(), any::<u64>())
            .prop_map(|(queue, max)| Body::Redrive(Redrive { queue, max }))
            .boxed(),
    ];
    assert_eq!(arms.len(), Opcode::ALL.len(), "one strategy per opcode");
    Union::new(arms)
}

pub fn frame() -> impl Strategy<Value = Frame> {
    (any::<u32>(), body()).prop_map(|(request_id, body)| Frame { request_id, body })
}

pub fn encoded(frame: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode(frame, &mut out).expect("valid frames encode");
    out
}
