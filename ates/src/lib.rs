//! The aTES system assembled: every service in one process, as `ates dev` and the system
//! tests run it.

pub mod asyncapi;
pub mod audit;
pub mod credentials;
pub mod devmail;
pub mod replay;
pub mod settings;
pub mod system;

/// JetStream for a command-line tool, as the operator `connection` names (`NATS_URL`,
/// `NATS_USER`, `NATS_PASSWORD`); the error says which servers could not be reached.
pub async fn operator_jetstream(
    connection: &ates_messaging::NatsConnection,
    client_name: &str,
    ack_timeout: std::time::Duration,
) -> anyhow::Result<async_nats::jetstream::Context> {
    use anyhow::Context as _;
    let client = connection
        .connect(client_name)
        .await
        .map_err(anyhow::Error::from_boxed)
        .with_context(|| format!("cannot reach NATS at {}", connection.url()))?;
    Ok(ates_messaging::nats::jetstream(client, ack_timeout))
}
