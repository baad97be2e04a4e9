//! `junction ctl`: the broker's HTTP admin API from the command line.
//!
//! Tables for people, `--json` for scripts (the API's own answer, pretty-printed). Every
//! command is one or a few API calls (see `docs/HTTP_API.md`); nothing here touches the data
//! directory, so it works against a remote broker too. Not a client of the messaging
//! protocols: `publish` and `get` go through the API and are for debugging.

mod args;
mod client;
mod definitions;
mod limits;
mod policies;
mod progress;

use std::io::Read;

use comfy_table::{presets, Table};
use serde_json::{json, Map, Value};

pub use args::CtlArgs;
use args::{
    BindingCmd, ConnectionCmd, CtlCommand, ExchangeCmd, GroupCmd, MqttCmd, PermissionCmd, QueueCmd,
    UserCmd, VhostCmd,
};
use client::seg;
pub use client::{Client, CtlError};

/// A field of a JSON object by `/`-separated path, as table text.
fn cell(v: &Value, path: &str) -> String {
    let mut cur = v;
    for k in path.split('/') {
        cur = &cur[k];
    }
    text(cur)
}

/// A JSON value as table text: arrays joined with commas, a message's place as
/// `queue[partition]@offset`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_u64() && !n.is_i64() => format!("{f:.1}"),
            _ => n.to_string(),
        },
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(","),
        Value::Object(o) if o.contains_key("queue") => format!(
            "{}[{}]@{}",
            text(&v["queue"]),
            text(&v["partition"]),
            text(&v["offset"])
        ),
        other => other.to_string(),
    }
}

/// Renders rows of objects as a table with the given (header, field path) columns.
fn table(rows: &Value, cols: &[(&str, &str)]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_HORIZONTAL_ONLY);
    t.set_header(cols.iter().map(|(h, _)| *h));
    for r in rows.as_array().into_iter().flatten() {
        t.add_row(cols.iter().map(|(_, p)| cell(r, p)));
    }
    t.to_string()
}

/// `NAME=VALUE` pairs as a JSON object; values that parse as JSON numbers or booleans are
/// typed, the rest are strings.
fn pairs(items: &[String]) -> Result<Map<String, Value>, CtlError> {
    let mut m = Map::new();
    for it in items {
        let (k, v) = it
            .split_once('=')
            .ok_or_else(|| CtlError::Invalid(format!("'{it}' is not NAME=VALUE")))?;
        let typed = match serde_json::from_str::<Value>(v) {
            Ok(j @ (Value::Number(_) | Value::Bool(_))) => j,
            _ => Value::String(v.to_string()),
        };
        m.insert(k.to_string(), typed);
    }
    Ok(m)
}

