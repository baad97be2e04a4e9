//! `junction ctl policies`: list, set and delete the policies of a vhost.

use serde_json::{json, Value};

use super::args::PolicyCmd;
use super::client::seg;
use super::{text, Client, CtlError, Out};

const POLICY_COLS: &[(&str, &str)] = &[
    ("vhost", "vhost"),
    ("name", "name"),
    ("pattern", "pattern"),
    ("apply-to", "apply-to"),
    ("priority", "priority"),
    ("definition", "definition"),
    ("not applied", "not_applied"),
];

pub(super) fn policies(c: &Client, v: &str, cmd: PolicyCmd) -> Result<Out, CtlError> {
    Ok(match cmd {
        PolicyCmd::List => {
            let answer = c.get("/api/policies")?;
            // The definition as compact JSON in its cell.
            let mut shown = answer.clone();
            for p in shown.as_array_mut().into_iter().flatten() {
                p["definition"] = json!(p["definition"].to_string());
            }
            Out::Shown(answer, shown, POLICY_COLS)
        }
        PolicyCmd::Set {
            name,
            pattern,
            definition,
            priority,
            apply_to,
        } => {
            let definition: Value = serde_json::from_str(&definition).map_err(|e| {
                CtlError::Invalid(format!("the definition is not a JSON object: {e}"))
            })?;
            if !definition.is_object() {
                return Err(CtlError::Invalid(
                    "the definition must be a JSON object".into(),
                ));
            }
            let path = format!("/api/policies/{v}/{}", seg(&name));
            c.put(
                &path,
                &json!({"pattern": pattern, "definition": definition,
                        "priority": priority, "apply-to": apply_to}),
            )?;
            let saved = c.get(&path)?;
            let skipped: Vec<String> = saved["not_applied"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let line = if skipped.is_empty() {
                format!("policy '{name}' set")
            } else {
                format!(
                    "policy '{name}' set; not applied (not implemented): {}",
                    skipped.join(", ")
                )
            };
            Out::Done(line, saved)
        }
        PolicyCmd::Delete { name } => {
            let r = c.delete(&format!("/api/policies/{v}/{}", seg(&name)))?;
            Out::Done(format!("policy '{name}' deleted"), r)
        }
    })
}
