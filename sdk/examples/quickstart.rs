//! The README's example: `cargo run -p junction-sdk --example quickstart` against a broker
//! started with `cargo run --release -- serve`.

use junction_sdk::{Client, ClientOptions, ConsumerOptions, Destination, Message, StartPosition};

#[tokio::main]
async fn main() -> junction_sdk::Result<()> {
    let client = Client::connect(ClientOptions::new("127.0.0.1:5680")).await?; // guest/guest
    client.admin().create_topic("orders", 4).await?; // a durable queue, 4 partitions

    let producer = client.producer();
    let receipt = producer
        .send(
            &Destination::queue("orders"),
            Message::new("order #1").sharding_key("customer-7"),
        )
        .await?; // returns once stored
    println!(
        "stored in partition {:?} at offset {:?}",
        receipt.partition(),
        receipt.offset()
    );

    let mut consumer = client
        .subscribe(
            ConsumerOptions::new("orders")
                .group("billing")
                .start(StartPosition::Earliest),
        )
        .await?;
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        println!("{:?}", delivery.body);
        delivery.ack().await?;
    }
    Ok(())
}
