//! `junction-bench`: publishes and consumes at the same time and reports rates, end-to-end
//! latency percentiles and lost or duplicated messages.
//!
//! ```text
//! junction-bench native --size 100 --count 2000000 --producers 2 --consumers 2 --batch 100
//! junction-bench native --size 100 --rate 10000 --duration 20        # latency at a fixed rate
//! junction-bench amqp --addr 127.0.0.1:5672 --size 100 --duration 15 --batch 64 --window 1024
//! junction-bench amqp --transient --no-confirm --size 1024 --producers 4 --consumers 4
//! junction-bench stomp --addr 127.0.0.1:61613 --size 100 --duration 10 --ack client-individual
//! ```
//!
//! Every body starts with the producer id, a sequence number and the send time (µs since the
//! run started, one clock for the whole process), so loss, duplicates and latency are measured
//! on the messages themselves. The measurement code (`measure`) is shared by every protocol.

mod amqp;
mod measure;
mod native;
mod stomp;

use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

/// The generator shares the machine with the broker: keep its own allocation cost low.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "junction-bench",
    version,
    about = "Load generator for Junction and other brokers"
)]
struct Cli {
    #[command(subcommand)]
    protocol: Protocol,
}

#[derive(Subcommand)]
enum Protocol {
    /// Junction's native protocol, through the Rust SDK.
    Native(native::NativeArgs),
    /// AMQP 0-9-1 through lapin (Junction, RabbitMQ, any 0-9-1 broker).
    Amqp(amqp::AmqpArgs),
    /// STOMP 1.2 (Junction, RabbitMQ's STOMP plugin, any broker with RabbitMQ's destinations).
    Stomp(stomp::StompArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let p = Cli::parse().protocol;
    let w = match &p {
        Protocol::Native(a) => a.workload(),
        Protocol::Amqp(a) => a.workload(),
        Protocol::Stomp(a) => a.workload(),
    };
    if w.size < 24 && w.consumers > 0 {
        bail!("--size must be at least 24 when consumed (producer id, sequence and timestamp)");
    }
    let secs = w.deadline;
    let run = async move {
        match p {
            Protocol::Native(a) => native::run(a).await,
            Protocol::Amqp(a) => amqp::run(a).await,
            Protocol::Stomp(a) => stomp::run(a).await,
        }
    };
    match tokio::time::timeout(Duration::from_secs(secs), run).await {
        Ok(r) => r,
        Err(_) => bail!("the run passed its {secs}s deadline"),
    }
}