/// What a command prints.
enum Out {
    /// An API answer, shown as a table (or JSON with --json).
    Rows(Value, &'static [(&'static str, &'static str)]),
    /// An API answer (for --json) and the rows shown for people.
    Shown(Value, Value, &'static [(&'static str, &'static str)]),
    /// An API answer shown as `key: value` lines.
    Record(Value, &'static [(&'static str, &'static str)]),
    /// A done action: a line for people, the answer (or `{}`) for scripts.
    Done(String, Value),
}

const QUEUE_COLS: &[(&str, &str)] = &[
    ("name", "name"),
    ("ready", "messages_ready"),
    ("unacked", "messages_unacknowledged"),
    ("consumers", "consumers"),
    ("durable", "durable"),
    ("partitions", "partitions"),
    ("lag", "lag"),
    ("policy", "policy"),
    ("publish/s", "message_stats/publish_details/rate"),
    ("deliver/s", "message_stats/deliver_get_details/rate"),
];
const EXCHANGE_COLS: &[(&str, &str)] = &[
    ("name", "name"),
    ("type", "type"),
    ("durable", "durable"),
    ("auto_delete", "auto_delete"),
    ("internal", "internal"),
];
const BINDING_COLS: &[(&str, &str)] = &[
    ("source", "source"),
    ("destination", "destination"),
    ("type", "destination_type"),
    ("routing_key", "routing_key"),
];
const USER_COLS: &[(&str, &str)] = &[("name", "name"), ("tags", "tags")];
const PERMISSION_COLS: &[(&str, &str)] = &[
    ("user", "user"),
    ("vhost", "vhost"),
    ("configure", "configure"),
    ("write", "write"),
    ("read", "read"),
];
const VHOST_COLS: &[(&str, &str)] = &[
    ("name", "name"),
    ("published", "message_stats/publish"),
    ("delivered", "message_stats/deliver_get"),
];
const CONNECTION_COLS: &[(&str, &str)] = &[
    ("id", "id"),
    ("protocol", "protocol"),
    ("user", "user"),
    ("vhost", "vhost"),
    ("peer", "peer_host"),
    ("client_id", "client_id"),
    ("sessions", "sessions"),
    ("published", "messages_published"),
    ("delivered", "messages_delivered"),
];
const SESSION_COLS: &[(&str, &str)] = &[
    ("client_id", "client_id"),
    ("connected", "connected"),
    ("clean", "clean_session"),
    ("expiry_s", "expiry_interval"),
    ("subscriptions", "subscriptions"),
    ("messages", "messages"),
];
const RETAINED_COLS: &[(&str, &str)] = &[
    ("topic", "topic"),
    ("exchange", "exchange"),
    ("store_ts", "store_ts"),
    ("bytes", "payload_bytes"),
    ("payload", "payload"),
];
const MESSAGE_COLS: &[(&str, &str)] = &[
    ("exchange", "exchange"),
    ("routing_key", "routing_key"),
    ("redelivered", "redelivered"),
    ("message_id", "properties/message_id"),
    ("payload", "payload"),
];
const FOUND_COLS: &[(&str, &str)] = &[
    ("store_ts", "store_ts"),
    ("exchange", "exchange"),
    ("routing_key", "routing_key"),
    ("message_id", "properties/message_id"),
    ("queues", "queues"),
    ("payload", "payload"),
];
const OVERVIEW_ROWS: &[(&str, &str)] = &[
    ("version", "product_version"),
    ("published", "message_stats/publish"),
    ("publish rate", "message_stats/publish_details/rate"),
    ("delivered", "message_stats/deliver_get"),
    ("deliver rate", "message_stats/deliver_get_details/rate"),
    ("acked", "message_stats/ack"),
    ("ready", "queue_totals/messages_ready"),
    ("unacked", "queue_totals/messages_unacknowledged"),
    ("connections", "object_totals/connections"),
    ("queues", "object_totals/queues"),
    ("consumers", "object_totals/consumers"),
    ("memory alarm", "alarms/memory"),
    ("disk alarm", "alarms/disk"),
];

/// Runs a `junction ctl` command, printing its result to standard output.
///
/// # Errors
/// [`CtlError`]: the broker unreachable, an error answer, a bad argument or file.
pub fn run(args: CtlArgs) -> Result<(), CtlError> {
    let c = Client::new(&args.url, &args.user, &args.password);
    let v = seg(&args.vhost);
    let out = match args.command {
        CtlCommand::Overview => Out::Record(c.get("/api/overview")?, OVERVIEW_ROWS),
        CtlCommand::Queues(cmd) => queues(&c, &v, cmd)?,
        CtlCommand::Exchanges(cmd) => exchanges(&c, &v, cmd)?,
        CtlCommand::Bindings(cmd) => bindings(&c, &v, cmd)?,
        CtlCommand::Users(cmd) => users(&c, cmd)?,
        CtlCommand::Permissions(cmd) => permissions(&c, &v, cmd)?,
        CtlCommand::TopicPermissions(cmd) => limits::topic_permissions(&c, &v, cmd)?,
        CtlCommand::Limits(cmd) => limits::limits(&c, &v, cmd)?,
        CtlCommand::Policies(cmd) => policies::policies(&c, &v, cmd)?,
        CtlCommand::Vhosts(cmd) => vhosts(&c, cmd)?,
        CtlCommand::Connections(cmd) => connections(&c, cmd)?,
        CtlCommand::Groups(cmd) => groups(&c, &v, cmd)?,
        CtlCommand::Mqtt(cmd) => mqtt(&c, &v, cmd)?,
        CtlCommand::Publish {
            routing_key,
            body,
            exchange,
            properties,
            headers,
        } => {
            let body = match body {
                Some(b) => b,
                None => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|source| CtlError::Io {
                            path: "<stdin>".into(),
                            source,
                        })?;
                    s
                }
            };
            let mut props = pairs(&properties)?;
            if let Some(Value::String(k)) = props.get("keys").cloned() {
                props.insert(
                    "keys".into(),
                    json!(k.split(',').map(str::to_string).collect::<Vec<_>>()),
                );
            }
            if !headers.is_empty() {
                props.insert("headers".into(), Value::Object(pairs(&headers)?));
            }
            let x = if exchange.is_empty() {
                "amq.default"
            } else {
                &exchange
            };
            let r = c.post(
                &format!("/api/exchanges/{v}/{}/publish", seg(x)),
                &json!({"routing_key": routing_key, "payload": body, "properties": props}),
            )?;
            let line = if r["routed"] == true {
                "published (routed)".to_string()
            } else {
                "published (unroutable: no queue bound for it)".to_string()
            };
            Out::Done(line, r)
        }
        CtlCommand::Get { queue, count, ack } => Out::Rows(
            c.post(
                &format!("/api/queues/{v}/{}/get", seg(&queue)),
                &json!({
                    "count": count,
                    "ackmode": if ack { "ack_requeue_false" } else { "ack_requeue_true" },
                }),
            )?,
            MESSAGE_COLS,
        ),
        CtlCommand::Lookup { id, key } => {
            let q = match (id, key) {
                (Some(id), _) => format!("id={}", seg(&id)),
                (None, Some(k)) => format!("key={}", seg(&k)),
                (None, None) => return Err(CtlError::Invalid("give --id or --key".into())),
            };
            Out::Rows(c.get(&format!("/api/messages/{v}?{q}"))?, FOUND_COLS)
        }
        CtlCommand::Export { file } => {
            let defs = definitions::export(&c)?;
            let text = serde_json::to_string_pretty(&defs).unwrap_or_default();
            if file == "-" {
                println!("{text}");
            } else {
                std::fs::write(&file, text + "\n").map_err(|source| CtlError::Io {
                    path: file.clone(),
                    source,
                })?;
                eprintln!("definitions written to {file}");
            }
            return Ok(());
        }
        CtlCommand::Import { file } => {
            let text = if file == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map(|_| s)
                    .map_err(|source| CtlError::Io {
                        path: "<stdin>".into(),
                        source,
                    })?
            } else {
                std::fs::read_to_string(&file).map_err(|source| CtlError::Io {
                    path: file.clone(),
                    source,
                })?
            };
            let defs: Value = serde_json::from_str(&text)
                .map_err(|e| CtlError::Invalid(format!("{file}: not JSON: {e}")))?;
            let counts = definitions::import(&c, &defs)?;
            Out::Done(format!("imported {counts}"), Value::Null)
        }
    };
    print(out, args.json);
    Ok(())
}

