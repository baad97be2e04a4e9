//! [`Opcode`] and [`Body`]: one variant per message, defined from a single table so the two
//! can never disagree.

use crate::error::{DecodeError, EncodeError};
use crate::messages::*;
use crate::primitives::{Reader, Wire, Writer};

/// Which peer may send a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// Only the client (requests).
    Client,
    /// Only the server (responses and pushes).
    Server,
    /// Either peer (`Heartbeat`, `Close`, `CloseOk`).
    Either,
}

/// Pattern for one `Body` variant, binding its payload (if any) to `$p`.
macro_rules! body_pat {
    ($p:ident; $variant:ident) => {
        Body::$variant
    };
    ($p:ident; $variant:ident, $ty:ty) => {
        Body::$variant($p)
    };
}

/// Encodes the payload bound by `body_pat!`.
macro_rules! put_payload {
    ($w:ident, $p:ident) => {
        Ok(())
    };
    ($w:ident, $p:ident, $ty:ty) => {
        $p.put($w)
    };
}

/// Decodes the payload of one `Body` variant.
macro_rules! get_body {
    ($r:ident; $variant:ident) => {
        Body::$variant
    };
    ($r:ident; $variant:ident, $ty:ty) => {
        Body::$variant(<$ty as Wire>::get($r)?)
    };
}

