//! The native protocol's SDK against a [`TestBroker`]: a connected client and bounded waits.

use std::time::Duration;

use junction_sdk::{Client, ClientOptions, Consumer, Delivery};

use super::TestBroker;

/// How long a test waits for a delivery before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// An SDK client of `b`'s native listener, as the default user.
pub async fn client(b: &TestBroker) -> Client {
    Client::connect(ClientOptions::new(b.native.to_string()))
        .await
        .unwrap()
}

/// An SDK client with a client id of its own (broadcast offsets are kept per client id).
pub async fn client_as(b: &TestBroker, id: &str) -> Client {
    Client::connect(ClientOptions::new(b.native.to_string()).client_id(id))
        .await
        .unwrap()
}

/// The consumer's next delivery, within [`WAIT`].
pub async fn next(c: &mut Consumer) -> Delivery {
    tokio::time::timeout(WAIT, c.next())
        .await
        .expect("a delivery within 30 s")
        .expect("stream open")
        .unwrap()
}

/// A delivery's body as text.
pub fn text_of(d: &Delivery) -> String {
    String::from_utf8(d.body.to_vec()).unwrap()
}