fn print(out: Out, as_json: bool) {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    match out {
        Out::Rows(v, _) | Out::Record(v, _) | Out::Shown(v, _, _) if as_json => {
            println!("{}", pretty(&v))
        }
        Out::Rows(v, cols) | Out::Shown(_, v, cols) => println!("{}", table(&v, cols)),
        Out::Record(v, rows) => {
            let width = rows.iter().map(|(h, _)| h.len()).max().unwrap_or(0);
            for (h, p) in rows {
                println!("{h:width$}  {}", cell(&v, p));
            }
        }
        Out::Done(_, v) if as_json => {
            let v = if v.is_null() { json!({}) } else { v };
            println!("{}", pretty(&v));
        }
        Out::Done(line, _) => println!("{line}"),
    }
}

fn queues(c: &Client, v: &str, cmd: QueueCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        QueueCmd::List => Out::Rows(c.get(&format!("/api/queues/{v}"))?, QUEUE_COLS),
        QueueCmd::Declare {
            name,
            transient,
            auto_delete,
            partitions,
            args,
        } => {
            let r = c.put(
                &format!("/api/queues/{v}/{}", seg(&name)),
                &json!({
                    "durable": !transient,
                    "auto_delete": auto_delete,
                    "partitions": partitions,
                    "arguments": pairs(&args)?,
                }),
            )?;
            Out::Done(format!("queue '{name}' declared"), r)
        }
        QueueCmd::Delete {
            name,
            if_unused,
            if_empty,
        } => {
            let r = c.delete(&format!(
                "/api/queues/{v}/{}?if-unused={if_unused}&if-empty={if_empty}",
                seg(&name)
            ))?;
            Out::Done(format!("queue '{name}' deleted"), r)
        }
        QueueCmd::Purge { name } => {
            let spinner = progress::spinner(format!("purging '{name}'"));
            let r = c.delete(&format!("/api/queues/{v}/{}/contents", seg(&name)));
            spinner.finish_and_clear();
            let r = r?;
            Out::Done(
                format!(
                    "{} messages purged from '{name}'",
                    cell(&r, "messages_purged")
                ),
                r,
            )
        }
    })
}

