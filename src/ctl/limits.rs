//! `junction ctl topic-permissions` and `junction ctl limits` (vhost and user limits, the
//! memory high watermark and the disk free limit).

use serde_json::{json, Value};

use super::args::{LimitCmd, TopicPermissionCmd};
use super::client::seg;
use super::{Client, CtlError, Out};

const TOPIC_COLS: &[(&str, &str)] = &[
    ("user", "user"),
    ("vhost", "vhost"),
    ("exchange", "exchange"),
    ("write", "write"),
    ("read", "read"),
];

const MEMORY_ROWS: &[(&str, &str)] = &[
    ("fraction", "fraction"),
    ("absolute", "absolute"),
    ("limit", "limit"),
    ("used", "used"),
    ("total", "total"),
    ("alarm", "alarm"),
];

const DISK_ROWS: &[(&str, &str)] = &[("limit", "limit"), ("free", "free"), ("alarm", "alarm")];

const LIMIT_COLS: &[(&str, &str)] = &[
    ("vhost", "vhost"),
    ("user", "user"),
    ("max-connections", "value/max-connections"),
    ("max-queues", "value/max-queues"),
    ("max-channels", "value/max-channels"),
];

pub(super) fn topic_permissions(
    c: &Client,
    v: &str,
    cmd: TopicPermissionCmd,
) -> Result<Out, CtlError> {
    Ok(match cmd {
        TopicPermissionCmd::List => Out::Rows(c.get("/api/topic-permissions")?, TOPIC_COLS),
        TopicPermissionCmd::Set {
            who,
            exchange,
            write,
            read,
        } => {
            let r = c.put(
                &format!("/api/topic-permissions/{v}/{}", seg(&who)),
                &json!({"exchange": exchange, "write": write, "read": read}),
            )?;
            Out::Done(
                format!("topic permission of '{who}' on '{exchange}' set"),
                r,
            )
        }
        TopicPermissionCmd::Clear { who, exchange } => {
            let q = exchange
                .as_deref()
                .map(|x| format!("?exchange={}", seg(x)))
                .unwrap_or_default();
            let r = c.delete(&format!("/api/topic-permissions/{v}/{}{q}", seg(&who)))?;
            Out::Done(format!("topic permissions of '{who}' cleared"), r)
        }
    })
}

pub(super) fn limits(c: &Client, v: &str, cmd: LimitCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        LimitCmd::List => {
            let mut rows = Vec::new();
            for path in ["/api/vhost-limits", "/api/user-limits"] {
                if let Value::Array(a) = c.get(path)? {
                    rows.extend(a);
                }
            }
            Out::Rows(Value::Array(rows), LIMIT_COLS)
        }
        LimitCmd::Vhost { name, value } => {
            let path = format!("/api/vhost-limits/{v}/{}", seg(&name));
            let r = c.put(&path, &json!({ "value": value }))?;
            Out::Done(limit_done(&format!("vhost limit {name}"), value), r)
        }
        LimitCmd::User { who, name, value } => {
            let path = format!("/api/user-limits/{}/{}", seg(&who), seg(&name));
            let r = c.put(&path, &json!({ "value": value }))?;
            Out::Done(limit_done(&format!("limit {name} of '{who}'"), value), r)
        }
        LimitCmd::MemoryWatermark { value, absolute } => {
            const PATH: &str = "/api/limits/memory-watermark";
            let Some(value) = value else {
                return Ok(Out::Record(c.get(PATH)?, MEMORY_ROWS));
            };
            let body = if absolute {
                json!({ "absolute": bytes(&value)? })
            } else {
                let f: f64 = value.parse().map_err(|_| {
                    CtlError::Invalid(format!(
                        "'{value}' is not a fraction of RAM (give --absolute for an amount)"
                    ))
                })?;
                json!({ "fraction": f })
            };
            let r = c.put(PATH, &body)?;
            Out::Done(alarm_line("memory high watermark", &value, &r), r)
        }
        LimitCmd::DiskFreeLimit { value } => {
            const PATH: &str = "/api/limits/disk-free-limit";
            let Some(value) = value else {
                return Ok(Out::Record(c.get(PATH)?, DISK_ROWS));
            };
            let r = c.put(PATH, &json!({ "bytes": bytes(&value)? }))?;
            Out::Done(alarm_line("disk free limit", &value, &r), r)
        }
    })
}

fn alarm_line(what: &str, value: &str, r: &Value) -> String {
    let state = if r["alarm"] == true {
        "alarm on: publishing blocked"
    } else {
        "no alarm"
    };
    format!("{what} set to {value} ({state})")
}

/// An amount of bytes as RabbitMQ writes it: a number with an optional unit, kB/MB/GB/TB in
/// powers of 10, KiB/MiB/GiB/TiB in powers of 2 (k, M, G, T alone: powers of 2).
fn bytes(text: &str) -> Result<u64, CtlError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        CtlError::Invalid(format!(
            "'{text}' is not an amount of bytes (e.g. 512MiB, 2GB)"
        ))
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        "k" | "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        "T" | "TiB" => 1 << 40,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).ok_or_else(bad)
}

fn limit_done(what: &str, value: i64) -> String {
    if value < 0 {
        format!("{what} removed")
    } else {
        format!("{what} set to {value}")
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn amounts_of_bytes() {
        assert_eq!(bytes("1024").unwrap(), 1024);
        assert_eq!(bytes("2GB").unwrap(), 2_000_000_000);
        assert_eq!(bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(bytes("3 G").unwrap(), 3 << 30);
        assert_eq!(bytes("1kB").unwrap(), 1000);
        assert!(bytes("lots").is_err());
        assert!(bytes("1.5GB").is_err());
        assert!(bytes("5PB").is_err());
        assert!(bytes("99999999999999TB").is_err());
    }
}
