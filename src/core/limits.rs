//! Topic permissions and the per-vhost and per-user limits (RabbitMQ's `set_topic_permissions`,
//! `set_vhost_limits`, `set_user_limits`): kept in `meta.json`, set through the admin API, and
//! enforced where a connection, channel or queue is opened, for every protocol alike.
//!
//! Limits are read when something is opened; lowering one closes nothing that is already
//! open (as in RabbitMQ).

use super::auth::TopicPermission;
use super::error::{CoreError, CoreResult};
use super::meta::{UserLimits, VhostLimits};
use super::{lock, Broker, BrokerInner};

impl Broker {
    /// Every topic permission.
    pub fn topic_permissions(&self) -> Vec<TopicPermission> {
        lock(&self.inner.meta).topic_permissions.clone()
    }

    /// Sets a user's topic permission on one exchange of a vhost (replacing the one there
    /// was). Applies to connections opened from now on.
    ///
    /// # Errors
    /// `NotFound` (user or vhost); metadata I/O.
    pub fn set_topic_permission(&self, p: TopicPermission) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        if !meta.users.iter().any(|u| u.name == p.user) {
            return Err(CoreError::not_found("user", p.user));
        }
        if !meta.vhosts.contains(&p.vhost) {
            return Err(CoreError::not_found("vhost", p.vhost));
        }
        meta.topic_permissions
            .retain(|t| !(t.user == p.user && t.vhost == p.vhost && t.exchange == p.exchange));
        meta.topic_permissions.push(p);
        self.inner.metafile.save(&meta)
    }

    /// Removes a user's topic permissions on a vhost: on `exchange` only, or all of them.
    ///
    /// # Errors
    /// `NotFound` if there were none; metadata I/O.
    pub fn delete_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        let before = meta.topic_permissions.len();
        meta.topic_permissions.retain(|t| {
            !(t.user == user && t.vhost == vhost && exchange.is_none_or(|x| t.exchange == x))
        });
        if meta.topic_permissions.len() == before {
            return Err(CoreError::not_found(
                "topic permission",
                format!("{user}@{vhost}"),
            ));
        }
        self.inner.metafile.save(&meta)
    }

    /// Every vhost's limits.
    pub fn vhost_limits(&self) -> Vec<VhostLimits> {
        lock(&self.inner.meta).vhost_limits.clone()
    }

    /// Sets a vhost's limits (all of them: `None` removes one).
    ///
    /// # Errors
    /// `NotFound` (vhost); metadata I/O.
    pub fn set_vhost_limits(&self, l: VhostLimits) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        if !meta.vhosts.contains(&l.vhost) {
            return Err(CoreError::not_found("vhost", l.vhost));
        }
        meta.vhost_limits.retain(|x| x.vhost != l.vhost);
        if l.max_connections.is_some() || l.max_queues.is_some() {
            meta.vhost_limits.push(l);
        }
        self.inner.metafile.save(&meta)
    }

    /// Every user's limits.
    pub fn user_limits(&self) -> Vec<UserLimits> {
        lock(&self.inner.meta).user_limits.clone()
    }

    /// Sets a user's limits (all of them: `None` removes one).
    ///
    /// # Errors
    /// `NotFound` (user); metadata I/O.
    pub fn set_user_limits(&self, l: UserLimits) -> CoreResult<()> {
        let mut meta = lock(&self.inner.meta);
        if !meta.users.iter().any(|u| u.name == l.user) {
            return Err(CoreError::not_found("user", l.user));
        }
        meta.user_limits.retain(|x| x.user != l.user);
        if l.max_connections.is_some() || l.max_channels.is_some() {
            meta.user_limits.push(l);
        }
        self.inner.metafile.save(&meta)
    }

    /// The connection limits of `user` and `vhost`.
    pub(super) fn connection_limits(&self, user: &str, vhost: &str) -> (Option<u64>, Option<u64>) {
        let meta = lock(&self.inner.meta);
        let per_user = meta
            .user_limits
            .iter()
            .find(|l| l.user == user)
            .and_then(|l| l.max_connections);
        let per_vhost = meta
            .vhost_limits
            .iter()
            .find(|l| l.vhost == vhost)
            .and_then(|l| l.max_connections);
        (per_user, per_vhost)
    }
}

impl BrokerInner {
    /// Refuses a new queue when `vhost` already holds `current` queues and its limit is that.
    pub(super) fn check_queue_limit(&self, vhost: &str, current: usize) -> CoreResult<()> {
        let max = lock(&self.meta)
            .vhost_limits
            .iter()
            .find(|l| l.vhost == vhost)
            .and_then(|l| l.max_queues);
        match max {
            Some(max) if current as u64 >= max => Err(CoreError::ResourceLimit(format!(
                "queue limit ({max}) of vhost '{vhost}' is reached"
            ))),
            _ => Ok(()),
        }
    }
}

/// Refuses a new channel of `user` when its channels reach its `max_channels`.
pub(super) fn check_channel_limit(inner: &BrokerInner, user: &str) -> CoreResult<()> {
    let max = lock(&inner.meta)
        .user_limits
        .iter()
        .find(|l| l.user == user)
        .and_then(|l| l.max_channels);
    let Some(max) = max else { return Ok(()) };
    if inner.connections.channels_of(user) >= max {
        return Err(CoreError::ResourceLimit(format!(
            "channel limit ({max}) of user '{user}' is reached"
        )));
    }
    Ok(())
}
