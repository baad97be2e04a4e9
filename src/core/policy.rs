//! Policies, as RabbitMQ has them: a named regular expression over the queue and exchange names
//! of one vhost, with a definition of settings for what it matches. Kept in `meta.json`, set
//! through the admin API, carried by definitions export and import.
//!
//! The rules, RabbitMQ's (`rabbit_amqqueue_process`'s table of policy keys):
//! - Of the policies whose pattern matches a name (and whose `apply-to` covers it), the one of
//!   highest priority applies, alone; between equal priorities the first by name wins (RabbitMQ
//!   leaves that case undefined).
//! - A queue's own `x-` argument and the same key of its policy: for `message-ttl`, `expires`,
//!   `max-length`, `max-length-bytes` and `delivery-limit` the lower value is in force; for
//!   `overflow`, `dead-letter-exchange` and `dead-letter-routing-key` the queue's argument wins.
//! - A definition's keys are checked when the policy is set (a bad value is refused); keys
//!   Junction does not implement (RabbitMQ's `ha-mode`, `queue-mode`, `federation-upstream`,
//!   ...) are kept, exported and listed as not applied, so a RabbitMQ definitions file imports.
//!   No key applies to exchanges yet: an exchange shows the policy that matches it, no more.
//! - Setting, changing or deleting a policy re-applies the vhost's policies to its queues at
//!   once: publishers and each queue's actor read the arguments in force on every use, and the
//!   actor is told, so a lower `max-length` drops the head at once and `expires` counts from
//!   the change.
//!
//! Not here: operator policies (RabbitMQ's `operator_policies`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::{CoreError, CoreResult};
use super::message::Value;
use super::meta::{as_u64, QueueArgs};
use super::queue::{QueueCmd, QueueHandle};
use super::{lock, rlock, Broker, BrokerInner};

/// What a policy applies to (RabbitMQ's `apply-to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyTo {
    /// Queues only.
    Queues,
    /// Exchanges only.
    Exchanges,
    /// Queues and exchanges.
    All,
}

impl ApplyTo {
    /// Parses `queues`, `exchanges`, `all`.
    pub fn parse(s: &str) -> Option<ApplyTo> {
        Some(match s {
            "queues" => ApplyTo::Queues,
            "exchanges" => ApplyTo::Exchanges,
            "all" => ApplyTo::All,
            _ => return None,
        })
    }

    /// The name as RabbitMQ writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// What a policy is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A queue's name.
    Queue,
    /// An exchange's name.
    Exchange,
}

/// A policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Virtual host.
    pub vhost: String,
    /// Name.
    pub name: String,
    /// Regular expression matched against queue or exchange names (unanchored, as RabbitMQ's).
    pub pattern: String,
    /// What it applies to.
    pub apply_to: ApplyTo,
    /// Among matching policies, the highest applies.
    pub priority: i64,
    /// Its settings, by RabbitMQ's key names (`max-length`, ...), in the order given.
    pub definition: Vec<(String, Value)>,
}

/// How a policy's key and the queue's own argument combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    /// Both set: the lower value is in force.
    Lower,
    /// Both set: the queue's argument is in force.
    QueueWins,
}

/// The definition keys applied to queues; each maps onto the queue argument `x-<key>`.
const APPLIED: [(&str, Combine); 8] = [
    ("message-ttl", Combine::Lower),
    ("expires", Combine::Lower),
    ("max-length", Combine::Lower),
    ("max-length-bytes", Combine::Lower),
    ("delivery-limit", Combine::Lower),
    ("overflow", Combine::QueueWins),
    ("dead-letter-exchange", Combine::QueueWins),
    ("dead-letter-routing-key", Combine::QueueWins),
];

/// The definition keys Junction applies, for error messages and documentation.
pub fn applied_keys() -> impl Iterator<Item = &'static str> {
    APPLIED.iter().map(|(k, _)| *k)
}

fn combine_of(key: &str) -> Option<Combine> {
    APPLIED.iter().find(|(k, _)| *k == key).map(|(_, c)| *c)
}

impl Policy {
    /// Checks the pattern and the definition (non-empty, and a valid value for every key
    /// Junction applies).
    ///
    /// # Errors
    /// [`CoreError::Invalid`] saying what is wrong.
    pub fn validate(&self) -> CoreResult<()> {
        if self.name.is_empty() {
            return Err(CoreError::Invalid("a policy name cannot be empty".into()));
        }
        regex::Regex::new(&self.pattern)
            .map_err(|e| CoreError::Invalid(format!("pattern is not a regular expression: {e}")))?;
        if self.definition.is_empty() {
            return Err(CoreError::Invalid(
                "a policy definition cannot be empty".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &self.definition {
            if !seen.insert(k.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "key '{k}' appears twice in the definition"
                )));
            }
        }
        for (arg, v) in self.as_queue_args() {
            let key = arg.trim_start_matches("x-");
            QueueArgs::parse(&[(arg.clone(), v)])
                .map_err(|e| CoreError::Invalid(format!("policy key '{key}': {e}")))?;
        }
        Ok(())
    }