fn exchanges(c: &Client, v: &str, cmd: ExchangeCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        ExchangeCmd::List => Out::Rows(c.get(&format!("/api/exchanges/{v}"))?, EXCHANGE_COLS),
        ExchangeCmd::Declare {
            name,
            kind,
            transient,
            auto_delete,
            internal,
        } => {
            let r = c.put(
                &format!("/api/exchanges/{v}/{}", seg(&name)),
                &json!({"type": kind, "durable": !transient, "auto_delete": auto_delete, "internal": internal}),
            )?;
            Out::Done(format!("exchange '{name}' declared"), r)
        }
        ExchangeCmd::Delete { name, if_unused } => {
            let r = c.delete(&format!(
                "/api/exchanges/{v}/{}?if-unused={if_unused}",
                seg(&name)
            ))?;
            Out::Done(format!("exchange '{name}' deleted"), r)
        }
    })
}

fn exchange_seg(name: &str) -> String {
    seg(if name.is_empty() { "amq.default" } else { name })
}

fn bindings(c: &Client, v: &str, cmd: BindingCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        BindingCmd::List => Out::Rows(c.get(&format!("/api/bindings/{v}"))?, BINDING_COLS),
        BindingCmd::Add {
            source,
            destination,
            routing_key,
            to_exchange,
        } => {
            let kind = if to_exchange { "e" } else { "q" };
            let r = c.post(
                &format!(
                    "/api/bindings/{v}/e/{}/{kind}/{}",
                    exchange_seg(&source),
                    seg(&destination)
                ),
                &json!({"routing_key": routing_key}),
            )?;
            Out::Done(
                format!("bound '{destination}' to '{source}' with '{routing_key}'"),
                r,
            )
        }
        BindingCmd::Remove {
            source,
            destination,
            routing_key,
            to_exchange,
        } => {
            let kind = if to_exchange { "e" } else { "q" };
            let props = if routing_key.is_empty() {
                "~".to_string()
            } else {
                seg(&routing_key)
            };
            let r = c.delete(&format!(
                "/api/bindings/{v}/e/{}/{kind}/{}/{props}",
                exchange_seg(&source),
                seg(&destination)
            ))?;
            Out::Done(
                format!("unbound '{destination}' from '{source}' ('{routing_key}')"),
                r,
            )
        }
    })
}

fn users(c: &Client, cmd: UserCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        UserCmd::List => Out::Rows(c.get("/api/users")?, USER_COLS),
        UserCmd::Add {
            name,
            new_password,
            tags,
        } => {
            let r = c.put(
                &format!("/api/users/{}", seg(&name)),
                &json!({"password": new_password, "tags": tags}),
            )?;
            Out::Done(format!("user '{name}' saved"), r)
        }
        UserCmd::Delete { name } => {
            let r = c.delete(&format!("/api/users/{}", seg(&name)))?;
            Out::Done(format!("user '{name}' deleted"), r)
        }
    })
}

fn permissions(c: &Client, v: &str, cmd: PermissionCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        PermissionCmd::List => Out::Rows(c.get("/api/permissions")?, PERMISSION_COLS),
        PermissionCmd::Set {
            who: user,
            configure,
            write,
            read,
        } => {
            let r = c.put(
                &format!("/api/permissions/{v}/{}", seg(&user)),
                &json!({"configure": configure, "write": write, "read": read}),
            )?;
            Out::Done(format!("permissions of '{user}' set"), r)
        }
        PermissionCmd::Clear { who: user } => {
            let r = c.delete(&format!("/api/permissions/{v}/{}", seg(&user)))?;
            Out::Done(format!("permissions of '{user}' cleared"), r)
        }
    })
}

fn vhosts(c: &Client, cmd: VhostCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        VhostCmd::List => Out::Rows(c.get("/api/vhosts")?, VHOST_COLS),
        VhostCmd::Add { name } => {
            let r = c.put(&format!("/api/vhosts/{}", seg(&name)), &json!({}))?;
            Out::Done(format!("vhost '{name}' added"), r)
        }
        VhostCmd::Delete { name } => {
            let r = c.delete(&format!("/api/vhosts/{}", seg(&name)))?;
            Out::Done(format!("vhost '{name}' deleted"), r)
        }
    })
}

const GROUP_COLS: &[(&str, &str)] = &[
    ("group", "name"),
    ("members", "members"),
    ("lag", "lag"),
    ("exclusive_partitions", "exclusive_partitions"),
];

