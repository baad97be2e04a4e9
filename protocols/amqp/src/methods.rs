//! Builders for the methods a server sends on its own account.

use amq_protocol::protocol::{channel, connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

use crate::error::FrameError;

/// A short string from `s`, cut to 255 bytes on a UTF-8 character boundary.
#[must_use]
pub fn short_string_lossy(s: &str) -> ShortString {
    let mut end = s.len().min(255);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let cut = s.get(..end).unwrap_or_default();
    ShortString::try_new(cut).unwrap_or_default()
}

/// `connection.close` (10.50), to send on channel 0. `reply_text` is cut to 255 bytes;
/// `class_id` / `method_id` name the method that caused the close (0 if none).
#[must_use]
pub fn connection_close(
    reply_code: u16,
    reply_text: &str,
    class_id: u16,
    method_id: u16,
) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code,
        reply_text: short_string_lossy(reply_text),
        class_id,
        method_id,
    }))
}

/// `connection.close-ok` (10.51).
#[must_use]
pub fn connection_close_ok() -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::CloseOk(connection::CloseOk {}))
}

/// `channel.close` (20.40), to send on the channel being closed. `reply_text` is cut to
/// 255 bytes.
#[must_use]
pub fn channel_close(
    reply_code: u16,
    reply_text: &str,
    class_id: u16,
    method_id: u16,
) -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::Close(channel::Close {
        reply_code,
        reply_text: short_string_lossy(reply_text),
        class_id,
        method_id,
    }))
}

/// `channel.close-ok` (20.41).
#[must_use]
pub fn channel_close_ok() -> AMQPClass {
    AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {}))
}

/// The capabilities the server announces in `connection.start`, all true: the RabbitMQ
/// extensions clients look for before using them.
pub const CAPABILITIES: [&str; 7] = [
    "publisher_confirms",
    "exchange_exchange_bindings",
    "basic.nack",
    "consumer_cancel_notify",
    "connection.blocked",
    "authentication_failure_close",
    "per_consumer_qos",
];

/// The `server-properties` table of `connection.start`: `product` "Junction", `version`,
/// `platform` "Rust", `copyright`, `information`, and a `capabilities` table with every
/// entry of [`CAPABILITIES`] set to true. Strings are long strings (`S`), as RabbitMQ sends
/// them.
#[must_use]
pub fn server_properties(version: &str) -> FieldTable {
    let mut caps = FieldTable::default();
    for cap in CAPABILITIES {
        caps.insert(ShortString::from(cap), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let mut text = |key: &str, value: &str| {
        props.insert(
            ShortString::from(key),
            AMQPValue::LongString(LongString::from(value.as_bytes())),
        );
    };
    text("product", "Junction");
    text("version", version);
    text("platform", "Rust");
    text("copyright", "Apache-2.0");
    text("information", "Junction message broker, AMQP 0-9-1 gateway");
    props.insert(
        ShortString::from("capabilities"),
        AMQPValue::FieldTable(caps),
    );
    props
}

/// The SASL mechanisms the parsers in this crate handle, as `connection.start` lists them.
pub const MECHANISMS: &str = "PLAIN AMQPLAIN";

/// `connection.start` (10.10) for AMQP 0-9-1 with [`server_properties`], `mechanisms`
/// (space-separated, e.g. [`MECHANISMS`]) and locale `en_US`.
#[must_use]
pub fn connection_start(version: &str, mechanisms: &str) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: server_properties(version),
        mechanisms: LongString::from(mechanisms.as_bytes()),
        locales: LongString::from(&b"en_US"[..]),
    }))
}

/// `connection.tune` (10.30): the server's proposed channel-max, frame-max and heartbeat
/// interval in seconds.
#[must_use]
pub fn connection_tune(channel_max: u16, frame_max: u32, heartbeat: u16) -> AMQPClass {
    AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
        channel_max,
        frame_max,
        heartbeat,
    }))
}

/// Refuses, with 503 COMMAND_INVALID as RabbitMQ does ("unimplemented method"), a method
/// only a server may send: `connection.start`/`secure`/`tune`/`open-ok`/`blocked`/
/// `unblocked`/`update-secret-ok`, `channel.open-ok`, `access.request-ok`, the
/// `exchange`/`queue`/`tx`/`confirm` `-ok` replies, and `basic.qos-ok`/`consume-ok`/
/// `return`/`deliver`/`get-ok`/`get-empty`/`recover-ok`. Methods either peer may send
/// (`close`, `close-ok`, `channel.flow`, `channel.flow-ok`, `basic.cancel`,
/// `basic.cancel-ok`, `basic.ack`, `basic.nack`) pass.
pub fn check_client_method(channel: u16, method: &AMQPClass) -> Result<(), FrameError> {
    use amq_protocol::protocol::{access, basic, confirm, connection as conn, exchange, queue, tx};
    let server_only = matches!(
        method,
        AMQPClass::Connection(
            conn::AMQPMethod::Start(_)
                | conn::AMQPMethod::Secure(_)
                | conn::AMQPMethod::Tune(_)
                | conn::AMQPMethod::OpenOk(_)
                | conn::AMQPMethod::Blocked(_)
                | conn::AMQPMethod::Unblocked(_)
                | conn::AMQPMethod::UpdateSecretOk(_)
        ) | AMQPClass::Channel(channel::AMQPMethod::OpenOk(_))
            | AMQPClass::Access(access::AMQPMethod::RequestOk(_))
            | AMQPClass::Exchange(
                exchange::AMQPMethod::DeclareOk(_)
                    | exchange::AMQPMethod::DeleteOk(_)
                    | exchange::AMQPMethod::BindOk(_)
                    | exchange::AMQPMethod::UnbindOk(_)
            )
            | AMQPClass::Queue(
                queue::AMQPMethod::DeclareOk(_)
                    | queue::AMQPMethod::BindOk(_)
                    | queue::AMQPMethod::PurgeOk(_)
                    | queue::AMQPMethod::DeleteOk(_)
                    | queue::AMQPMethod::UnbindOk(_)
            )
            | AMQPClass::Basic(
                basic::AMQPMethod::QosOk(_)
                    | basic::AMQPMethod::ConsumeOk(_)
                    | basic::AMQPMethod::Return(_)
                    | basic::AMQPMethod::Deliver(_)
                    | basic::AMQPMethod::GetOk(_)
                    | basic::AMQPMethod::GetEmpty(_)
                    | basic::AMQPMethod::RecoverOk(_)
            )
            | AMQPClass::Tx(
                tx::AMQPMethod::SelectOk(_)
                    | tx::AMQPMethod::CommitOk(_)
                    | tx::AMQPMethod::RollbackOk(_)
            )
            | AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))
    );
    if server_only {
        return Err(FrameError::CommandInvalid {
            channel,
            class_id: method.get_amqp_class_id(),
            method_id: method.get_amqp_method_id(),
            reason: "unimplemented method (only a server sends it)",
        });
    }
    Ok(())
}
