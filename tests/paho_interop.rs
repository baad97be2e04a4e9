//! paho-mqtt (Python) and Debian's mosquitto_pub/mosquitto_sub against the real broker: runs
//! `tests/paho/scenarios.py` on the MQTT listener of a [`TestBroker`] and fails if any scenario
//! fails.
//!
//! Needs `python3` with `paho-mqtt`, and `mosquitto-clients`: `scripts/test` installs them.
//! Without them this test fails (it does not skip), so a machine that cannot run it says so.

mod common;

use std::time::Duration;

use common::python::{require_module, run_scenarios};
use common::TestBroker;

const HINT: &str =
    "run `scripts/test` (it installs paho-mqtt and mosquitto-clients) instead of plain `cargo test`";

#[test]
fn paho_and_mosquitto_client_scenarios() {
    require_module("paho.mqtt.client", HINT);
    let broker = TestBroker::start();
    run_scenarios(
        "paho",
        "paho/scenarios.py",
        &[broker.mqtt.port().to_string()],
        Duration::from_secs(300),
        HINT,
    );
}