fn groups(c: &Client, v: &str, cmd: GroupCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        GroupCmd::List { queue } => {
            let answer = c.get(&format!("/api/queues/{v}/{}/groups", seg(&queue)))?;
            // The default group is "" in the API; people type and read it as `~`.
            let mut shown = answer.clone();
            for g in shown.as_array_mut().into_iter().flatten() {
                if g["name"] == "" {
                    g["name"] = json!("~");
                }
            }
            Out::Shown(answer, shown, GROUP_COLS)
        }
        GroupCmd::Reset { queue, group, to } => {
            let body = match to.split_once(':') {
                None => json!({"to": to}),
                Some(("offset", n)) => json!({"to": "offset", "offset": n.parse::<u64>()
                    .map_err(|_| CtlError::Invalid(format!("'{n}' is not an offset")))?}),
                Some(("time", t)) => json!({"to": "time", "time": t.parse::<i64>()
                    .map_err(|_| CtlError::Invalid(format!("'{t}' is not a time in ms")))?}),
                Some(_) => {
                    return Err(CtlError::Invalid(format!(
                        "--to '{to}': give earliest, latest, offset:N or time:MS"
                    )))
                }
            };
            let r = c.put(
                &format!(
                    "/api/queues/{v}/{}/groups/{}/offsets",
                    seg(&queue),
                    group_seg(&group)
                ),
                &body,
            )?;
            Out::Done(
                format!("offsets of group '{group}' of '{queue}' moved to {to}"),
                r,
            )
        }
        GroupCmd::Delete { queue, group } => {
            let r = c.delete(&format!(
                "/api/queues/{v}/{}/groups/{}",
                seg(&queue),
                group_seg(&group)
            ))?;
            Out::Done(format!("group '{group}' of '{queue}' deleted"), r)
        }
    })
}

/// `~` (the default group) stays as it is in a path.
fn group_seg(g: &str) -> String {
    if g == "~" || g.is_empty() {
        "~".into()
    } else {
        seg(g)
    }
}

fn connections(c: &Client, cmd: ConnectionCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        ConnectionCmd::List => Out::Rows(c.get("/api/connections")?, CONNECTION_COLS),
        ConnectionCmd::Close { id, reason } => {
            let path = format!("/api/connections/{id}");
            let r = c.call_with(
                "DELETE",
                &path,
                None,
                reason.as_deref().map(|r| ("x-reason", r)),
            )?;
            Out::Done(format!("connection {id} closed"), r)
        }
    })
}

fn mqtt(c: &Client, v: &str, cmd: MqttCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        MqttCmd::Sessions => {
            let answer = c.get(&format!("/api/mqtt/sessions/{v}"))?;
            // Subscriptions as `filter:qos`; a session that never expires as `never`.
            let mut shown = answer.clone();
            for s in shown.as_array_mut().into_iter().flatten() {
                let subs: Vec<Value> = s["subscriptions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| json!(format!("{}:{}", text(&x["filter"]), text(&x["qos"]))))
                    .collect();
                s["subscriptions"] = Value::Array(subs);
                if s["expiry_interval"].is_null() {
                    s["expiry_interval"] = json!("never");
                }
            }
            Out::Shown(answer, shown, SESSION_COLS)
        }
        MqttCmd::Retained => Out::Rows(
            c.get(&format!("/api/mqtt/retained/{v}?truncate=64"))?,
            RETAINED_COLS,
        ),
        MqttCmd::ClearRetained { topic } => {
            let path = format!("/api/mqtt/retained/{v}?topic={}", seg(&topic));
            let r = c.call("DELETE", &path, None)?;
            Out::Done(format!("retained message of '{topic}' deleted"), r)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_and_pairs() {
        let v = json!({"a": {"b": 1.5}, "t": ["x", "y"], "n": null, "s": "z", "i": 3,
            "q": [{"queue": "eu", "partition": 0, "offset": 7}]});
        assert_eq!(cell(&v, "q"), "eu[0]@7");
        assert_eq!(cell(&v, "a/b"), "1.5");
        assert_eq!(cell(&v, "t"), "x,y");
        assert_eq!(cell(&v, "n"), "");
        assert_eq!(cell(&v, "missing"), "");
        assert_eq!(cell(&v, "i"), "3");
        let p = pairs(&[
            "x-max-length=10".into(),
            "x-overflow=reject-publish".into(),
            "b=true".into(),
        ])
        .unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"x-max-length": 10, "x-overflow": "reject-publish", "b": true})
        );
        assert!(pairs(&["nope".into()]).is_err());
        assert_eq!(seg("/"), "%2F");
    }
}
