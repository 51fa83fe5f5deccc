//! The account store: every change commits with its `accounts.*` events.

use ates_messaging::Outbox;
use ates_schemas::Envelope;
use ates_schemas::events::{AccountCreatedV1, AccountRoleChangedV1, AccountUpdatedV1, Role};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use ates_web::{Error, Problem};

/// The producer name on auth's events.
pub const OUTBOX: Outbox = Outbox::new("auth");

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct Account {
    /// The account id (the `sub` of its tokens).
    pub account_id: Uuid,
    /// Where payout mail goes; unique whatever its case.
    pub email: String,
    /// The person's name.
    pub full_name: String,
    /// What the person may do.
    #[sqlx(try_from = "String")]
    pub role: Role,
    /// Whether the account may sign in and receive tasks.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "account_id, email, full_name, role, active, created_at, updated_at";

/// A new account's validated fields.
pub struct NewAccount {
    pub email: String,
    pub full_name: String,
    pub role: Role,
    pub password_hash: String,
}

/// Changes to an account; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct AccountChanges {
    pub full_name: Option<String>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

/// Creates an account and writes `accounts.created`. A taken email is a conflict.
pub async fn create(tx: &mut PgConnection, new: NewAccount) -> Result<Account, Error> {
    let account: Account = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO accounts (account_id, email, full_name, role, password_hash)
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(&new.email)
    .bind(&new.full_name)
    .bind(new.role.as_str())
    .bind(&new.password_hash)
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| -> Error {
        match e.as_database_error().and_then(|d| d.constraint()) {
            Some("accounts_email") => {
                Problem::conflict(format!("An account with the email {} already exists.", new.email)).into()
            }
            _ => e.into(),
        }
    })?;
    let data = AccountCreatedV1 {
        account_id: account.account_id,
        email: account.email.clone(),
        full_name: account.full_name.clone(),
        role: account.role,
        active: account.active,
    };
    OUTBOX.add(tx, data).await.map_err(ates_web::Error::internal)?;
    Ok(account)
}

/// The account with `id`, if any.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM accounts WHERE account_id = $1")))
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Every account, oldest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Account>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts ORDER BY created_at, account_id"
    )))
    .fetch_all(conn)
    .await
}

/// Applies `changes`, refusing to leave no active admin, and writes `accounts.updated` (and
/// `accounts.role_changed` when the role changed). Deactivation signs the account out.
pub async fn update(tx: &mut PgConnection, id: Uuid, changes: AccountChanges) -> Result<Account, Error> {
    // Lock the active admins first, so two concurrent demotions cannot both pass the check.
    let admins: Vec<Uuid> = sqlx::query_scalar(
        "SELECT account_id FROM accounts WHERE role = 'admin' AND active ORDER BY account_id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let before: Account = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM accounts WHERE account_id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Problem::not_found(format!("There is no account {id}.")))?;

    let role = changes.role.unwrap_or(before.role);
    let active = changes.active.unwrap_or(before.active);
    let stays_admin = role == Role::Admin && active;
    if admins == [id] && !stays_admin {
        return Err(
            Problem::conflict("This is the last active admin; make another account an admin first.").into()
        );
    }
    let full_name = changes.full_name.unwrap_or_else(|| before.full_name.clone());
    if (full_name.as_str(), role, active) == (before.full_name.as_str(), before.role, before.active) {
        return Ok(before);
    }
    let after: Account = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE accounts SET full_name = $2, role = $3, active = $4, updated_at = now()
         WHERE account_id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&full_name)
    .bind(role.as_str())
    .bind(active)
    .fetch_one(&mut *tx)
    .await?;
    if !active {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    let updated = Envelope::new(
        OUTBOX.producer(),
        AccountUpdatedV1 {
            account_id: id,
            email: after.email.clone(),
            full_name: after.full_name.clone(),
            role: after.role,
            active: after.active,
        },
    );
    OUTBOX.add_all(tx, std::slice::from_ref(&updated)).await.map_err(ates_web::Error::internal)?;
    if role != before.role {
        let changed = AccountRoleChangedV1 { account_id: id, old_role: before.role, new_role: role };
        OUTBOX
            .add_all(tx, &[Envelope::at(OUTBOX.producer(), updated.event_time, changed)])
            .await
            .map_err(ates_web::Error::internal)?;
    }
    Ok(after)
}

/// Whether an active admin exists.
pub async fn any_active_admin(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM accounts WHERE role = 'admin' AND active)")
        .fetch_one(conn)
        .await
}
