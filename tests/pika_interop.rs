//! pika (the Python RabbitMQ client) against the real broker: runs `tests/pika/scenarios.py`
//! on the AMQP listener of a [`TestBroker`] and fails if any scenario fails.
//!
//! Needs `python3` with `pika`: `scripts/test` installs it. Without them this test fails (it does
//! not skip), so a machine that cannot run it says so.

mod common;

use std::time::Duration;

use common::python::{require_module, run_scenarios};
use common::TestBroker;

const HINT: &str = "run `scripts/test` (it installs the pinned pika) instead of plain `cargo test`";

#[test]
fn pika_scenarios() {
    require_module("pika", HINT);
    let broker = TestBroker::start();
    run_scenarios(
        "pika",
        "pika/scenarios.py",
        &[broker.amqp.port().to_string()],
        Duration::from_secs(300),
        HINT,
    );
}
