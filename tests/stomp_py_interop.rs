//! stomp.py (the Python STOMP client) against the real broker: runs
//! `tests/stomp_py/scenarios.py` on the STOMP listener of a [`TestBroker`] and fails if any
//! scenario fails.
//!
//! Needs `python3` with `stomp.py`: `scripts/test` installs it. Without them this test fails (it
//! does not skip), so a machine that cannot run it says so.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestBroker;

/// Longest the whole stomp.py run may take before the child is killed.
const TIMEOUT: Duration = Duration::from_secs(300);

const HINT: &str =
    "run `scripts/test` (it installs the pinned stomp.py) instead of plain `cargo test`";

/// Fails with a hint unless `python3` can import stomp (stomp.py).
fn require_stomp_py() {
    let out = Command::new("python3")
        .args(["-c", "import stomp; print(stomp.__version__)"])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => {
            panic!("python3 is not available ({e}): the stomp.py interop test needs it; {HINT}")
        }
        Ok(o) if !o.status.success() => panic!(
            "python3 cannot import stomp (stomp.py): {}; {HINT}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

#[test]
fn stomp_py_scenarios() {
    require_stomp_py();
    let broker = TestBroker::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stomp_py/scenarios.py");
    let started = Instant::now();
    let mut child = Command::new("python3")
        .arg(&script)
        .arg(broker.stomp.port().to_string())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn python3 {}: {e}; {HINT}", script.display()));

    // Lines are echoed as they come, so a hang shows where it is.
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            let _ = tx.send(line);
        }
    });
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for python3") {
            break Some(st);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = reader.join();
    let stderr = err_reader.join().unwrap_or_default();
    let lines: Vec<String> = rx.try_iter().collect();
    if !stderr.is_empty() {
        eprintln!("---- scenarios.py stderr ----\n{stderr}");
    }
    println!("stomp.py run took {:.1} s", started.elapsed().as_secs_f64());

    let Some(status) = status else {
        panic!(
            "scenarios.py did not finish within {} s; output so far:\n{}",
            TIMEOUT.as_secs(),
            lines.join("\n")
        );
    };
    let failures: Vec<&String> = lines.iter().filter(|l| l.starts_with("FAIL ")).collect();
    let summary = lines
        .iter()
        .rev()
        .find(|l| l.ends_with(" failed") && l.contains(" passed, "));
    assert!(
        status.success() && failures.is_empty(),
        "stomp.py scenarios failed ({status}):\n{}\n{}",
        failures
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        summary.map(String::as_str).unwrap_or("(no summary line)")
    );
    let summary = summary.expect("scenarios.py printed no `N passed, N failed` line");
    assert!(
        summary.ends_with(", 0 failed") && !summary.starts_with("0 passed"),
        "unexpected summary: {summary}"
    );
}
