//! The dashboard in headless Chromium: Debian's `chromium` driven over WebDriver by Debian's
//! `chromedriver` (package `chromium-driver`, which `scripts/test` installs) and `fantoccini`.
//!
//! The real broker on port 0, the page signed in with a wrong and then the right password, a
//! queue's numbers watched while an AMQP client publishes (they must change on the page by
//! themselves, in its text and in a picture of the depth cell), the overview's figures and
//! chart, a connection closed with the page's button, and a screenshot of the page checked to
//! be a real PNG of the viewport's size.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::amqp::{channel, connect, declare};
use common::TestBroker;
use fantoccini::{Client, ClientBuilder, Locator};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 1000;
/// Generous: CI runs on two busy cores, and Chromium is not small.
const DEADLINE: Duration = Duration::from_secs(90);
/// Messages per published batch.
const BATCH: u64 = 25;

/// `chromedriver` on a port of its choosing, in its own process group so that the browser it
/// starts goes with it.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let chromedriver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let (Some(chromedriver), true) = (chromedriver, Path::new(CHROMIUM).exists()) else {
            panic!(
                "the dashboard test needs Debian's chromium ({CHROMIUM}) and chromium-driver \
                 (/usr/bin/chromedriver): scripts/test installs them, or run \
                 `apt-get install chromium chromium-driver`"
            );
        };
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(chromedriver)
            .args(["--port=0", "--log-level=WARNING"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // "ChromeDriver was started successfully on port 40457." Then keep draining.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(p) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|r| r.trim_end_matches('.').parse::<u16>().ok())
                {
                    let _ = tx.send(p);
                }
            }
        });
        let port = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromedriver did not say which port it listens on");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// A headless Chromium session with a fresh profile in `profile`.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    let mut args = vec![
        "--headless".to_string(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-dev-shm-usage".into(),
        format!("--window-size={WIDTH},{HEIGHT}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    if rustix::process::getuid().is_root() {
        // Chromium refuses to run as root with its sandbox.
        args.push("--no-sandbox".into());
    }
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
    });
    let Value::Object(caps) = caps else {
        unreachable!("an object")
    };
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    tokio::time::timeout(
        DEADLINE,
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&driver.url),
    )
    .await
    .expect("a browser session in time")
    .expect("a browser session")
}