    /// The definition's keys that Junction does not apply (kept, exported, listed).
    pub fn not_applied(&self) -> Vec<String> {
        self.definition
            .iter()
            .filter(|(k, _)| combine_of(k).is_none())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The keys Junction applies, as queue arguments (`x-max-length`, ...).
    fn as_queue_args(&self) -> Vec<(String, Value)> {
        self.definition
            .iter()
            .filter(|(k, _)| combine_of(k).is_some())
            .map(|(k, v)| (format!("x-{k}"), v.clone()))
            .collect()
    }

    fn covers(&self, target: Target) -> bool {
        matches!(
            (self.apply_to, target),
            (ApplyTo::All, _)
                | (ApplyTo::Queues, Target::Queue)
                | (ApplyTo::Exchanges, Target::Exchange)
        )
    }
}

/// The policies of one vhost, in the order they are tried (priority, highest first; then
/// name), with their patterns compiled.
pub(crate) struct Matcher {
    ranked: Vec<(Arc<Policy>, regex::Regex)>,
}

impl Matcher {
    /// The policies of `vhost` among `all`. A pattern that does not compile (none can: they are
    /// checked when set) matches nothing.
    pub(crate) fn new(all: &[Policy], vhost: &str) -> Matcher {
        let mut ranked: Vec<(Arc<Policy>, regex::Regex)> = all
            .iter()
            .filter(|p| p.vhost == vhost)
            .filter_map(|p| Some((Arc::new(p.clone()), regex::Regex::new(&p.pattern).ok()?)))
            .collect();
        ranked.sort_by(|(a, _), (b, _)| b.priority.cmp(&a.priority).then(a.name.cmp(&b.name)));
        Matcher { ranked }
    }

    /// The policy that applies to `name`, if any.
    pub(crate) fn pick(&self, name: &str, target: Target) -> Option<Arc<Policy>> {
        self.ranked
            .iter()
            .find(|(p, re)| p.covers(target) && re.is_match(name))
            .map(|(p, _)| Arc::clone(p))
    }
}

/// The arguments a queue runs with: its own, and its policy's, merged by RabbitMQ's rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct InForce {
    /// The queue's own arguments: as declared, `x-expires` as last set.
    pub(crate) own: Vec<(String, Value)>,
    /// The policy that applies, if any.
    pub(crate) policy: Option<Arc<Policy>>,
    /// What is in force.
    pub(crate) args: QueueArgs,
}

impl InForce {
    /// Merges `own` and `policy`.
    pub(crate) fn new(own: Vec<(String, Value)>, policy: Option<Arc<Policy>>) -> InForce {
        let merged = merge(&own, policy.as_deref());
        let args = QueueArgs::parse(&merged).unwrap_or_else(|e| {
            // Both sides were checked when set; keep the queue's own if they still disagree.
            tracing::warn!(error = %e, "policy arguments not applied");
            QueueArgs::parse(&own).unwrap_or_default()
        });
        InForce { own, policy, args }
    }
}

/// The queue's own arguments with its policy's keys merged in.
fn merge(own: &[(String, Value)], policy: Option<&Policy>) -> Vec<(String, Value)> {
    let mut out = own.to_vec();
    let Some(p) = policy else { return out };
    for (arg, v) in p.as_queue_args() {
        let Some(how) = arg.strip_prefix("x-").and_then(combine_of) else {
            continue;
        };
        match out.iter_mut().find(|(k, _)| *k == arg) {
            None => out.push((arg, v)),
            Some((_, mine)) => {
                if how == Combine::Lower {
                    if let (Some(a), Some(b)) = (as_u64(mine), as_u64(&v)) {
                        if b < a {
                            *mine = v;
                        }
                    }
                }
            }
        }
    }
    out
}

impl QueueHandle {
    /// The arguments in force now (cheap: publishers and the actor read it on every use).
    pub(crate) fn in_force(&self) -> arc_swap::Guard<Arc<InForce>> {
        self.in_force.load()
    }

    /// Puts `policy` in force; true if that changed anything.
    fn set_policy(&self, policy: Option<Arc<Policy>>) -> bool {
        let before = self
            .in_force
            .rcu(|cur| InForce::new(cur.own.clone(), policy.clone()));
        before.policy.as_deref() != policy.as_deref()
    }

