//! Property tests: encode -> decode round trips for arbitrary packets of both versions, and
//! decoding arbitrary or corrupted bytes never panics.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

use super::{connected, enc};
use crate::properties::{allowed, Ctx};
use crate::ProtocolVersion::{V311, V5};
use crate::*;

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 é/_-]{0,12}"
}

fn bin() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..16).prop_map(Bytes::from)
}

fn topic() -> impl Strategy<Value = String> {
    vec("[a-z$]{0,4}", 1..4)
        .prop_map(|l| l.join("/"))
        .prop_filter("non-empty", |t| !t.is_empty())
}

fn filter() -> impl Strategy<Value = String> {
    (
        vec(prop_oneof!["[a-z]{0,4}", Just("+".to_owned())], 1..4),
        any::<bool>(),
        of("[a-z]{1,4}"),
    )
        .prop_map(|(levels, hash, share)| {
            let mut f = levels.join("/");
            if f.is_empty() {
                f.push('a');
            }
            if hash {
                f.push_str("/#");
            }
            match share {
                Some(g) => format!("$share/{g}/{f}"),
                None => f,
            }
        })
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn flag() -> impl Strategy<Value = Option<u8>> {
    of(0u8..=1)
}

fn nz16() -> impl Strategy<Value = Option<u16>> {
    of(1u16..)
}

/// Arbitrary properties, masked to those allowed in `ctx`.
fn props(ctx: Ctx) -> BoxedStrategy<Properties> {
    let a = (
        flag(),
        of(any::<u32>()),
        of(text()),
        of(text()),
        of(bin()),
        vec(1u32..=MAX_VARINT, 0..3),
        of(any::<u32>()),
        of(text()),
        of(any::<u16>()),
    );
    let b = (
        of(text()),
        of(bin()),
        flag(),
        of(any::<u32>()),
        flag(),
        of(text()),
        of(text()),
        of(text()),
        nz16(),
    );
    let c = (
        of(any::<u16>()),
        nz16(),
        flag(),
        flag(),
        vec((text(), text()), 0..3),
        of(1u32..),
        flag(),
        flag(),
        flag(),
    );
    (a, b, c)
        .prop_map(move |(a, b, c)| {
            let mut p = Properties {
                payload_format_indicator: a.0,
                message_expiry_interval: a.1,
                content_type: a.2,
                response_topic: a.3,
                correlation_data: a.4,
                subscription_identifiers: a.5,
                session_expiry_interval: a.6,
                assigned_client_identifier: a.7,
                server_keep_alive: a.8,
                authentication_method: b.0,
                authentication_data: b.1,
                request_problem_information: b.2,
                will_delay_interval: b.3,
                request_response_information: b.4,
                response_information: b.5,
                server_reference: b.6,
                reason_string: b.7,
                receive_maximum: b.8,
                topic_alias_maximum: c.0,
                topic_alias: c.1,
                maximum_qos: c.2,
                retain_available: c.3,
                user_properties: c.4,
                maximum_packet_size: c.5,
                wildcard_subscription_available: c.6,
                subscription_identifier_available: c.7,
                shared_subscription_available: c.8,
            };
            mask(&mut p, ctx);
            p
        })
        .boxed()
}

/// Clears every property not allowed in `ctx`.
fn mask(p: &mut Properties, ctx: Ctx) {
    let ok = |id: u8| allowed(id) & ctx as u16 != 0;
    macro_rules! clear {
        ($($id:literal $field:ident),*) => {$(if !ok($id) { p.$field = Default::default(); })*};
    }
    clear!(0x01 payload_format_indicator, 0x02 message_expiry_interval, 0x03 content_type,
        0x08 response_topic, 0x09 correlation_data, 0x0B subscription_identifiers,
        0x11 session_expiry_interval, 0x12 assigned_client_identifier, 0x13 server_keep_alive,
        0x15 authentication_method, 0x16 authentication_data, 0x17 request_problem_information,
        0x18 will_delay_interval, 0x19 request_response_information, 0x1A response_information,
        0x1C server_reference, 0x1F reason_string, 0x21 receive_maximum,
        0x22 topic_alias_maximum, 0x23 topic_alias, 0x24 maximum_qos, 0x25 retain_available,
        0x27 maximum_packet_size, 0x28 wildcard_subscription_available,
        0x29 subscription_identifier_available, 0x2A shared_subscription_available);
    if ctx == Ctx::Subscribe {
        p.subscription_identifiers.truncate(1);
    }
}

fn will() -> BoxedStrategy<Will> {
    (topic(), bin(), qos(), any::<bool>(), props(Ctx::Will))
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        })
        .boxed()
}

