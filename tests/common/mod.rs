//! Test harness: the real `junction` binary on port 0 with a temporary data directory.

#![allow(dead_code)]

pub mod amqp;
pub mod cluster;
pub mod http;
pub mod mqtt;
pub mod native;
pub mod python;
pub mod stomp;
pub mod tls;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use junction_native as wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A running broker process.
pub struct TestBroker {
    child: Option<Child>,
    /// Native listener address.
    pub native: SocketAddr,
    /// AMQP 0-9-1 listener address.
    pub amqp: SocketAddr,
    /// MQTT listener address.
    pub mqtt: SocketAddr,
    /// Every listener by protocol name, as the broker printed them.
    pub listeners: HashMap<String, SocketAddr>,
    /// STOMP (TCP) listener address.
    pub stomp: SocketAddr,
    /// STOMP over WebSocket listener address.
    pub stomp_ws: SocketAddr,
    /// HTTP admin API listener address.
    pub http: SocketAddr,
    /// Data directory.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    logs: Arc<Mutex<String>>,
}

impl TestBroker {
    /// A broker on a fresh temporary directory.
    pub fn start() -> TestBroker {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = TestBroker::start_in(tmp.path(), &[]);
        b._tmp = Some(tmp);
        b
    }

    /// A broker on a fresh temporary directory, with extra `JUNCTION_*` settings.
    pub fn start_with(env: &[(&str, &str)]) -> TestBroker {
        let tmp = tempfile::tempdir().unwrap();
        let mut b = TestBroker::start_in(tmp.path(), env);
        b._tmp = Some(tmp);
        b
    }