    /// Replaces the queue's own `x-expires` (an MQTT session's expiry changes it).
    pub(crate) fn set_own_expires(&self, ms: Option<u64>) {
        self.in_force.rcu(|cur| {
            let mut own = cur.own.clone();
            own.retain(|(k, _)| k != "x-expires");
            if let Some(ms) = ms {
                own.push((
                    "x-expires".into(),
                    Value::I64(ms.min(i64::MAX as u64) as i64),
                ));
            }
            InForce::new(own, cur.policy.clone())
        });
        let _ = self.tx.send(QueueCmd::ArgsChanged);
    }
}

impl BrokerInner {
    /// The policy that applies to queue `name` of `vhost` now.
    pub(crate) fn queue_policy(&self, vhost: &str, name: &str) -> Option<Arc<Policy>> {
        let meta = lock(&self.meta);
        Matcher::new(&meta.policies, vhost).pick(name, Target::Queue)
    }

    /// Puts the policies of `vhost` (of every vhost with `None`) in force on its queues; the
    /// actors of the queues whose arguments changed are told.
    pub(crate) fn reapply_policies(&self, vhost: Option<&str>) {
        let queues: Vec<Arc<QueueHandle>> = {
            let vhosts = rlock(&self.vhosts);
            vhosts
                .iter()
                .filter(|(name, _)| vhost.is_none_or(|v| v == name.as_str()))
                .flat_map(|(_, vh)| rlock(vh).queues.values().cloned().collect::<Vec<_>>())
                .collect()
        };
        // Decided and stored under the metadata lock: of two changes racing, the later one's
        // policies are the ones left in force.
        let changed: Vec<Arc<QueueHandle>> = {
            let meta = lock(&self.meta);
            let mut matchers: std::collections::HashMap<String, Matcher> =
                std::collections::HashMap::new();
            queues
                .into_iter()
                .filter(|q| {
                    let m = matchers
                        .entry(q.def.vhost.clone())
                        .or_insert_with(|| Matcher::new(&meta.policies, &q.def.vhost));
                    q.set_policy(m.pick(&q.name, Target::Queue))
                })
                .collect()
        };
        for q in changed {
            let _ = q.tx.send(QueueCmd::ArgsChanged);
        }
    }

    /// After a queue was started and listed: a policy set meanwhile applies to it too.
    pub(crate) fn recheck_policy(&self, q: &QueueHandle) {
        let meta = lock(&self.meta);
        let p = Matcher::new(&meta.policies, &q.def.vhost).pick(&q.name, Target::Queue);
        if q.set_policy(p) {
            let _ = q.tx.send(QueueCmd::ArgsChanged);
        }
    }
}

impl Broker {
    /// Every policy, by vhost and name.
    pub fn policies(&self) -> Vec<Policy> {
        let mut out = lock(&self.inner.meta).policies.clone();
        out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
        out
    }

    /// Adds or replaces a policy and puts it in force at once; true if it is new.
    ///
    /// # Errors
    /// `Invalid` (pattern, definition), `NotFound` (vhost), `ReadOnly` (a slave); metadata I/O.
    pub fn set_policy(&self, p: Policy) -> CoreResult<bool> {
        p.validate()?;
        self.inner.check_writable()?;
        let vhost = p.vhost.clone();
        let was_new = {
            let mut meta = lock(&self.inner.meta);
            if !meta.vhosts.contains(&p.vhost) {
                return Err(CoreError::not_found("vhost", p.vhost));
            }
            let before = meta.policies.len();
            meta.policies
                .retain(|x| !(x.vhost == p.vhost && x.name == p.name));
            let was_new = meta.policies.len() == before;
            let not_applied = p.not_applied();
            if !not_applied.is_empty() {
                tracing::warn!(vhost = %p.vhost, policy = %p.name, keys = ?not_applied, "policy keys not applied");
            }
            meta.policies.push(p);
            self.inner.metafile.save(&meta)?;
            was_new
        };
        self.inner.reapply_policies(Some(&vhost));
        Ok(was_new)
    }

    /// Deletes a policy; the queues it applied to go back to their own arguments (or to the
    /// next matching policy) at once.
    ///
    /// # Errors
    /// `NotFound`, `ReadOnly` (a slave); metadata I/O.
    pub fn delete_policy(&self, vhost: &str, name: &str) -> CoreResult<()> {
        self.inner.check_writable()?;
        {
            let mut meta = lock(&self.inner.meta);
            let before = meta.policies.len();
            meta.policies
                .retain(|x| !(x.vhost == vhost && x.name == name));
            if meta.policies.len() == before {
                return Err(CoreError::not_found("policy", name));
            }
            self.inner.metafile.save(&meta)?;
        }
        self.inner.reapply_policies(Some(vhost));
        Ok(())
    }

