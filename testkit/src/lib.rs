//! Test infrastructure: real nats-server and PostgreSQL servers, isolated per test.
//!
//! - [`TestNats`]: a JetStream server of the test's own, which it can stop, kill and restart.
//! - [`NatsCluster`]: a three-node JetStream cluster whose nodes can be killed one by one.
//! - [`database`]: a fresh database in a PostgreSQL server shared by the whole test binary.
//! - [`TestPostgres`]: a PostgreSQL server of the test's own, for fault tests.
//! - [`SmtpServer`]: a real SMTP server in the process, which can refuse, stop and restart.
//! - [`TcpProxy`]: a connection the test can cut, to lose a client's traffic.
//! - [`eventually`]: poll for an expected state with a deadline instead of sleeping.
//!
//! Servers are local child processes (see `ates-devservers`); with the `docker` feature and
//! `ATES_TESTKIT=docker` they are containers instead.

#[cfg(feature = "docker")]
mod docker;
mod poll;
mod proxy;
mod servers;
mod smtp;

pub use ates_devservers::{NatsCluster, NatsUserConfig};
pub use poll::{eventually, eventually_with};
pub use proxy::TcpProxy;
pub use servers::{TestDb, TestNats, TestPostgres, database};
pub use smtp::SmtpServer;