macro_rules! messages {
    ($( $(#[$doc:meta])* $variant:ident $( ($ty:ty) )? = $code:literal, $origin:ident; )*) => {
        /// The message type byte of a frame. See the crate docs for the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Opcode {
            $( $(#[$doc])* $variant = $code, )*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant),*];

            /// The opcode for a byte, if it names one.
            pub const fn from_u8(byte: u8) -> Option<Opcode> {
                match byte {
                    $( $code => Some(Opcode::$variant), )*
                    _ => None,
                }
            }

            /// Which peer may send it.
            pub const fn origin(self) -> Origin {
                match self {
                    $( Opcode::$variant => Origin::$origin, )*
                }
            }
        }

        /// A frame's message: one variant per [`Opcode`].
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Body {
            $( $(#[$doc])* $variant $( ($ty) )?, )*
        }

        impl Body {
            /// This message's opcode.
            pub const fn opcode(&self) -> Opcode {
                match self {
                    $( body_pat!(_payload; $variant $(, $ty)?) => Opcode::$variant, )*
                }
            }

            /// Appends the payload (everything after the frame header).
            pub(crate) fn put(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
                match self {
                    $( body_pat!(payload; $variant $(, $ty)?) => put_payload!(w, payload $(, $ty)?), )*
                }
            }

            /// Reads the payload of a message with this opcode. The caller checks that nothing
            /// is left over.
            pub(crate) fn get(opcode: Opcode, r: &mut Reader) -> Result<Body, DecodeError> {
                Ok(match opcode {
                    $( Opcode::$variant => get_body!(r; $variant $(, $ty)?), )*
                })
            }
        }
    };
}

messages! {
    /// `0x01` client -> server: open a session ([`Hello`]); answered by `Welcome`.
    Hello(Hello) = 0x01, Client;
    /// `0x02` server -> client: the session is open ([`Welcome`]).
    Welcome(Welcome) = 0x02, Server;
    /// `0x03` either way, empty, request id 0: keeps an idle connection alive.
    Heartbeat = 0x03, Either;
    /// `0x04` either way: closing the connection ([`Close`]); answered by `CloseOk`.
    Close(Close) = 0x04, Either;
    /// `0x05` either way, empty: the answer to `Close`.
    CloseOk = 0x05, Either;
    /// `0x06` server -> client, empty: the request succeeded.
    Ok = 0x06, Server;
    /// `0x07` server -> client: the request failed ([`ErrorResponse`]); with request id 0, the
    /// connection failed and the server closes it.
    Error(ErrorResponse) = 0x07, Server;

    /// `0x10` client -> server: declare an exchange ([`DeclareExchange`]); answered by `Ok`.
    DeclareExchange(DeclareExchange) = 0x10, Client;
    /// `0x11` client -> server: delete an exchange ([`DeleteExchange`]); answered by `Ok`.
    DeleteExchange(DeleteExchange) = 0x11, Client;
    /// `0x12` client -> server: declare a queue ([`DeclareQueue`]); answered by
    /// `QueueDeclared`.
    DeclareQueue(DeclareQueue) = 0x12, Client;
    /// `0x13` server -> client: the queue exists ([`QueueDeclared`]).
    QueueDeclared(QueueDeclared) = 0x13, Server;
    /// `0x14` client -> server: delete a queue ([`DeleteQueue`]); answered by `Deleted`.
    DeleteQueue(DeleteQueue) = 0x14, Client;
    /// `0x15` client -> server: purge a queue ([`PurgeQueue`]); answered by `Deleted`.
    PurgeQueue(PurgeQueue) = 0x15, Client;
    /// `0x16` server -> client: messages dropped by a delete or purge ([`Deleted`]).
    Deleted(Deleted) = 0x16, Server;
    /// `0x17` client -> server: add a binding ([`Binding`]); answered by `Ok`.
    Bind(Binding) = 0x17, Client;
    /// `0x18` client -> server: remove a binding ([`Binding`]); answered by `Ok`.
    Unbind(Binding) = 0x18, Client;

    /// `0x20` client -> server: publish a message ([`Publish`]); answered by `Published` or
    /// `Returned` when `confirm`, else only on failure.
    Publish(Publish) = 0x20, Client;
    /// `0x21` server -> client: where a confirmed message was stored ([`Published`]).
    Published(Published) = 0x21, Server;
    /// `0x22` server -> client: a mandatory message was unroutable ([`Returned`]).
    Returned(Returned) = 0x22, Server;
    /// `0x23` client -> server: publish many messages ([`PublishBatch`]); answered by
    /// `PublishedBatch`.
    PublishBatch(PublishBatch) = 0x23, Client;
    /// `0x24` server -> client: where each message of a batch was stored ([`PublishedBatch`]).
    PublishedBatch(PublishedBatch) = 0x24, Server;
    /// `0x25` server push: publishers should pause or may resume ([`Flow`]).
    Flow(Flow) = 0x25, Server;
    /// `0x26` client -> server: publish a transactional half message ([`PublishHalf`]);
    /// answered by `HalfStored`.
    PublishHalf(PublishHalf) = 0x26, Client;
    /// `0x27` server -> client: the half message is stored ([`HalfStored`]).
    HalfStored(HalfStored) = 0x27, Server;
    /// `0x28` client -> server: a transaction's outcome ([`EndTransaction`]); answered by
    /// `Published` (request id 0: no answer).
    EndTransaction(EndTransaction) = 0x28, Client;
    /// `0x29` server -> client push: a check-back ([`CheckTransaction`]).
    CheckTransaction(CheckTransaction) = 0x29, Server;
    /// `0x2A` client -> server: answer check-backs of a producer group
    /// ([`RegisterTransactionGroup`]); answered by `Ok`.
    RegisterTransactionGroup(RegisterTransactionGroup) = 0x2A, Client;

    /// `0x30` client -> server: start a consumer ([`Subscribe`]); answered by `Subscribed`.
    Subscribe(Subscribe) = 0x30, Client;
    /// `0x31` server -> client: the consumer started ([`Subscribed`]).
    Subscribed(Subscribed) = 0x31, Server;
    /// `0x32` client -> server: stop a consumer ([`Unsubscribe`]); answered by `Ok`.
    Unsubscribe(Unsubscribe) = 0x32, Client;
    /// `0x33` client -> server: acknowledge deliveries ([`Ack`]); answered only on failure.
    Ack(Ack) = 0x33, Client;
    /// `0x34` client -> server: reject deliveries ([`Nack`]); answered only on failure.
    Nack(Nack) = 0x34, Client;
    /// `0x35` client -> server: change a consumer's prefetch ([`SetPrefetch`]); answered by
    /// `Ok`.
    SetPrefetch(SetPrefetch) = 0x35, Client;
    /// `0x36` server push: a message for a consumer ([`Deliver`]).
    Deliver(Deliver) = 0x36, Server;
    /// `0x37` server push: a consumer's partitions after a rebalance ([`Assignment`]).
    Assignment(Assignment) = 0x37, Server;
    /// `0x38` server push: the server ended a consumer ([`Cancelled`]).
    Cancelled(Cancelled) = 0x38, Server;

    /// `0x40` client -> server: read a partition by offset ([`Pull`]); answered by `Pulled`.
    Pull(Pull) = 0x40, Client;
    /// `0x41` server -> client: the messages read ([`Pulled`]).
    Pulled(Pulled) = 0x41, Server;
    /// `0x42` client -> server: find an offset by time ([`QueryOffset`]); answered by
    /// `Offset`.
    QueryOffset(QueryOffset) = 0x42, Client;
    /// `0x43` server -> client: the offset found ([`Offset`]).
    Offset(Offset) = 0x43, Server;
    /// `0x44` client -> server: find messages by id, key or time ([`Lookup`]); answered by
    /// `Found`.
    Lookup(Lookup) = 0x44, Client;
    /// `0x45` server -> client: the messages found ([`Found`]).
    Found(Found) = 0x45, Server;
    /// `0x46` client -> server: move a dead-letter queue's messages back to their group's
    /// retry queue ([`Redrive`]); answered by `Deleted` (the number moved).
    Redrive(Redrive) = 0x46, Client;
}

impl From<Opcode> for u8 {
    fn from(opcode: Opcode) -> u8 {
        opcode as u8
    }
}

impl TryFrom<u8> for Opcode {
    type Error = DecodeError;

    fn try_from(opcode: u8) -> Result<Self, DecodeError> {
        Opcode::from_u8(opcode).ok_or(DecodeError::UnknownOpcode { opcode })
    }
}

macro_rules! from_payloads {
    ($( $ty:ident => $variant:ident ),* $(,)?) => {
        $(
            impl From<$ty> for Body {
                fn from(payload: $ty) -> Body {
                    Body::$variant(payload)
                }
            }
        )*
    };
}

// `Binding` is left out: it is the payload of both `Bind` and `Unbind`.
from_payloads! {
    Hello => Hello, Welcome => Welcome, Close => Close, ErrorResponse => Error,
    DeclareExchange => DeclareExchange, DeleteExchange => DeleteExchange,
    DeclareQueue => DeclareQueue, QueueDeclared => QueueDeclared, DeleteQueue => DeleteQueue,
    PurgeQueue => PurgeQueue, Deleted => Deleted,
    Publish => Publish, Published => Published, Returned => Returned,
    PublishBatch => PublishBatch, PublishedBatch => PublishedBatch, Flow => Flow,
    Subscribe => Subscribe, Subscribed => Subscribed, Unsubscribe => Unsubscribe, Ack => Ack,
    Nack => Nack, SetPrefetch => SetPrefetch, Deliver => Deliver, Assignment => Assignment,
    Cancelled => Cancelled,
    Pull => Pull, Pulled => Pulled, QueryOffset => QueryOffset, Offset => Offset,
    Lookup => Lookup, Found => Found, Redrive => Redrive,
    PublishHalf => PublishHalf, HalfStored => HalfStored, EndTransaction => EndTransaction,
    CheckTransaction => CheckTransaction, RegisterTransactionGroup => RegisterTransactionGroup,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_table_is_sorted_and_round_trips() {
        assert_eq!(Opcode::ALL.len(), 43);
        for pair in Opcode::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
        }
        for &op in Opcode::ALL {
            assert_eq!(Opcode::from_u8(op as u8), Some(op));
        }
        let known = (0..=255u8)
            .filter(|b| Opcode::from_u8(*b).is_some())
            .count();
        assert_eq!(known, Opcode::ALL.len());
        assert_eq!(Opcode::from_u8(0), None);
    }

    #[test]
    fn body_opcode() {
        assert_eq!(Body::Heartbeat.opcode(), Opcode::Heartbeat);
        assert_eq!(Body::from(Offset { offset: 1 }).opcode(), Opcode::Offset);
        assert_eq!(Body::Unbind(Binding::default()).opcode(), Opcode::Unbind);
    }
}