/// Runs `script` (a function body; `arguments[0]` is `arg`) until it returns something other
/// than `null`/`false`, and returns that.
async fn until(c: &Client, what: &str, script: &str, arg: Value) -> Value {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match c.execute(script, vec![arg.clone()]).await {
            Ok(v) if v != Value::Null && v != Value::Bool(false) => return v,
            Ok(v) => v,
            Err(e) => json!(e.to_string()),
        };
        assert!(
            Instant::now() < deadline,
            "the page never showed {what} (last answer: {last})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How a queue's row reads: its cells' text by field, or null while it is not shown.
const QUEUE_ROW: &str = r#"
    const tr = document.querySelector(`#queues tr[data-name="${arguments[0].name}"]`);
    if (!tr || tr.offsetParent === null) return null;
    const cell = (f) => tr.querySelector(`td[data-field="${f}"]`).textContent;
    return { messages: cell('messages'), ready: cell('ready'), publish_rate: cell('publish_rate'),
             lag: cell('lag') };
"#;

/// `"12.5/s"` -> 12.5.
fn rate(text: &Value) -> f64 {
    text.as_str()
        .and_then(|t| t.strip_suffix("/s"))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a rate: {text}"))
}

/// `"1,250"` -> 1250.
fn count(text: &Value) -> u64 {
    text.as_str()
        .map(|t| t.replace(',', ""))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("not a count: {text}"))
}

/// Publishes batches of [`BATCH`] messages (confirmed) until the page shows, in one reading,
/// the queue's exact depth and a publish rate above zero: a rate is a five-second average, so
/// a page slowed down long enough could miss one batch's, never every batch's. Returns the
/// depth and the reading.
async fn publish_until_seen(
    c: &Client,
    ch: &lapin::Channel,
    queue: &str,
    mut depth: u64,
    read: &str,
) -> (u64, Value) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        for i in 0..BATCH {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                format!("order {}", depth + i).as_bytes(),
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        }
        depth += BATCH;
        let round = Instant::now() + Duration::from_secs(8);
        while Instant::now() < round {
            let v = c
                .execute(read, vec![json!({"name": queue})])
                .await
                .expect("script");
            if let Some((shown, r)) = v.get("depth").zip(v.get("rate")) {
                if count(shown) == depth && rate(r) > 0.0 {
                    return (depth, v);
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(
            Instant::now() < deadline,
            "the page never showed depth {depth} with a rate above zero"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_live_numbers_in_chromium() {
    let b = TestBroker::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let driver = Driver::start();
    let c = browser(&driver, &tmp.path().join("profile")).await;
    let base = format!("http://{}", b.http);

    let conn = connect(&b).await;
    let ch = channel(&conn).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");

    // The page needs no credentials to load; the API refuses a wrong password.
    c.goto(&format!("{base}/dashboard")).await.expect("open");
    let sign_in = |user: &'static str, password: &'static str| {
        let c = c.clone();
        async move {
            let u = c.find(Locator::Id("login-user")).await.expect("user field");
            u.clear().await.expect("clear");
            u.send_keys(user).await.expect("type");
            let p = c.find(Locator::Id("login-password")).await.expect("field");
            p.clear().await.expect("clear");
            p.send_keys(password).await.expect("type");
            c.find(Locator::Id("login-submit"))
                .await
                .expect("button")
                .click()
                .await
                .expect("click");
        }
    };
    until(
        &c,
        "the login form",
        "return !document.getElementById('login').hidden",
        Value::Null,
    )
    .await;
    sign_in("guest", "wrong").await;
    let refused = until(
        &c,
        "the refusal",
        "const e = document.getElementById('login-error'); return e.hidden ? null : e.textContent",
        Value::Null,
    )
    .await;
    assert!(
        refused
            .as_str()
            .unwrap_or("")
            .starts_with("Login refused for user 'guest'"),
        "{refused}"
    );
    sign_in("guest", "guest").await;
    let who = until(
        &c,
        "the signed-in app",
        "return document.getElementById('app').hidden ? null : document.getElementById('whoami').textContent",
        Value::Null,
    )
    .await;
    assert!(who.as_str().unwrap_or("").starts_with("guest"), "{who}");
    let stored = c
        .execute("return sessionStorage.getItem('junction.auth')", vec![])
        .await
        .expect("script");
    assert_eq!(
        stored,
        json!("Z3Vlc3Q6Z3Vlc3Q="),
        "credentials kept for the tab"
    );

    // The queues view lists no queue, then the new empty one, then its depth and rate change
    // as messages are published, without any reload.
    c.goto(&format!("{base}/dashboard#queues"))
        .await
        .expect("queues");
    until(
        &c,
        "an empty queue list",
        "const t = document.querySelector('#queues td.empty'); return t && t.offsetParent !== null ? t.textContent : null",
        Value::Null,
    )
    .await;
    let queue = declare(&ch, "dashboard.orders").await;
    let before = until(&c, "the queue's row", QUEUE_ROW, json!({"name": queue})).await;
    assert_eq!(count(&before["messages"]), 0, "{before}");
    assert_eq!(rate(&before["publish_rate"]), 0.0, "{before}");
    let read_queue = format!(
        "const r = (() => {{ {QUEUE_ROW} }})(); return r && {{ depth: r.messages, rate: r.publish_rate }};"
    );
    let depth_cell = format!(r#"#queues tr[data-name="{queue}"] td[data-field="messages"]"#);
    let cell_shot = |c: Client, css: String| async move {
        let png = c
            .find(Locator::Css(&css))
            .await
            .expect("the cell")
            .screenshot()
            .await
            .expect("element screenshot");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
        png
    };
    let shot_before = cell_shot(c.clone(), depth_cell.clone()).await;
    // (A picture of an unchanged cell is the same picture: what differs later is the number.)
    assert_eq!(cell_shot(c.clone(), depth_cell.clone()).await, shot_before);
    let (depth, seen) = publish_until_seen(&c, &ch, &queue, 0, &read_queue).await;
    assert!(depth >= BATCH, "{seen}");
    // The pixels changed too: a picture of the depth cell shows another number.
    let shot_after = cell_shot(c.clone(), depth_cell).await;
    std::fs::write(tmp.path().join("depth-before.png"), &shot_before).expect("write");
    std::fs::write(tmp.path().join("depth-after.png"), &shot_after).expect("write");
    assert_ne!(shot_before, shot_after, "the depth cell looks the same");
    // With no consumer, the default group lags by every message: the lag column says so, from
    // the same refresh as the depth.
    let row = until(&c, "the queue's row", QUEUE_ROW, json!({"name": queue})).await;
    assert_eq!(count(&row["lag"]), count(&row["messages"]), "{row}");
    assert!(count(&row["lag"]) >= depth, "{row}");

    // The overview: the totals and the rate chart's figures follow too.
    c.find(Locator::Css(r#".sidebar a[data-view="overview"]"#))
        .await
        .expect("link")
        .click()
        .await
        .expect("click");
    let read_overview = r#"
        if (document.getElementById('view-overview').hidden) return null;
        return { depth: document.getElementById('stat-ready').textContent,
                 rate: document.getElementById('stat-publish-rate').textContent };
    "#;
    let (depth, seen) = publish_until_seen(&c, &ch, &queue, depth, read_overview).await;
    assert!(depth >= 2 * BATCH, "{seen}");
    // The chart was drawn: the canvas has coloured pixels.
    let drawn = until(
        &c,
        "a drawn rate chart",
        r#"const cv = document.getElementById('chart-rates');
           const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
           let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
           return n > 1000 ? n : null;"#,
        Value::Null,
    )
    .await;
    assert!(drawn.as_u64().unwrap_or(0) > 1000, "{drawn}");

    let viewport = c
        .execute(
            "return [innerWidth * devicePixelRatio, innerHeight * devicePixelRatio]",
            vec![],
        )
        .await
        .expect("script");
    let png = c.screenshot().await.expect("screenshot");
    let shot = tmp.path().join("dashboard.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    if let Ok(dir) = std::env::var("DASHBOARD_SCREENSHOT_DIR") {
        std::fs::write(Path::new(&dir).join("dashboard.png"), &png).expect("copy");
    }
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG signature");
    assert_eq!(&png[12..16], b"IHDR", "a PNG header chunk");
    let dim = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().expect("4 bytes"));
    assert_eq!(
        json!([dim(16), dim(20)]),
        viewport,
        "the page's viewport, in pixels"
    );
    assert!(
        (20_000..20_000_000).contains(&png.len()),
        "a rendered page is tens of KiB at least: {} bytes",
        png.len()
    );

    // Connections: the AMQP client is listed; its Close button closes it with the reason.
    c.goto(&format!("{base}/dashboard#connections"))
        .await
        .expect("connections");
    let id = until(
        &c,
        "the AMQP connection",
        r#"const tr = [...document.querySelectorAll('#connections tr[data-id]')]
               .find((r) => r.querySelector('td[data-field="protocol"]').textContent === 'amqp');
           return tr ? tr.dataset.id : null;"#,
        Value::Null,
    )
    .await;
    c.find(Locator::Css(&format!(
        r#"#connections tr[data-id="{}"] button"#,
        id.as_str().expect("an id")
    )))
    .await
    .expect("close button")
    .click()
    .await
    .expect("click");
    let reason = c.find(Locator::Id("modal-input")).await.expect("reason");
    reason.send_keys("dashboard test").await.expect("type");
    c.find(Locator::Id("modal-ok"))
        .await
        .expect("ok")
        .click()
        .await
        .expect("click");
    let closed = Instant::now() + DEADLINE;
    while conn.status().connected() {
        assert!(Instant::now() < closed, "the connection was not closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    until(
        &c,
        "the connection gone from the list",
        "return document.querySelectorAll('#connections tr[data-id]').length === 0",
        Value::Null,
    )
    .await;

    c.close().await.expect("close the browser");
}
