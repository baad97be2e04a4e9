//! `junction ctl topic-permissions` and `junction ctl limits`.

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
    })
}

fn limit_done(what: &str, value: i64) -> String {
    if value < 0 {
        format!("{what} removed")
    } else {
        format!("{what} set to {value}")
    }
}
