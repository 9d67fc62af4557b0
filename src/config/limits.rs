//! The limits on what a client may hold: connections, time and buffered bytes
//! (docs/settings.md, "Connections and timeouts").

use std::time::Duration;

use clap::Args;

/// The longest timeout that may be set: a day.
const MAX_TIMEOUT_SECS: u64 = 24 * 3600;

/// The flags; turned into [`Limits`] by [`LimitArgs::into_limits`].
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Most connections open at once; more are answered 503. Default: the open-files limit
    /// (raised to its hard limit at start) minus a reserve for the database and Graph.
    #[arg(long, env = "MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,

    /// Most connections open at once from one address; 0: no limit. Loopback peers (a reverse
    /// proxy on this machine) are not counted unless --limit-loopback is given.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Count loopback peers per address too (when clients reach leadstream directly on
    /// loopback, not through a proxy).
    #[arg(long, env = "LIMIT_LOOPBACK", value_parser = super::parse_flag, num_args = 0..=1, default_missing_value = "1", default_value = "0")]
    pub limit_loopback: bool,

    /// Seconds a connection may wait with no request in progress (between keep-alive requests,
    /// or HTTP/2 with no open stream) before it is closed.
    #[arg(long, env = "IDLE_TIMEOUT", default_value_t = 30)]
    pub idle_timeout: u64,

    /// Seconds a client may take to send a request head, from its first byte.
    #[arg(long, env = "HEAD_TIMEOUT", default_value_t = 30)]
    pub head_timeout: u64,

    /// Seconds a client may take to send a request body, from the end of its head.
    #[arg(long, env = "BODY_TIMEOUT", default_value_t = 30)]
    pub body_timeout: u64,

    /// Seconds a client may go without taking any bytes of an answer or a stream before it is
    /// closed.
    #[arg(long, env = "WRITE_TIMEOUT", default_value_t = 30)]
    pub write_timeout: u64,

    /// MiB of request bodies held in memory at once, over all connections; a body that finds
    /// it spent waits (within its timeout) for room.
    #[arg(long, env = "BODY_BUDGET_MIB", default_value_t = 64)]
    pub body_budget_mib: usize,
}

/// What a client may hold, checked.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `None`: from the open-files limit at start.
    pub max_connections: Option<usize>,
    /// 0: no limit.
    pub max_connections_per_ip: usize,
    pub limit_loopback: bool,
    pub idle_timeout: Duration,
    pub head_timeout: Duration,
    pub body_timeout: Duration,
    pub write_timeout: Duration,
    /// Bytes.
    pub body_budget: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_connections_per_ip: 256,
            limit_loopback: false,
            idle_timeout: Duration::from_secs(30),
            head_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            body_budget: 64 * 1024 * 1024,
        }
    }
}

impl LimitArgs {
    pub fn into_limits(self) -> Result<Limits, String> {
        let seconds = |name: &str, s: u64| match s {
            0 => Err(format!("{name} must be at least 1 second")),
            // Far beyond any use, and a deadline that far away overflows the clock (every
            // connection would fail).
            s if s > MAX_TIMEOUT_SECS => Err(format!(
                "{name} must be at most {MAX_TIMEOUT_SECS} seconds (a day), not {s}"
            )),
            s => Ok(Duration::from_secs(s)),
        };
        if self.max_connections == Some(0) {
            return Err("MAX_CONNECTIONS must be at least 1".into());
        }
        if self.body_budget_mib < 4 {
            return Err(
                "BODY_BUDGET_MIB must be at least 4 (one webhook of the largest size)".into(),
            );
        }
        Ok(Limits {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            limit_loopback: self.limit_loopback,
            idle_timeout: seconds("IDLE_TIMEOUT", self.idle_timeout)?,
            head_timeout: seconds("HEAD_TIMEOUT", self.head_timeout)?,
            body_timeout: seconds("BODY_TIMEOUT", self.body_timeout)?,
            write_timeout: seconds("WRITE_TIMEOUT", self.write_timeout)?,
            body_budget: self.body_budget_mib * 1024 * 1024,
        })
    }
}
