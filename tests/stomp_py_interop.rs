//! stomp.py (the Python STOMP client) against the real broker: runs
//! `tests/stomp_py/scenarios.py` on the STOMP listener of a [`TestBroker`] and fails if any
//! scenario fails.
//!
//! Needs `python3` with `stomp.py`: `scripts/test` installs it. Without them this test fails (it
//! does not skip), so a machine that cannot run it says so.

mod common;

use std::time::Duration;

use common::python::{require_module, run_scenarios};
use common::TestBroker;

const HINT: &str =
    "run `scripts/test` (it installs the pinned stomp.py) instead of plain `cargo test`";

#[test]
fn stomp_py_scenarios() {
    require_module("stomp", HINT);
    let broker = TestBroker::start();
    run_scenarios(
        "stomp.py",
        "stomp_py/scenarios.py",
        &[broker.stomp.port().to_string()],
        Duration::from_secs(300),
        HINT,
    );
}
