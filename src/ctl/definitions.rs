//! Definitions export and import: vhosts, users, permissions, policies, exchanges, queues and
//! bindings as one JSON document in the shape of RabbitMQ's definitions file, so a file
//! exported from RabbitMQ imports here and the other way round where the concepts match
//! (RabbitMQ's `parameters` and `global_parameters` are not Junction concepts and are ignored;
//! policy keys Junction does not implement are imported, kept and reported as not applied;
//! Junction's queue `partitions` is an extra field RabbitMQ ignores).
//!
//! Import creates objects in dependency order (vhosts, users, permissions, policies, exchanges,
//! queues, bindings) through the API, so the importing user needs the `administrator` tag and
//! permissions on each vhost it fills; existing objects are left as they are when equivalent
//! and reported as errors when not (a policy is replaced, as RabbitMQ does).

use serde_json::{json, Value};

use super::client::{seg, Client, CtlError};

fn array(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn text<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// Reads every definition the caller may see.
///
/// # Errors
/// As [`Client::call`].
pub fn export(c: &Client) -> Result<Value, CtlError> {
    let spinner = super::progress::spinner("exporting definitions".into());
    let overview = c.get("/api/overview")?;
    let vhosts: Vec<Value> = array(&c.get("/api/vhosts")?)
        .map(|v| json!({"name": v["name"]}))
        .collect();
    let users: Vec<Value> = array(&c.get("/api/users")?)
        .map(|u| {
            json!({
                "name": u["name"], "password_hash": u["password_hash"],
                "hashing_algorithm": u["hashing_algorithm"], "tags": u["tags"],
            })
        })
        .collect();
    let permissions = c.get("/api/permissions")?;
    let policies: Vec<Value> = array(&c.get("/api/policies")?)
        .map(|p| {
            json!({
                "vhost": p["vhost"], "name": p["name"], "pattern": p["pattern"],
                "apply-to": p["apply-to"], "definition": p["definition"],
                "priority": p["priority"],
            })
        })
        .collect();
    let exchanges: Vec<Value> = array(&c.get("/api/exchanges")?)
        .filter(|x| {
            let n = text(x, "name");
            !n.is_empty() && !n.starts_with("amq.")
        })
        .map(|x| {
            json!({
                "name": x["name"], "vhost": x["vhost"], "type": x["type"],
                "durable": x["durable"], "auto_delete": x["auto_delete"],
                "internal": x["internal"], "arguments": x["arguments"],
            })
        })
        .collect();
    let queues: Vec<Value> = array(&c.get("/api/queues")?)
        .filter(|q| q["exclusive"] != true)
        .map(|q| {
            json!({
                "name": q["name"], "vhost": q["vhost"], "durable": q["durable"],
                "auto_delete": q["auto_delete"], "arguments": q["arguments"],
                "partitions": q["partitions"],
            })
        })
        .collect();
    let bindings: Vec<Value> = array(&c.get("/api/bindings")?)
        .map(|b| {
            json!({
                "source": b["source"], "vhost": b["vhost"], "destination": b["destination"],
                "destination_type": b["destination_type"], "routing_key": b["routing_key"],
                "arguments": b["arguments"],
            })
        })
        .collect();
    spinner.finish_and_clear();
    Ok(json!({
        "product_name": "Junction",
        "product_version": overview["product_version"],
        "vhosts": vhosts,
        "users": users,
        "permissions": permissions,
        "policies": policies,
        "exchanges": exchanges,
        "queues": queues,
        "bindings": bindings,
    }))
}

fn object(v: &Value, k: &str) -> Value {
    if v[k].is_object() {
        v[k].clone()
    } else {
        json!({})
    }
}

/// Creates what `defs` describes; returns a summary of the counts. Policy keys Junction does
/// not apply are named on standard error.
///
/// # Errors
/// The first failing API call, naming the object.
pub fn import(c: &Client, defs: &Value) -> Result<String, CtlError> {
    let named = |what: &str, name: &str, e: CtlError| match e {
        CtlError::Api {
            status,
            error,
            reason,
        } => CtlError::Api {
            status,
            error,
            reason: format!("{what} '{name}': {reason}"),
        },
        e => e,
    };
    let total: usize = [
        "vhosts",
        "users",
        "permissions",
        "policies",
        "exchanges",
        "queues",
        "bindings",
    ]
    .iter()
    .map(|k| array(&defs[*k]).count())
    .sum();
    let bar = super::progress::bar(total as u64, "importing");
    let mut n = [0usize; 7];
    for v in array(&defs["vhosts"]) {
        let name = text(v, "name");
        c.put(&format!("/api/vhosts/{}", seg(name)), &json!({}))
            .map_err(|e| named("vhost", name, e))?;
        n[0] += 1;
        bar.inc(1);
    }
    for u in array(&defs["users"]) {
        let name = text(u, "name");
        let mut body = json!({"password_hash": u["password_hash"], "tags": u["tags"]});
        if let Some(a) = u["hashing_algorithm"].as_str() {
            body["hashing_algorithm"] = json!(a);
        }
        c.put(&format!("/api/users/{}", seg(name)), &body)
            .map_err(|e| named("user", name, e))?;
        n[1] += 1;
        bar.inc(1);
    }
    for p in array(&defs["permissions"]) {
        let (user, vhost) = (text(p, "user"), text(p, "vhost"));
        c.put(
            &format!("/api/permissions/{}/{}", seg(vhost), seg(user)),
            &json!({"configure": p["configure"], "write": p["write"], "read": p["read"]}),
        )
        .map_err(|e| named("permission", &format!("{user}@{vhost}"), e))?;
        n[2] += 1;
        bar.inc(1);
    }
    for p in array(&defs["policies"]) {
        let (name, vhost) = (text(p, "name"), text(p, "vhost"));
        let path = format!("/api/policies/{}/{}", seg(vhost), seg(name));
        let mut body = json!({
            "pattern": p["pattern"],
            "definition": object(p, "definition"),
            "priority": p["priority"].as_i64().unwrap_or(0),
        });
        if let Some(a) = p["apply-to"].as_str() {
            body["apply-to"] = json!(a);
        }
        c.put(&path, &body).map_err(|e| named("policy", name, e))?;
        let saved = c.get(&path).map_err(|e| named("policy", name, e))?;
        let skipped: Vec<&str> = array(&saved["not_applied"])
            .filter_map(Value::as_str)
            .collect();
        if !skipped.is_empty() {
            bar.suspend(|| {
                eprintln!(
                    "policy '{name}' of vhost '{vhost}': not applied (not implemented): {}",
                    skipped.join(", ")
                )
            });
        }
        n[6] += 1;
        bar.inc(1);
    }
    for x in array(&defs["exchanges"]) {
        let (name, vhost) = (text(x, "name"), text(x, "vhost"));
        c.put(
            &format!("/api/exchanges/{}/{}", seg(vhost), seg(name)),
            &json!({
                "type": x["type"], "durable": x["durable"].as_bool().unwrap_or(true),
                "auto_delete": x["auto_delete"].as_bool().unwrap_or(false),
                "internal": x["internal"].as_bool().unwrap_or(false),
                "arguments": object(x, "arguments"),
            }),
        )
        .map_err(|e| named("exchange", name, e))?;
        n[3] += 1;
        bar.inc(1);
    }
    for q in array(&defs["queues"]) {
        let (name, vhost) = (text(q, "name"), text(q, "vhost"));
        let mut body = json!({
            "durable": q["durable"].as_bool().unwrap_or(true),
            "auto_delete": q["auto_delete"].as_bool().unwrap_or(false),
            "arguments": object(q, "arguments"),
        });
        if let Some(p) = q["partitions"].as_u64() {
            body["partitions"] = json!(p);
        }
        c.put(&format!("/api/queues/{}/{}", seg(vhost), seg(name)), &body)
            .map_err(|e| named("queue", name, e))?;
        n[4] += 1;
        bar.inc(1);
    }
    for b in array(&defs["bindings"]) {
        let (source, vhost, dest) = (text(b, "source"), text(b, "vhost"), text(b, "destination"));
        let kind = if text(b, "destination_type") == "exchange" {
            "e"
        } else {
            "q"
        };
        let source_seg = seg(if source.is_empty() {
            "amq.default"
        } else {
            source
        });
        c.post(
            &format!("/api/bindings/{}/e/{source_seg}/{kind}/{}", seg(vhost), seg(dest)),
            &json!({"routing_key": b["routing_key"].as_str().unwrap_or_default(), "arguments": object(b, "arguments")}),
        )
        .map_err(|e| named("binding", &format!("{source} -> {dest}"), e))?;
        n[5] += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(format!(
        "{} vhosts, {} users, {} permissions, {} policies, {} exchanges, {} queues, {} bindings",
        n[0], n[1], n[2], n[6], n[3], n[4], n[5]
    ))
}
