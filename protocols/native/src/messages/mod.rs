//! The payload types of every message, grouped by area.

mod connection;
mod consuming;
mod messaging;
mod publishing;
mod topology;

pub use connection::{Close, ErrorResponse, Hello, Welcome};
pub use consuming::{
    Ack, Assignment, Cancelled, Deliver, Nack, Offset, Pull, Pulled, PulledMessage, QueryOffset,
    RetryPolicy, SetPrefetch, StartPosition, Subscribe, Subscribed, Unsubscribe,
};
pub use messaging::{
    CheckTransaction, EndTransaction, Found, FoundMessage, HalfStored, Lookup, LookupBy,
    PublishHalf, Redrive, RegisterTransactionGroup, TransactionState,
};
pub use publishing::{
    BatchMessage, Flow, Publish, PublishBatch, Published, PublishedBatch, Returned, Route,
};
pub use topology::{
    Binding, DeclareExchange, DeclareQueue, DeleteExchange, DeleteQueue, Deleted, ExchangeKind,
    PurgeQueue, QueueDeclared,
};
