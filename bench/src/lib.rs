//! `junction-bench`: publishes and consumes at the same time and reports rates, end-to-end
//! latency percentiles and lost or duplicated messages.
//!
//! ```text
//! junction-bench native --size 100 --count 2000000 --producers 2 --consumers 2 --batch 100
//! junction-bench native --size 100 --rate 10000 --duration 20        # latency at a fixed rate
//! junction-bench amqp --addr 127.0.0.1:5672 --size 100 --duration 15 --batch 64 --window 1024
//! junction-bench amqp --transient --no-confirm --size 1024 --producers 4 --consumers 4
//! junction-bench stomp --addr 127.0.0.1:61613 --size 100 --duration 10 --ack client-individual
//! junction-bench mqtt --addr 127.0.0.1:1883 --qos 1 --size 100 --duration 10
//! junction-bench mqtt --mqtt 5 --qos 1 --consumers 100 --count 20000    # fan-out to 100
//! junction-bench mqtt --qos 1 --request-reply --window 1 --rate 1000 --duration 10
//! junction-bench amqp --request-reply --producers 2 --consumers 2 --window 8 --duration 10
//! junction-bench stomp --request-reply --window 8 --duration 10     # reply-to /temp-queue/
//! junction-bench native --request-reply --window 8 --duration 10
//! junction-bench idle --protocol mqtt --connections 100000 --broker-pid $(pidof junction)
//! junction-bench idle --protocol amqp --addr 127.0.0.1:5672 --connections 10000
//! ```
//!
//! Every body starts with the producer id, a sequence number and the send time (µs since the
//! run started, one clock for the whole process), so loss, duplicates and latency are measured
//! on the messages themselves. The measurement code (`measure`) is shared by every protocol.

//!
//! The binary is a thin `main` over [`run`]; the tests of the tool itself call [`run`] against
//! a broker with the same arguments a user would type.

pub mod amqp;
pub mod idle;
pub mod measure;
pub mod mqtt;
pub mod native;
pub mod stomp;

use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

/// The command line.
#[derive(Parser)]
#[command(
    name = "junction-bench",
    version,
    about = "Load generator for Junction and other brokers"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub protocol: Protocol,
}

/// One subcommand per protocol (and the idle-connections scenario).
#[derive(Subcommand)]
pub enum Protocol {
    /// Junction's native protocol, through the Rust SDK.
    Native(native::NativeArgs),
    /// AMQP 0-9-1 through lapin (Junction, RabbitMQ, any 0-9-1 broker).
    Amqp(amqp::AmqpArgs),
    /// STOMP 1.2 (Junction, RabbitMQ's STOMP plugin, ActiveMQ).
    Stomp(stomp::StompArgs),
    /// MQTT 3.1.1 or 5.0 through rumqttc (Junction, Mosquitto, any MQTT broker).
    Mqtt(mqtt::MqttArgs),
    /// Many idle MQTT, STOMP, AMQP or native connections: the broker's memory per connection.
    Idle(idle::IdleArgs),
}

/// Runs one benchmark within its hard deadline; prints its result (a table, or JSON with
/// `--json`) and returns it as JSON.
///
/// # Errors
///
/// Connection or protocol failures, messages lost where the protocol promises delivery, and
/// passing the deadline.
pub async fn run(cli: Cli) -> anyhow::Result<serde_json::Value> {
    let p = cli.protocol;
    let w = match &p {
        Protocol::Native(a) => Some(a.workload()),
        Protocol::Amqp(a) => Some(a.workload()),
        Protocol::Stomp(a) => Some(a.workload()),
        Protocol::Mqtt(a) => Some(a.workload()),
        Protocol::Idle(_) => None,
    };
    if w.is_some_and(|w| w.size < 24 && w.consumers > 0) {
        bail!("--size must be at least 24 when consumed (producer id, sequence and timestamp)");
    }
    let secs = match &p {
        Protocol::Idle(a) => a.deadline,
        _ => w.map_or(300, |w| w.deadline),
    };
    let run = async move {
        match p {
            Protocol::Native(a) => native::run(a).await,
            Protocol::Amqp(a) => amqp::run(a).await,
            Protocol::Stomp(a) => stomp::run(a).await,
            Protocol::Mqtt(a) => mqtt::run(a).await,
            Protocol::Idle(a) => idle::run(a).await,
        }
    };
    match tokio::time::timeout(Duration::from_secs(secs), run).await {
        Ok(r) => r,
        Err(_) => bail!("the run passed its {secs}s deadline"),
    }
}