fn connect() -> BoxedStrategy<Packet> {
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will()),
        of(text()),
        of(bin()),
        props(Ctx::Connect),
    )
        .prop_map(
            |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                Packet::Connect(Box::new(Connect {
                    version: V5,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                }))
            },
        )
        .boxed()
}

fn ack() -> BoxedStrategy<PubResponse> {
    (1u16.., any::<u8>(), props(Ctx::PubResponse))
        .prop_map(|(packet_id, r, properties)| PubResponse {
            packet_id,
            reason: ReasonCode(r),
            properties,
        })
        .boxed()
}

fn reason_only(ctx: Ctx) -> BoxedStrategy<ReasonOnly> {
    (any::<u8>(), props(ctx))
        .prop_map(|(r, properties)| ReasonOnly {
            reason: ReasonCode(r),
            properties,
        })
        .boxed()
}

fn sub_ack() -> BoxedStrategy<SubAck> {
    (1u16.., props(Ctx::SubAck), vec(any::<u8>(), 0..4))
        .prop_map(|(packet_id, properties, codes)| SubAck {
            packet_id,
            properties,
            codes: codes.into_iter().map(ReasonCode).collect(),
        })
        .boxed()
}

fn publish() -> BoxedStrategy<Publish> {
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic(),
        1u16..,
        props(Ctx::Publish),
        bin(),
    )
        .prop_map(|(dup, qos, retain, topic, id, properties, payload)| {
            let zero = qos == QoS::AtMostOnce;
            Publish {
                dup: dup && !zero,
                qos,
                retain,
                topic,
                packet_id: (!zero).then_some(id),
                properties,
                payload,
            }
        })
        .boxed()
}

fn subscribe() -> BoxedStrategy<Subscribe> {
    let option = (qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(|(qos, nl, rap, rh)| {
        SubscriptionOptions {
            qos,
            no_local: nl,
            retain_as_published: rap,
            retain_handling: match rh {
                0 => RetainHandling::SendAtSubscribe,
                1 => RetainHandling::SendIfNew,
                _ => RetainHandling::DoNotSend,
            },
        }
    });
    (1u16.., props(Ctx::Subscribe), vec((filter(), option), 1..4))
        .prop_map(|(packet_id, properties, subs)| {
            let subscriptions = subs
                .into_iter()
                .map(|(filter, mut options)| {
                    options.no_local &= !filter.starts_with("$share/");
                    Subscription { filter, options }
                })
                .collect();
            Subscribe {
                packet_id,
                properties,
                subscriptions,
            }
        })
        .boxed()
}

fn packet() -> BoxedStrategy<Packet> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), props(Ctx::ConnAck)).prop_map(|(s, c, properties)| {
            Packet::ConnAck(ConnAck {
                session_present: s,
                code: ReasonCode(c),
                properties,
            })
        }),
        publish().prop_map(Packet::Publish),
        ack().prop_map(Packet::PubAck),
        ack().prop_map(Packet::PubRec),
        ack().prop_map(Packet::PubRel),
        ack().prop_map(Packet::PubComp),
        subscribe().prop_map(Packet::Subscribe),
        sub_ack().prop_map(Packet::SubAck),
        (1u16.., props(Ctx::Unsubscribe), vec(filter(), 1..4)).prop_map(
            |(packet_id, properties, filters)| Packet::Unsubscribe(Unsubscribe {
                packet_id,
                properties,
                filters
            })
        ),
        sub_ack().prop_map(Packet::UnsubAck),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        reason_only(Ctx::Disconnect).prop_map(Packet::Disconnect),
        reason_only(Ctx::Auth).prop_map(Packet::Auth),
    ]
    .boxed()
}

