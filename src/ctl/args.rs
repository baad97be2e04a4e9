//! The command line of `junction ctl` (clap derive): global options and one subcommand per
//! resource.

use clap::{Args, Subcommand};

/// `junction ctl` arguments.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// Base URL of the broker's HTTP API.
    #[arg(
        long,
        env = "JUNCTION_CTL_URL",
        default_value = "http://127.0.0.1:15672",
        global = true
    )]
    pub(super) url: String,
    /// User.
    #[arg(
        long,
        short = 'u',
        env = "JUNCTION_CTL_USER",
        default_value = "guest",
        global = true
    )]
    pub(super) user: String,
    /// Password.
    #[arg(
        long,
        short = 'p',
        env = "JUNCTION_CTL_PASSWORD",
        default_value = "guest",
        hide_env_values = true,
        global = true
    )]
    pub(super) password: String,
    /// Virtual host.
    #[arg(long, default_value = "/", global = true)]
    pub(super) vhost: String,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub(super) json: bool,
    #[command(subcommand)]
    pub(super) command: CtlCommand,
}

#[derive(Debug, Subcommand)]
pub(super) enum CtlCommand {
    /// Version, listeners, message totals and rates, alarms.
    Overview,
    /// Queues.
    #[command(subcommand)]
    Queues(QueueCmd),
    /// Exchanges.
    #[command(subcommand)]
    Exchanges(ExchangeCmd),
    /// Bindings.
    #[command(subcommand)]
    Bindings(BindingCmd),
    /// Users.
    #[command(subcommand)]
    Users(UserCmd),
    /// Permissions on the vhost.
    #[command(subcommand)]
    Permissions(PermissionCmd),
    /// Topic permissions on the vhost (regular expressions on routing keys per exchange).
    #[command(subcommand)]
    TopicPermissions(TopicPermissionCmd),
    /// Connection, channel and queue limits of vhosts and users.
    #[command(subcommand)]
    Limits(LimitCmd),
    /// Policies of the vhost (settings for the queues whose names match a pattern).
    #[command(subcommand)]
    Policies(PolicyCmd),
    /// Virtual hosts.
    #[command(subcommand)]
    Vhosts(VhostCmd),
    /// Client connections.
    #[command(subcommand)]
    Connections(ConnectionCmd),
    /// A queue's consumer groups and their offsets.
    #[command(subcommand)]
    Groups(GroupCmd),
    /// MQTT sessions and retained messages of the vhost.
    #[command(subcommand)]
    Mqtt(MqttCmd),
    /// Publishes one message (body from the argument or standard input).
    Publish {
        /// Routing key.
        routing_key: String,
        /// Body (read from standard input if absent).
        body: Option<String>,
        /// Exchange ("" = the default exchange).
        #[arg(long, short = 'e', default_value = "")]
        exchange: String,
        /// A property, as name=value (message_id, content_type, delivery_mode, keys, ...).
        #[arg(long = "property", value_name = "NAME=VALUE")]
        properties: Vec<String>,
        /// A header, as name=value.
        #[arg(long = "header", value_name = "NAME=VALUE")]
        headers: Vec<String>,
    },
    /// Takes messages from a queue; they are requeued unless --ack.
    Get {
        /// Queue.
        queue: String,
        /// How many.
        #[arg(long, short = 'n', default_value_t = 1)]
        count: usize,
        /// Remove them from the queue.
        #[arg(long)]
        ack: bool,
    },
    /// Looks messages up by id or key in the store's index.
    Lookup {
        /// Message id.
        #[arg(long, conflicts_with = "key", required_unless_present = "key")]
        id: Option<String>,
        /// Message key.
        #[arg(long)]
        key: Option<String>,
    },
    /// Writes the definitions (vhosts, users, permissions, policies, exchanges, queues,
    /// bindings) as RabbitMQ-shaped JSON.
    Export {
        /// File ("-" = standard output).
        #[arg(default_value = "-")]
        file: String,
    },
    /// Creates what a definitions file describes (Junction's or RabbitMQ's).
    Import {
        /// File ("-" = standard input).
        file: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum QueueCmd {
    /// Lists the vhost's queues.
    List,
    /// Declares a queue.
    Declare {
        /// Name.
        name: String,
        /// Not durable.
        #[arg(long)]
        transient: bool,
        /// Deleted when its last consumer goes.
        #[arg(long)]
        auto_delete: bool,
        /// Partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u16,
        /// An argument, as x-name=value (numbers and booleans are typed).
        #[arg(long = "arg", value_name = "NAME=VALUE")]
        args: Vec<String>,
    },
    /// Deletes a queue.
    Delete {
        /// Name.
        name: String,
        /// Only if it has no consumers.
        #[arg(long)]
        if_unused: bool,
        /// Only if it has no messages.
        #[arg(long)]
        if_empty: bool,
    },
    /// Removes a queue's ready messages.
    Purge {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ExchangeCmd {
    /// Lists the vhost's exchanges.
    List,
    /// Declares an exchange.
    Declare {
        /// Name.
        name: String,
        /// direct, fanout, topic or headers.
        #[arg(long = "type", short = 't', default_value = "direct")]
        kind: String,
        /// Not durable.
        #[arg(long)]
        transient: bool,
        /// Deleted with its last binding.
        #[arg(long)]
        auto_delete: bool,
        /// Clients may not publish to it.
        #[arg(long)]
        internal: bool,
    },
    /// Deletes an exchange.
    Delete {
        /// Name.
        name: String,
        /// Only if it has no bindings.
        #[arg(long)]
        if_unused: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum BindingCmd {
    /// Lists the vhost's bindings.
    List,
    /// Binds a queue (or with --to-exchange an exchange) to an exchange.
    Add {
        /// Source exchange.
        source: String,
        /// Destination queue or exchange.
        destination: String,
        /// Binding key.
        #[arg(long, short = 'k', default_value = "")]
        routing_key: String,
        /// The destination is an exchange.
        #[arg(long)]
        to_exchange: bool,
    },
    /// Removes a binding.
    Remove {
        /// Source exchange.
        source: String,
        /// Destination queue or exchange.
        destination: String,
        /// Binding key.
        #[arg(long, short = 'k', default_value = "")]
        routing_key: String,
        /// The destination is an exchange.
        #[arg(long)]
        to_exchange: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum UserCmd {
    /// Lists users.
    List,
    /// Adds or updates a user.
    Add {
        /// Name.
        name: String,
        /// Their password.
        new_password: String,
        /// Tags, comma-separated (administrator, monitoring, ...).
        #[arg(long, default_value = "")]
        tags: String,
    },
    /// Deletes a user (their connections are closed).
    Delete {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PermissionCmd {
    /// Lists every permission.
    List,
    /// Sets a user's permissions on the vhost.
    Set {
        /// User.
        #[arg(value_name = "USER")]
        who: String,
        /// Resources the user may declare and delete (regular expression).
        #[arg(long, default_value = ".*")]
        configure: String,
        /// Resources the user may publish to.
        #[arg(long, default_value = ".*")]
        write: String,
        /// Resources the user may consume from.
        #[arg(long, default_value = ".*")]
        read: String,
    },
    /// Removes a user's permissions on the vhost.
    Clear {
        /// User.
        #[arg(value_name = "USER")]
        who: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum TopicPermissionCmd {
    /// Lists every topic permission.
    List,
    /// Sets a user's topic permission on one exchange of the vhost.
    Set {
        /// User.
        #[arg(value_name = "USER")]
        who: String,
        /// Exchange the patterns apply to.
        #[arg(long, default_value = "amq.topic")]
        exchange: String,
        /// Routing keys the user may publish with ({username}, {vhost}, {client_id} expand).
        #[arg(long, default_value = ".*")]
        write: String,
        /// Binding keys the user may subscribe with.
        #[arg(long, default_value = ".*")]
        read: String,
    },
    /// Removes a user's topic permissions on the vhost (one exchange's with --exchange).
    Clear {
        /// User.
        #[arg(value_name = "USER")]
        who: String,
        /// Only this exchange's.
        #[arg(long)]
        exchange: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum LimitCmd {
    /// Lists every vhost's and user's limits.
    List,
    /// Sets a limit of the vhost: max-connections or max-queues (negative: none).
    Vhost {
        /// `max-connections` or `max-queues`.
        name: String,
        /// The limit.
        #[arg(allow_hyphen_values = true)]
        value: i64,
    },
    /// Sets a limit of a user: max-connections or max-channels (negative: none).
    User {
        /// User.
        #[arg(value_name = "USER")]
        who: String,
        /// `max-connections` or `max-channels`.
        name: String,
        /// The limit.
        #[arg(allow_hyphen_values = true)]
        value: i64,
    },
    /// Shows or sets the memory high watermark (publishing is blocked above it); not saved
    /// across restarts.
    MemoryWatermark {
        /// A fraction of RAM (0.4), or with --absolute an amount (2GiB, 512MB, bytes); 0 turns
        /// the alarm off. Absent: show the current one.
        value: Option<String>,
        /// The value is an amount of memory, not a fraction.
        #[arg(long)]
        absolute: bool,
    },
    /// Shows or sets the disk free limit (publishing is blocked while free space is below
    /// it); not saved across restarts.
    DiskFreeLimit {
        /// An amount (1GB, 512MiB, bytes). Absent: show the current one.
        value: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum PolicyCmd {
    /// Lists the policies of every vhost the user may manage.
    List,
    /// Adds or replaces a policy of the vhost; it applies at once.
    Set {
        /// Name.
        name: String,
        /// Regular expression matched against queue (and exchange) names.
        pattern: String,
        /// The definition, a JSON object: `{"max-length": 1000, "message-ttl": 60000}`.
        definition: String,
        /// Among the policies matching a name, the highest priority applies.
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        priority: i64,
        /// queues, exchanges or all.
        #[arg(long, default_value = "all")]
        apply_to: String,
    },
    /// Deletes a policy of the vhost; the queues it applied to lose its settings at once.
    Delete {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum VhostCmd {
    /// Lists vhosts.
    List,
    /// Adds a vhost.
    Add {
        /// Name.
        name: String,
    },
    /// Deletes a vhost with its queues and messages.
    Delete {
        /// Name.
        name: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum GroupCmd {
    /// Lists a queue's consumer groups with their lag (`~` is the default group).
    List {
        /// Queue.
        queue: String,
    },
    /// Moves the offsets of a group with no consumers.
    Reset {
        /// Queue.
        queue: String,
        /// Group (`~` = the queue's default group).
        group: String,
        /// `earliest`, `latest`, `offset:N` or `time:MS` (ms since the epoch).
        #[arg(long)]
        to: String,
    },
    /// Deletes a named group with no consumers.
    Delete {
        /// Queue.
        queue: String,
        /// Group.
        group: String,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum ConnectionCmd {
    /// Lists client connections.
    List,
    /// Closes a connection.
    Close {
        /// Connection id (see `connections list`).
        id: u64,
        /// Reason given to the client.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum MqttCmd {
    /// Lists MQTT sessions: connected or not, clean or persistent, subscriptions, queued
    /// messages.
    Sessions,
    /// Lists retained messages.
    Retained,
    /// Deletes the retained message of a topic.
    ClearRetained {
        /// MQTT topic name (`a/b`).
        topic: String,
    },
}
