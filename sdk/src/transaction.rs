//! [`TransactionProducer`]: transactional messages (half message, local transaction, commit or
//! rollback, and answers to the broker's check-backs).

use std::sync::Arc;

use bytes::Bytes;
use junction_native::{
    Body, CheckTransaction, EndTransaction, Properties, PublishHalf, RegisterTransactionGroup,
    TransactionState,
};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::connection::{lock, Command};
use crate::error::{Result, SdkError};
use crate::message::{Destination, Message, SendReceipt};

/// A half message the broker asks about (a check-back): its transaction never ended, or the
/// outcome was lost with the producer that sent it.
#[derive(Debug, Clone)]
pub struct HalfMessage {
    /// The transaction.
    pub transaction_id: u64,
    /// The producer group.
    pub group: String,
    /// Check-backs of it so far, this one included.
    pub checks: u32,
    /// The exchange it is for.
    pub exchange: String,
    /// Its routing key.
    pub routing_key: String,
    /// Its properties (find your local transaction by its keys or message id).
    pub properties: Properties,
    /// Its body.
    pub body: Bytes,
}

/// Answers check-backs: what became of the local transaction of this half message?
/// `Unknown` asks the broker to check again later. Any `Fn(&HalfMessage) -> TransactionState`
/// is one.
pub trait TransactionChecker: Send + Sync + 'static {
    /// The outcome of `half`'s local transaction.
    fn check(&self, half: &HalfMessage) -> TransactionState;
}

impl<F> TransactionChecker for F
where
    F: Fn(&HalfMessage) -> TransactionState + Send + Sync + 'static,
{
    fn check(&self, half: &HalfMessage) -> TransactionState {
        self(half)
    }
}

/// A producer of transactional messages for one producer group (RocketMQ's
/// `TransactionMQProducer`). [`TransactionProducer::send`] stores a *half message*, which no
/// consumer sees, and returns its [`Transaction`]; run the local transaction, then
/// [`Transaction::commit`] (the message is delivered) or [`Transaction::rollback`] (it is
/// dropped). If neither reaches the broker (the producer died, the connection dropped), the
/// broker asks a producer of the same group, through its [`TransactionChecker`], at
/// intervals, and applies its configured default after the last unanswered check-back.
///
/// The group registration is renewed when the client reconnects. Dropping the producer stops
/// answering check-backs on this client.
///
/// ```no_run
/// # async fn demo(client: junction_sdk::Client) -> junction_sdk::Result<()> {
/// use junction_sdk::{Destination, Message, TransactionState};
///
/// let producer = client
///     .transaction_producer("orders-service", |half: &junction_sdk::HalfMessage| {
///         // look the order up by half.properties.keys ...
///         TransactionState::Commit
///     })
///     .await?;
/// let tx = producer
///     .send(&Destination::queue("orders"), Message::new("order #7").key("order-7"))
///     .await?;
/// // ... the local transaction (insert the order) ...
/// tx.commit().await?;
/// # Ok(()) }
/// ```
pub struct TransactionProducer {
    client: Client,
    group: String,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for TransactionProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionProducer")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Drop for TransactionProducer {
    fn drop(&mut self) {
        self.task.abort();
        lock(&self.client.shared().tx_groups).remove(&self.group);
    }
}

impl TransactionProducer {
    pub(crate) async fn new(
        client: Client,
        group: &str,
        checker: impl TransactionChecker,
    ) -> Result<TransactionProducer> {
        let (tx, mut rx) = mpsc::unbounded_channel::<CheckTransaction>();
        lock(&client.shared().tx_groups).insert(group.to_string(), tx);
        let register = RegisterTransactionGroup {
            group: group.to_string(),
        };
        match client.call(register.into()).await {
            Ok(Body::Ok) => {}
            Ok(other) => {
                lock(&client.shared().tx_groups).remove(group);
                return Err(SdkError::unexpected("Ok", &other));
            }
            Err(e) => {
                lock(&client.shared().tx_groups).remove(group);
                return Err(e);
            }
        }
        let checker = Arc::new(checker);
        let c2 = client.clone();
        let task = tokio::spawn(async move {
            while let Some(check) = rx.recv().await {
                let half = HalfMessage {
                    transaction_id: check.transaction_id,
                    group: check.group,
                    checks: check.checks,
                    exchange: check.exchange,
                    routing_key: check.routing_key,
                    properties: check.properties,
                    body: check.body,
                };
                let state = checker.check(&half);
                let end = EndTransaction {
                    transaction_id: half.transaction_id,
                    state,
                };
                let cmd = Command::OneWay {
                    body: end.into(),
                    epoch: None,
                };
                if c2.enqueue(cmd).await.is_err() {
                    return;
                }
            }
        });
        Ok(TransactionProducer {
            client,
            group: group.to_string(),
            task,
        })
    }

    /// The producer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// Stores `msg` as a half message (no consumer sees it yet) and returns its transaction.
    pub async fn send(&self, dest: &Destination, msg: Message) -> Result<Transaction> {
        let half = PublishHalf {
            exchange: dest.exchange.clone(),
            routing_key: dest.routing_key.clone(),
            group: self.group.clone(),
            properties: msg.properties,
            body: msg.body,
        };
        match self.client.call(half.into()).await? {
            Body::HalfStored(h) => Ok(Transaction {
                client: self.client.clone(),
                id: h.transaction_id,
            }),
            other => Err(SdkError::unexpected("HalfStored", &other)),
        }
    }
}

/// A half message's transaction: end it with [`Transaction::commit`] or
/// [`Transaction::rollback`].
#[derive(Debug, Clone)]
pub struct Transaction {
    client: Client,
    id: u64,
}

impl Transaction {
    /// The transaction id (the broker's id of the half message).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Commits: the message is delivered. Returns where it was stored once the outcome is.
    pub async fn commit(self) -> Result<SendReceipt> {
        self.end(TransactionState::Commit).await
    }

    /// Rolls back: the message is never delivered.
    pub async fn rollback(self) -> Result<()> {
        self.end(TransactionState::Rollback).await.map(|_| ())
    }

    async fn end(&self, state: TransactionState) -> Result<SendReceipt> {
        let end = EndTransaction {
            transaction_id: self.id,
            state,
        };
        match self.client.call(end.into()).await? {
            Body::Published(p) => Ok(SendReceipt {
                routes: p.results,
                duplicate: p.duplicate,
            }),
            other => Err(SdkError::unexpected("Published", &other)),
        }
    }
}