/// What a 5.0 packet looks like once it went through 3.1.1 (the fields 3.1.1 lacks reset),
/// or `None` if it cannot be encoded in 3.1.1.
fn as_v311(p: &Packet) -> Option<Packet> {
    let mut p = p.clone();
    match &mut p {
        Packet::Connect(c) => {
            c.version = V311;
            c.properties = Properties::default();
            if let Some(w) = &mut c.will {
                w.properties = Properties::default();
            }
            if c.username.is_none() {
                c.password = None;
            }
        }
        Packet::ConnAck(a) => {
            a.properties = Properties::default();
            a.code = ReasonCode(a.code.0 % 6);
        }
        Packet::Publish(x) => x.properties = Properties::default(),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            a.reason = ReasonCode::SUCCESS;
            a.properties = Properties::default();
        }
        Packet::Subscribe(s) => {
            s.properties = Properties::default();
            for sub in &mut s.subscriptions {
                sub.options = SubscriptionOptions {
                    qos: sub.options.qos,
                    ..Default::default()
                };
            }
        }
        Packet::SubAck(a) => a.properties = Properties::default(),
        Packet::UnsubAck(a) => {
            *a = SubAck {
                packet_id: a.packet_id,
                ..SubAck::default()
            }
        }
        Packet::Unsubscribe(u) => u.properties = Properties::default(),
        Packet::Disconnect(d) => *d = ReasonOnly::default(),
        Packet::Auth(_) => return None,
        Packet::PingReq | Packet::PingResp => {}
    }
    Some(p)
}

fn round_trip(p: &Packet, v: ProtocolVersion) -> Result<(), TestCaseError> {
    let bytes = enc(p, v);
    let mut dec = match p {
        Packet::Connect(_) => Decoder::new(DEFAULT_MAX_PACKET_SIZE),
        _ => connected(v),
    };
    let mut buf = BytesMut::from(&bytes[..]);
    let got = dec.decode(&mut buf);
    prop_assert_eq!(got, Ok(Some(p.clone())));
    prop_assert!(buf.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip_v5(p in prop_oneof![packet(), connect()]) {
        round_trip(&p, V5)?;
    }

    #[test]
    fn round_trip_v311(p in prop_oneof![packet(), connect()]) {
        if let Some(p) = as_v311(&p) {
            round_trip(&p, V311)?;
        }
    }

    #[test]
    fn decode_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..300)) {
        for mut dec in [Decoder::new(200), connected(V311), connected(V5)] {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = dec.decode(&mut buf) {}
        }
    }

    #[test]
    fn decode_corrupted_packets_never_panics(
        p in prop_oneof![packet(), connect()],
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for v in [V311, V5] {
            let Some(p) = (if v == V5 { Some(p.clone()) } else { as_v311(&p) }) else { continue };
            let mut bytes = enc(&p, v);
            for (i, b) in &flips {
                let i = i.index(bytes.len());
                bytes[i] ^= b;
            }
            let bytes = &bytes[..cut.index(bytes.len() + 1)];
            let mut dec = match p { Packet::Connect(_) => Decoder::new(1 << 20), _ => connected(v) };
            // Byte at a time: every prefix is tried.
            let mut buf = BytesMut::new();
            for b in bytes {
                buf.extend_from_slice(&[*b]);
                match dec.decode(&mut buf) {
                    Ok(_) => {}
                    Err(e) => { let _ = (e.reason_code(), e.connack()); break; }
                }
            }
        }
    }
}
