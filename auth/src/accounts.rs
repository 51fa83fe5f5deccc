//! The account store: every change commits with its `accounts.*` events.

use ates_messaging::Outbox;
use ates_messaging::db::OnConstraint;
use ates_schemas::Envelope;
use ates_schemas::events::{AccountCreatedV1, AccountRoleChangedV1, AccountUpdatedV1, Role};
use ates_tokens::{Claims, Freshness, TokenError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Error, Result};

/// The producer name on auth's events.
pub const OUTBOX: Outbox = Outbox::new("auth");

/// An account as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Account {
    /// The account id (the `sub` of its tokens).
    pub account_id: Uuid,
    /// Where payout mail goes; unique whatever its case.
    pub email: String,
    /// The person's name.
    pub full_name: String,
    /// What the person may do.
    pub role: Role,
    /// Whether the account may sign in and receive tasks.
    pub active: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// An account as stored: the role is text until it is checked.
struct AccountRow {
    account_id: Uuid,
    email: String,
    full_name: String,
    role: String,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<AccountRow> for Account {
    type Error = Error;

    fn try_from(row: AccountRow) -> Result<Self> {
        Ok(Account {
            account_id: row.account_id,
            email: row.email,
            full_name: row.full_name,
            role: stored_role(row.role)?,
            active: row.active,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// A role read from the database, where a check constraint keeps it one of the four.
pub fn stored_role(text: String) -> Result<Role> {
    Role::try_from(text).map_err(Error::StoredRole)
}

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

/// Creates an account and writes `accounts.created`, carrying the `correlation` id of the request
/// that caused it (none at start-up). A taken email is [`Error::EmailTaken`].
pub async fn create(tx: &mut PgConnection, new: NewAccount, correlation: Option<Uuid>) -> Result<Account> {
    let row = sqlx::query_as!(
        AccountRow,
        "INSERT INTO accounts (account_id, email, full_name, role, password_hash)
         VALUES ($1, $2, $3, $4, $5)
         RETURNING account_id, email, full_name, role, active, created_at, updated_at",
        Uuid::now_v7(),
        new.email,
        new.full_name,
        new.role.as_str(),
        new.password_hash,
    )
    .fetch_one(&mut *tx)
    .await
    .on_constraint("accounts_email", || Error::EmailTaken(new.email.clone()))?;
    let account = Account::try_from(row)?;
    let data = AccountCreatedV1 {
        account_id: account.account_id,
        email: account.email.clone(),
        full_name: account.full_name.clone(),
        role: account.role,
        active: account.active,
    };
    OUTBOX.add_all(tx, &[Envelope::new(OUTBOX.producer(), data).correlated(correlation)]).await?;
    Ok(account)
}

/// The account with `id`, if any.
pub async fn find(conn: &mut PgConnection, id: Uuid) -> Result<Option<Account>> {
    let row = sqlx::query_as!(
        AccountRow,
        "SELECT account_id, email, full_name, role, active, created_at, updated_at
         FROM accounts WHERE account_id = $1",
        id,
    )
    .fetch_optional(conn)
    .await?;
    row.map(Account::try_from).transpose()
}

/// Every account, oldest first.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<Account>> {
    let rows = sqlx::query_as!(
        AccountRow,
        "SELECT account_id, email, full_name, role, active, created_at, updated_at
         FROM accounts ORDER BY created_at, account_id",
    )
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Account::try_from).collect()
}

/// The id of the account with `email`, whatever its case.
pub async fn find_by_email(conn: &mut PgConnection, email: &str) -> Result<Option<Uuid>> {
    let id = sqlx::query_scalar!("SELECT account_id FROM accounts WHERE lower(email) = lower($1)", email)
        .fetch_optional(conn)
        .await?;
    Ok(id)
}

/// Applies `changes`, refusing to leave no active admin, and writes `accounts.updated` (and
/// `accounts.role_changed` when the role changed). Deactivation signs the account out.
pub async fn update(
    tx: &mut PgConnection,
    id: Uuid,
    changes: AccountChanges,
    correlation: Option<Uuid>,
) -> Result<Account> {
    // Lock the active admins first, so two concurrent demotions cannot both pass the check.
    let admins = sqlx::query_scalar!(
        "SELECT account_id FROM accounts WHERE role = 'admin' AND active ORDER BY account_id FOR UPDATE",
    )
    .fetch_all(&mut *tx)
    .await?;
    let before = sqlx::query_as!(
        AccountRow,
        "SELECT account_id, email, full_name, role, active, created_at, updated_at
         FROM accounts WHERE account_id = $1 FOR UPDATE",
        id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(Error::NoSuchAccount(id))?;
    let before = Account::try_from(before)?;

    let role = changes.role.unwrap_or(before.role);
    let active = changes.active.unwrap_or(before.active);
    let stays_admin = role == Role::Admin && active;
    if admins == [id] && !stays_admin {
        return Err(Error::LastAdmin);
    }
    let full_name = changes.full_name.unwrap_or_else(|| before.full_name.clone());
    if (full_name.as_str(), role, active) == (before.full_name.as_str(), before.role, before.active) {
        return Ok(before);
    }
    let after = sqlx::query_as!(
        AccountRow,
        "UPDATE accounts SET full_name = $2, role = $3, active = $4, updated_at = now()
         WHERE account_id = $1
         RETURNING account_id, email, full_name, role, active, created_at, updated_at",
        id,
        full_name,
        role.as_str(),
        active,
    )
    .fetch_one(&mut *tx)
    .await?;
    let after = Account::try_from(after)?;
    if !active {
        sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
            id,
        )
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
    )
    .correlated(correlation);
    OUTBOX.add_all(tx, std::slice::from_ref(&updated)).await?;
    if role != before.role {
        let changed = AccountRoleChangedV1 { account_id: id, old_role: before.role, new_role: role };
        let changed = Envelope::at(OUTBOX.producer(), updated.event_time, changed).correlated(correlation);
        OUTBOX.add_all(tx, &[changed]).await?;
    }
    Ok(after)
}

/// Sets the password hash of account `id` and ends every session of it: its refresh tokens
/// are refused from now on (its access tokens expire within minutes). No event: a password
/// or its hash never leaves auth.
pub async fn set_password(tx: &mut PgConnection, id: Uuid, password_hash: &str) -> Result<()> {
    let changed = sqlx::query!(
        "UPDATE accounts SET password_hash = $2, updated_at = now() WHERE account_id = $1",
        id,
        password_hash,
    )
    .execute(&mut *tx)
    .await?;
    if changed.rows_affected() == 0 {
        return Err(Error::NoSuchAccount(id));
    }
    sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE account_id = $1 AND revoked_at IS NULL",
        id
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Whether an active admin exists.
pub async fn any_active_admin(conn: &mut PgConnection) -> Result<bool> {
    let exists = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT FROM accounts WHERE role = 'admin' AND active) AS "exists!""#
    )
    .fetch_one(conn)
    .await?;
    Ok(exists)
}

/// Auth knows the current state of every account: a token whose account has since been
/// deactivated, deleted or given another role is outdated.
pub struct CurrentAccounts {
    pub pool: PgPool,
}

impl Freshness for CurrentAccounts {
    fn check<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<(), TokenError>> {
        Box::pin(async move {
            let account = sqlx::query!("SELECT role, active FROM accounts WHERE account_id = $1", claims.sub)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| TokenError::Unavailable(e.to_string()))?;
            match account {
                None => Err(TokenError::Outdated("the account no longer exists")),
                Some(account) if !account.active => {
                    Err(TokenError::Outdated("the account has been deactivated"))
                }
                Some(account) if account.role != claims.role.as_str() => {
                    Err(TokenError::Outdated("the account's role changed after this token was issued"))
                }
                Some(_) => Ok(()),
            }
        })
    }
}
