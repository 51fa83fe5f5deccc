//! Applying `accounts.*` events to the replica, in any order and more than once.

use ates_messaging::{Handler, HandlerError};
use ates_schemas::events::{AccountCreatedV1, AccountUpdatedV1, Role};
use ates_schemas::{DomainEvent, ReceivedEvent};
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

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

/// An account's full state, as `accounts.created` and `accounts.updated` carry it.
struct State<'a> {
    id: Uuid,
    email: &'a str,
    name: &'a str,
    role: Role,
    active: bool,
}

/// Keeps `state` if it is newer than the one kept; a role change or a deactivation makes the
/// tokens issued before `time` outdated.
async fn apply_state(
    conn: &mut PgConnection,
    state: &State<'_>,
    time: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
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
        state.id,
        state.email,
        state.name,
        state.role.as_str(),
        state.active,
        time,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records a role change at `time`: tokens issued before it are outdated, and the role applies
/// unless a newer full state is already kept.
async fn apply_role_change(
    conn: &mut PgConnection,
    id: Uuid,
    role: Role,
    time: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "INSERT INTO accounts AS a (account_id, role, credentials_changed_at) VALUES ($1, $2, $3)
         ON CONFLICT (account_id) DO UPDATE SET
             credentials_changed_at = GREATEST(a.credentials_changed_at, EXCLUDED.credentials_changed_at),
             role = CASE WHEN a.state_time IS NULL OR a.state_time <= EXCLUDED.credentials_changed_at
                         THEN EXCLUDED.role ELSE a.role END",
        id,
        role.as_str(),
        time,
    )
    .execute(conn)
    .await?;
    Ok(())
}
