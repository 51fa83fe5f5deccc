//! A consuming service's own copy of the accounts, built from `accounts.*` events.
//!
//! Events may arrive in any order and more than once: a full state applies only if it is
//! newer than the one kept, and a role change or deactivation moves `credentials_changed_at`
//! forward, which is what makes older tokens "outdated" ([`ReplicaFreshness`]).

use ates_messaging::{Handler, HandlerError};
use ates_schemas::events::{AccountCreatedV1, AccountUpdatedV1, Role};
use ates_schemas::{DomainEvent, ReceivedEvent};
use ates_tokens::{Claims, Freshness, TokenError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The replica's table, applied to every consuming service's schema.
pub static MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/accounts_replica");

/// Applies `accounts.*` events to the replica; other events are ignored.
#[derive(Debug, Clone, Copy, Default)]
pub struct AccountsReplica;

impl Handler for AccountsReplica {
    async fn handle(&self, tx: &mut PgConnection, events: &[ReceivedEvent]) -> Result<(), HandlerError> {
        for event in events {
            apply(tx, event).await?;
        }
        Ok(())
    }
}

/// Applies one event to the replica, if it is about accounts.
pub async fn apply(conn: &mut PgConnection, event: &ReceivedEvent) -> Result<(), sqlx::Error> {
    let time = event.meta.event_time;
    match &event.event {
        DomainEvent::AccountCreated(AccountCreatedV1 { account_id, email, full_name, role, active })
        | DomainEvent::AccountUpdated(AccountUpdatedV1 { account_id, email, full_name, role, active }) => {
            let state = State { id: *account_id, email, name: full_name, role: *role, active: *active };
            apply_state(conn, &state, time).await
        }
        DomainEvent::AccountRoleChanged(change) => {
            apply_role_change(conn, change.account_id, change.new_role, time).await
        }
        _ => Ok(()),
    }
}

struct State<'a> {
    id: Uuid,
    email: &'a str,
    name: &'a str,
    role: Role,
    active: bool,
}

async fn apply_state(
    conn: &mut PgConnection,
    state: &State<'_>,
    time: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO accounts AS a (account_id, email, full_name, role, active, state_time)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (account_id) DO UPDATE SET
             email = EXCLUDED.email,
             full_name = EXCLUDED.full_name,
             role = EXCLUDED.role,
             active = EXCLUDED.active,
             state_time = EXCLUDED.state_time,
             credentials_changed_at = CASE
                 WHEN a.state_time IS NOT NULL
                      AND (a.role IS DISTINCT FROM EXCLUDED.role OR (a.active AND NOT EXCLUDED.active))
                 THEN GREATEST(a.credentials_changed_at, EXCLUDED.state_time)
                 ELSE a.credentials_changed_at
             END
         WHERE a.state_time IS NULL OR a.state_time <= EXCLUDED.state_time",
    )
    .bind(state.id)
    .bind(state.email)
    .bind(state.name)
    .bind(state.role.as_str())
    .bind(state.active)
    .bind(time)
    .execute(conn)
    .await?;
    Ok(())
}

async fn apply_role_change(
    conn: &mut PgConnection,
    id: Uuid,
    role: Role,
    time: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO accounts AS a (account_id, role, credentials_changed_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET
             credentials_changed_at = GREATEST(a.credentials_changed_at, EXCLUDED.credentials_changed_at),
             role = CASE WHEN a.state_time IS NULL OR a.state_time <= EXCLUDED.credentials_changed_at
                         THEN EXCLUDED.role ELSE a.role END",
    )
    .bind(id)
    .bind(role.as_str())
    .bind(time)
    .execute(conn)
    .await?;
    Ok(())
}

/// Refuses tokens the replica knows to be outdated: the account was deactivated, or its role
/// changed after the token was issued. An account the replica has not heard of yet is not
/// refused: the signature already proved the token came from auth.
#[derive(Clone)]
pub struct ReplicaFreshness {
    pool: PgPool,
}

impl ReplicaFreshness {
    /// Checks against the replica in `pool`'s schema.
    pub fn new(pool: PgPool) -> Self {
        ReplicaFreshness { pool }
    }
}

impl Freshness for ReplicaFreshness {
    fn check<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let row: Option<(bool, bool, Option<DateTime<Utc>>)> = sqlx::query_as(
                "SELECT active, state_time IS NOT NULL, credentials_changed_at FROM accounts WHERE account_id = $1",
            )
            .bind(claims.sub)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| TokenError::Unavailable(e.to_string()))?;
            match row {
                Some((false, true, _)) => Err(TokenError::Outdated("the account has been deactivated")),
                Some((_, _, Some(changed))) if changed > claims.issued_at() => {
                    Err(TokenError::Outdated("the account's role changed after this token was issued"))
                }
                _ => Ok(()),
            }
        })
    }
}

/// The durable consumer `name` that keeps the replica in `backbone`'s schema up to date.
pub fn consumer(
    backbone: &ates_messaging::Backbone,
    name: &str,
) -> ates_messaging::Consumer<AccountsReplica> {
    let spec = ates_messaging::ConsumerSpec::new(name, ates_messaging::streams::ACCOUNTS, &[]);
    ates_messaging::Consumer::new(
        backbone.js.clone(),
        backbone.pool.clone(),
        spec,
        std::sync::Arc::new(AccountsReplica),
    )
}
