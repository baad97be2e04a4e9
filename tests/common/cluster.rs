//! Cluster test harness: name servers, controllers and brokers as separate `junction`
//! processes on 127.0.0.1 port 0, each with its own temporary data directory, all killed when
//! dropped; and a TCP proxy that can stop forwarding (a network cut).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running `junction` process.
pub struct Proc {
    child: Option<Child>,
    /// Listeners it printed, by protocol (`native`, `amqp`, `ha`, `namesrv`, ...).
    pub listeners: HashMap<String, SocketAddr>,
    /// Its data directory (brokers and controllers).
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    logs: Arc<Mutex<String>>,
    name: String,
}

fn spawn(name: &str, mut cmd: Command) -> (Child, HashMap<String, SocketAddr>, Arc<Mutex<String>>) {
    cmd.env(
        "RUST_LOG",
        std::env::var("CLUSTER_TEST_LOG").unwrap_or_else(|_| "info".into()),
    )
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn junction");
    let logs = Arc::new(Mutex::new(String::new()));
    let stderr = child.stderr.take().unwrap();
    let l2 = Arc::clone(&logs);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = l2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
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
        match rx.recv_timeout(Duration::from_secs(90)) {
            Ok(Some((p, a))) => {
                listeners.insert(p, a);
            }
            Ok(None) => break,
            Err(_) => {
                let _ = child.kill();
                panic!("{name} did not start; logs:\n{}", logs.lock().unwrap());
            }
        }
    }
    (child, listeners, logs)
}

impl Proc {
    /// A name server dropping brokers silent for `timeout_ms`.
    pub fn namesrv(timeout_ms: u64) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
        cmd.args(["namesrv", "--listen", "127.0.0.1:0", "--broker-timeout-ms"])
            .arg(timeout_ms.to_string());
        let (child, listeners, logs) = spawn("namesrv", cmd);
        Proc {
            child: Some(child),
            listeners,
            dir: PathBuf::new(),
            _tmp: None,
            logs,
            name: "namesrv".into(),
        }
    }

    /// Controller `id` of `peers` (`id=host:port,...`), replacing brokers silent for
    /// `timeout_ms`, on a fresh temporary directory.
    pub fn controller(id: u64, peers: &str, timeout_ms: u64) -> Proc {
        let tmp = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
        cmd.args(["controller", "--id", &id.to_string(), "--peers", peers])
            .arg("--data-dir")
            .arg(tmp.path())
            .arg("--broker-timeout-ms")
            .arg(timeout_ms.to_string());
        let name = format!("controller-{id}");
        let (child, listeners, logs) = spawn(&name, cmd);
        Proc {
            child: Some(child),
            listeners,
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
            logs,
            name,
        }
    }

    /// A broker with `cluster` as its `[cluster]` section, on a fresh temporary directory.
    pub fn broker(name: &str, cluster: &str) -> Proc {
        let tmp = tempfile::tempdir().unwrap();
        let mut p = Proc::broker_in(name, tmp.path(), cluster);
        p._tmp = Some(tmp);
        p
    }

    /// A broker on `dir` (kept), every listener on port 0.
    pub fn broker_in(name: &str, dir: &Path, cluster: &str) -> Proc {
        let conf = format!(
            r#"data_dir = "{dir}"
shutdown_timeout_ms = 2000
[store]
segment_size = 8388608
max_record_size = 4194304
preload = false
checkpoint_interval_ms = 200
[native]
listen = "127.0.0.1:0"
[amqp]
listen = "127.0.0.1:0"
heartbeat_s = 5
[mqtt]
listen = "127.0.0.1:0"
ws_enabled = false
[stomp]
listen = "127.0.0.1:0"
ws_enabled = false
[http]
listen = "127.0.0.1:0"
[cluster]
enabled = true
ha_listen = "127.0.0.1:0"
heartbeat_interval_ms = 200
isr_timeout_ms = 1500
sync_timeout_ms = 3000
meta_sync_interval_ms = 1000
{cluster}
"#,
            dir = dir.join("data").display()
        );
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("junction.toml");
        std::fs::write(&path, conf).unwrap();
        Proc::start_broker(name, dir, &path)
    }

    fn start_broker(name: &str, dir: &Path, conf: &Path) -> Proc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_junction"));
        cmd.arg("serve").arg("--config").arg(conf);
        let (child, listeners, logs) = spawn(name, cmd);
        Proc {
            child: Some(child),
            listeners,
            dir: dir.to_path_buf(),
            _tmp: None,
            logs,
            name: name.into(),
        }
    }

    /// Starts the same broker again (same directory and configuration).
    pub fn restart(&mut self) {
        self.kill();
        let conf = self.dir.join("junction.toml");
        let mut p = Proc::start_broker(&self.name, &self.dir, &conf);
        self.child = p.child.take();
        self.listeners = std::mem::take(&mut p.listeners);
        self.logs = std::sync::Arc::clone(&p.logs);
    }

    /// A listener's address.
    pub fn addr(&self, protocol: &str) -> SocketAddr {
        *self
            .listeners
            .get(protocol)
            .unwrap_or_else(|| panic!("{}: no {protocol} listener", self.name))
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// SIGKILL (kill -9), at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = rustix::process::Pid::from_child(&child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop; logs:\n{}", self.name, self.logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The broker's admin overview (`GET /api/overview` as guest).
    pub fn overview(&self) -> serde_json::Value {
        http_get(self.addr("http"), "/api/overview", true).unwrap_or_default()
    }

    /// The broker's CommitLog end, from its admin API.
    pub fn log_end(&self) -> u64 {
        self.overview()["store"]["log_end"].as_u64().unwrap_or(0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- {} logs ----\n{}", self.name, self.logs());
        }
        self.kill();
    }
}

/// A port free on 127.0.0.1 right now (for processes that must know each other's addresses
/// before they start, as Raft peers do).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET http://addr/path` as JSON (`None` on any failure or non-2xx answer).
pub fn http_get(addr: SocketAddr, path: &str, auth: bool) -> Option<serde_json::Value> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut req = agent.get(format!("http://{addr}{path}"));
    if auth {
        req = req.header("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=");
    }
    let mut resp = req.call().ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.body_mut().read_json().ok()
}

/// Polls `cond` every 50 ms until it holds, for at most `secs` seconds.
pub fn wait_until(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Async version of [`wait_until`].
pub async fn wait_until_async<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TCP proxy on 127.0.0.1 that forwards to `target` until told to stop forwarding: then it
/// holds every byte (the connections stay open, nothing gets through), as a network cut does.
pub struct CutProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    cut: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl CutProxy {
    /// Starts forwarding to `target` (on its own threads; no runtime needed).
    pub fn start(target: SocketAddr) -> CutProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&cut), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = std::net::TcpStream::connect(target) else {
                            continue;
                        };
                        for (from, to) in [
                            (client.try_clone().unwrap(), server.try_clone().unwrap()),
                            (server, client),
                        ] {
                            let (c, s) = (Arc::clone(&c), Arc::clone(&s));
                            std::thread::spawn(move || pump(from, to, &c, &s));
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        CutProxy { addr, cut, stop }
    }

    /// Stops (true) or resumes (false) forwarding.
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::Release);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.cut.store(false, Ordering::Release);
    }
}

fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    cut: &AtomicBool,
    stop: &AtomicBool,
) {
    use std::io::{Read, Write};
    let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = vec![0u8; 64 << 10];
    while !stop.load(Ordering::Acquire) {
        if cut.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Held while cut: the bytes wait here, as in a dropped network.
                while cut.load(Ordering::Acquire) && !stop.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
