//! Running a Python client's scenario script (pika, paho-mqtt, ...) against a test broker: the
//! script prints `ok <name>` / `FAIL <name>: <why>` per scenario and `N passed, N failed` last.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Fails with `hint` unless `python3` can import `module`.
pub fn require_module(module: &str, hint: &str) {
    let out = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .output();
    match out {
        Err(e) => panic!("python3 is not available ({e}); {hint}"),
        Ok(o) if !o.status.success() => panic!(
            "python3 cannot import {module}: {}; {hint}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Runs `tests/<script>` with `args`; fails unless every scenario passed (and at least one ran).
pub fn run_scenarios(label: &str, script: &str, args: &[String], timeout: Duration, hint: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let started = Instant::now();
    let mut child = Command::new("python3")
        .arg(&script)
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn python3 {}: {e}; {hint}", script.display()));

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
        if started.elapsed() > timeout {
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
        eprintln!("---- {label} stderr ----\n{stderr}");
    }
    println!("{label} run took {:.1} s", started.elapsed().as_secs_f64());

    let Some(status) = status else {
        panic!(
            "scenarios.py did not finish within {} s; output so far:\n{}",
            timeout.as_secs(),
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
        "{label} scenarios failed ({status}):\n{}\n{}",
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