    /// The name of the policy that applies to exchange `name` of `vhost`, if any.
    pub fn exchange_policy(&self, vhost: &str, name: &str) -> Option<String> {
        let meta = lock(&self.inner.meta);
        Matcher::new(&meta.policies, vhost)
            .pick(name, Target::Exchange)
            .map(|p| p.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, pattern: &str, priority: i64, def: &[(&str, Value)]) -> Policy {
        Policy {
            vhost: "/".into(),
            name: name.into(),
            pattern: pattern.into(),
            apply_to: ApplyTo::Queues,
            priority,
            definition: def
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        }
    }

    #[test]
    fn the_highest_priority_matching_policy_applies_alone() {
        let all = vec![
            policy("low", "^orders", 0, &[("max-length", Value::I64(10))]),
            policy(
                "high",
                "^orders\\.eu",
                5,
                &[("message-ttl", Value::I64(60))],
            ),
            policy("tie-b", "^jobs", 1, &[("max-length", Value::I64(1))]),
            policy("tie-a", "^jobs", 1, &[("max-length", Value::I64(2))]),
            Policy {
                apply_to: ApplyTo::Exchanges,
                ..policy("x", ".*", 99, &[("max-length", Value::I64(3))])
            },
        ];
        let m = Matcher::new(&all, "/");
        let name = |q: &str| m.pick(q, Target::Queue).map(|p| p.name.clone());
        assert_eq!(name("orders.eu.fr").as_deref(), Some("high"));
        assert_eq!(name("orders.us").as_deref(), Some("low"));
        assert_eq!(
            name("jobs").as_deref(),
            Some("tie-a"),
            "ties: first by name"
        );
        assert_eq!(name("other"), None, "the exchange policy skips queues");
        assert_eq!(
            m.pick("amq.topic", Target::Exchange)
                .map(|p| p.name.clone()),
            Some("x".into())
        );
        assert!(Matcher::new(&all, "other")
            .pick("orders", Target::Queue)
            .is_none());
    }

    #[test]
    fn limits_take_the_lower_value_and_the_queue_wins_the_rest() {
        let p = Arc::new(policy(
            "p",
            ".*",
            0,
            &[
                ("max-length", Value::I64(5)),
                ("message-ttl", Value::I64(1000)),
                ("expires", Value::I64(60_000)),
                ("overflow", Value::Str("reject-publish".into())),
                ("dead-letter-exchange", Value::Str("policy-dlx".into())),
                ("delivery-limit", Value::I64(3)),
                ("ha-mode", Value::Str("all".into())),
            ],
        ));
        let own = vec![
            ("x-max-length".to_string(), Value::I64(100)),
            ("x-message-ttl".to_string(), Value::I64(10)),
            ("x-overflow".to_string(), Value::Str("drop-head".into())),
            (
                "x-dead-letter-exchange".to_string(),
                Value::Str("mine".into()),
            ),
        ];
        let f = InForce::new(own.clone(), Some(Arc::clone(&p)));
        assert_eq!(f.args.max_length, Some(5), "policy lower");
        assert_eq!(f.args.message_ttl_ms, Some(10), "queue lower");
        assert_eq!(f.args.expires_ms, Some(60_000), "policy only");
        assert_eq!(f.args.delivery_limit, Some(3));
        assert_eq!(
            f.args.overflow,
            crate::core::Overflow::DropHead,
            "queue wins"
        );
        assert_eq!(f.args.dead_letter_exchange.as_deref(), Some("mine"));
        assert_eq!(p.not_applied(), vec!["ha-mode".to_string()]);
        // Without the queue's own, the policy's.
        let f = InForce::new(Vec::new(), Some(p));
        assert_eq!(f.args.overflow, crate::core::Overflow::RejectPublish);
        assert_eq!(f.args.dead_letter_exchange.as_deref(), Some("policy-dlx"));
        // Without a policy, the queue's own.
        let f = InForce::new(own, None);
        assert_eq!(f.args.max_length, Some(100));
    }

    #[test]
    fn bad_policies_are_refused() {
        let bad = |p: Policy| p.validate().unwrap_err().to_string();
        assert!(bad(policy("p", "(", 0, &[("max-length", Value::I64(1))])).contains("pattern"));
        assert!(bad(policy("p", ".*", 0, &[])).contains("empty"));
        assert!(bad(policy(
            "p",
            ".*",
            0,
            &[("max-length", Value::Str("x".into()))]
        ))
        .contains("x-max-length"));
        assert!(bad(policy(
            "p",
            ".*",
            0,
            &[("overflow", Value::Str("reject-publish-dlx".into()))]
        ))
        .contains("reject-publish-dlx"));
        assert!(bad(policy("p", ".*", 0, &[("expires", Value::I64(0))])).contains("expires"));
        assert!(bad(policy("", ".*", 0, &[("max-length", Value::I64(1))])).contains("name"));
        policy("p", ".*", 0, &[("ha-mode", Value::Str("all".into()))])
            .validate()
            .expect("unknown keys are kept");
    }
}