    /// A broker on `dir` (kept after it stops), with extra `JUNCTION_*` settings.
    pub fn start_in(dir: &Path, env: &[(&str, &str)]) -> TestBroker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
        cmd.args([
            "serve",
            "--native-listen",
            "127.0.0.1:0",
            "--amqp-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .env("JUNCTION_MQTT_LISTEN", "127.0.0.1:0")
        .env("JUNCTION_MQTT_WS_LISTEN", "127.0.0.1:0")
        .env("JUNCTION_STORE_SEGMENT_SIZE", "8388608")
        .env("JUNCTION_STORE_MAX_RECORD_SIZE", "4194304")
        .env("JUNCTION_STORE_PRELOAD", "false")
        .env("JUNCTION_STORE_CHECKPOINT_INTERVAL_MS", "200")
        .env("JUNCTION_STOMP_LISTEN", "127.0.0.1:0")
        .env("JUNCTION_STOMP_WS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn junction");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l2 = Arc::clone(&logs);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                l2.lock().unwrap().push_str(&line);
                l2.lock().unwrap().push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // `junction: <protocol> listening on <addr>` per listener, then `junction: ready`.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line == "junction: ready" {
                    let _ = tx.send(None);
                } else if let Some((p, a)) = line
                    .strip_prefix("junction: ")
                    .and_then(|l| l.split_once(" listening on "))
                {
                    let _ = tx.send(Some((p.to_string(), a.parse::<SocketAddr>().unwrap())));
                }
            }
        });
        let mut listeners = HashMap::new();
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Some((p, a))) => {
                    listeners.insert(p, a);
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = child.kill();
                    panic!("broker did not start; logs:\n{}", logs.lock().unwrap());
                }
            }
        }
        let port = |p: &str| {
            *listeners
                .get(p)
                .unwrap_or_else(|| panic!("no {p} listener"))
        };
        let (native, amqp, mqtt) = (port("native"), port("amqp"), port("mqtt"));
        let (stomp, stomp_ws) = (port("stomp"), port("stomp-ws"));
        let http = port("http");
        TestBroker {
            child: Some(child),
            native,
            amqp,
            mqtt,
            listeners,
            stomp,
            stomp_ws,
            http,
            dir: dir.to_path_buf(),
            _tmp: None,
            logs,
        }
    }

    /// The broker's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Everything the broker logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGTERM, then waits (bounded) for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("broker did not stop; logs:\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the broker's log has a line containing `needle`.
    pub async fn logged(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.logs().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no '{needle}' in the log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `method path` on the HTTP API as guest with a JSON body (or none); the answer's JSON
    /// (Null if none). Panics unless the status is 2xx.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let url = format!("http://{}{path}", self.http);
        let (method, path) = (method.to_string(), path.to_string());
        tokio::task::spawn_blocking(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(30)))
                .build()
                .into();
            let req = ureq::http::Request::builder()
                .method(method.as_str())
                .uri(&url)
                // guest:guest
                .header("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
            let res = match body {
                Some(b) => agent.run(
                    req.header("content-type", "application/json")
                        .body(b.to_string())
                        .unwrap(),
                ),
                None => agent.run(req.body(()).unwrap()),
            };
            let mut res = res.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            let text = res.body_mut().read_to_string().unwrap_or_default();
            assert!(
                res.status().is_success(),
                "{method} {path}: {} {text}",
                res.status()
            );
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
        })
        .await
        .unwrap()
    }

    /// Raises the memory alarm: a watermark of one byte, which no broker stays under.
    pub async fn memory_alarm_on(&self) {
        let m = self
            .api(
                "PUT",
                "/api/limits/memory-watermark",
                Some(serde_json::json!({"absolute": 1})),
            )
            .await;
        assert_eq!(m["alarm"], true, "{m}");
    }

    /// Clears the memory alarm (the default watermark, 0.4 of RAM).
    pub async fn memory_alarm_off(&self) {
        let m = self
            .api(
                "PUT",
                "/api/limits/memory-watermark",
                Some(serde_json::json!({"fraction": 0.4})),
            )
            .await;
        assert_eq!(m["alarm"], false, "{m}");
    }

    /// Raises the disk alarm: a free-space limit above any disk's size.
    pub async fn disk_alarm_on(&self) {
        let d = self
            .api(
                "PUT",
                "/api/limits/disk-free-limit",
                Some(serde_json::json!({"bytes": u64::MAX})),
            )
            .await;
        assert_eq!(d["alarm"], true, "{d}");
    }

    /// Clears the disk alarm (a limit of 1 MiB).
    pub async fn disk_alarm_off(&self) {
        let d = self
            .api(
                "PUT",
                "/api/limits/disk-free-limit",
                Some(serde_json::json!({"bytes": 1 << 20})),
            )
            .await;
        assert_eq!(d["alarm"], false, "{d}");
    }

    /// Messages in queue `name` of vhost `/` (ready and unacknowledged), as the API counts them.
    pub async fn queue_depth(&self, name: &str) -> u64 {
        let q = self
            .api("GET", &format!("/api/queues/%2F/{name}"), None)
            .await;
        q["messages"]
            .as_u64()
            .unwrap_or_else(|| panic!("no depth in {q}"))
    }

    /// Waits (bounded) until queue `name` of vhost `/` holds `n` messages (acks are settled
    /// asynchronously).
    pub async fn until_depth(&self, name: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let depth = self.queue_depth(name).await;
            if depth == n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "queue {name} stays at {depth}, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- broker logs ----\n{}", self.logs());
        }
        self.kill();
    }
}

/// A bare native-protocol connection, for tests of the wire itself.
pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
    decoder: wire::Decoder,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.unwrap();
        RawClient {
            stream,
            buf: BytesMut::new(),
            decoder: wire::Decoder::new(wire::DEFAULT_MAX_FRAME),
        }
    }

    pub async fn send(&mut self, f: wire::Frame) {
        self.stream.write_all(&f.to_bytes().unwrap()).await.unwrap();
    }

    pub async fn send_raw(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.unwrap();
    }

    /// The next frame, or `None` when the server closed the connection.
    pub async fn recv(&mut self) -> Option<wire::Frame> {
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(f) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(f);
                }
                if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                    return None;
                }
            }
        })
        .await
        .expect("no frame within 30 s")
    }

    pub async fn hello(&mut self, user: &str, password: &str) -> wire::Frame {
        self.send(wire::Frame::new(
            1,
            wire::Hello {
                client_id: "raw".into(),
                username: user.into(),
                password: password.into(),
                vhost: "/".into(),
                heartbeat_ms: 0,
                max_frame: 0,
            },
        ))
        .await;
        self.recv().await.expect("an answer to Hello")
    }
}
