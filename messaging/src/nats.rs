//! Connecting to NATS so that an unreachable server delays work instead of failing it.

use std::str::FromStr;
use std::time::Duration;

use async_nats::{ServerAddr, jetstream};
use secrecy::{ExposeSecret, SecretString};

/// Who a client is to NATS: one of the server's users, with the permissions it was given.
#[derive(Debug, Clone)]
pub struct NatsUser {
    pub name: String,
    pub password: SecretString,
}

/// Reads a server list: one URL, or several separated by commas (`nats://a:4222,nats://b:4222`).
pub fn servers(list: &str) -> Result<Vec<ServerAddr>, String> {
    let servers: Vec<ServerAddr> = list
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| ServerAddr::from_str(url).map_err(|e| format!("{url:?} is not a NATS server URL: {e}")))
        .collect::<Result<_, _>>()?;
    if servers.is_empty() {
        return Err("no NATS server given: set NATS_URL, e.g. nats://127.0.0.1:4222".into());
    }
    Ok(servers)
}

/// Connects to any server of the comma-separated `list` (and, in a cluster, the servers it
/// advertises) as `name`, retrying in the background when none is up yet and reconnecting
/// forever after one goes away. With `user`, it authenticates, and its replies come to an inbox
/// of its own (`_INBOX.<name>.…`), so a user may be allowed only its own inbox.
pub async fn connect(
    list: &str,
    name: &str,
    user: Option<&NatsUser>,
) -> Result<async_nats::Client, crate::BoxError> {
    let servers = servers(list)?;
    let mut options = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(5))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis(50 << attempts.min(6)).min(Duration::from_secs(2))
        });
    if let Some(user) = user {
        options = options
            .user_and_password(user.name.clone(), user.password.expose_secret().to_owned())
            .custom_inbox_prefix(inbox_prefix(&user.name));
    }
    Ok(options.connect(servers).await?)
}

/// The inbox prefix of `user`: what its permissions let it subscribe to.
pub fn inbox_prefix(user: &str) -> String {
    format!("_INBOX.{user}")
}

/// A JetStream context whose publishes wait at most `ack_timeout` for their acknowledgement.
pub fn jetstream(client: async_nats::Client, ack_timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(ack_timeout)
        .max_ack_inflight(20_000)
        .backpressure_on_inflight(true)
        .build(client)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_server_list_is_comma_separated() {
        assert_eq!(super::servers("nats://a:4222, nats://b:4223,nats://c:4224").unwrap().len(), 3);
        assert_eq!(super::servers("nats://127.0.0.1:4222").unwrap().len(), 1);
        assert!(super::servers("nats://a:notaport").unwrap_err().contains("is not a NATS server URL"));
        assert!(super::servers(" , ").unwrap_err().contains("no NATS server"));
    }
}
