//! `/api/auth/me` and `/api/accounts`: account administration.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::{CorrelationId, Json, Path};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::accounts::{self, Account, AccountChanges, NewAccount};
use crate::domain::{account as rules, password};
use crate::state::AppState;
use ates_web::{Problem, Result};

/// The signed-in account.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = Account),
        (status = 401, description = "Not signed in"),
    ))]
pub async fn me(State(state): State<AppState>, caller: Caller) -> Result<Json<Account>> {
    let mut conn = state.pool.acquire().await?;
    let account = accounts::find(&mut conn, caller.account_id)
        .await?
        .ok_or_else(|| Problem::not_found("Your account no longer exists."))?;
    Ok(Json(account))
}

/// Every account.
#[derive(Serialize, utoipa::ToSchema)]
pub struct AccountList {
    /// Oldest first.
    items: Vec<Account>,
}

/// Lists every account (admin).
#[utoipa::path(get, path = "/api/accounts", tag = "accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "All accounts", body = AccountList),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<AccountList>> {
    caller.require(&[Role::Admin])?;
    let mut conn = state.pool.acquire().await?;
    Ok(Json(AccountList { items: accounts::list(&mut conn).await? }))
}

/// A new account. (No `Debug`: it carries a password.)
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Unique whatever its case.
    #[schema(example = "popug@example.com", format = Email, max_length = 254)]
    email: String,
    /// The person's name: one line, not blank, at most 200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*$"
    )]
    full_name: String,
    /// 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    password: String,
    /// What the person may do.
    role: Role,
}

/// Creates an account (admin).
#[utoipa::path(post, path = "/api/accounts", tag = "accounts", security(("bearer" = [])), request_body = CreateAccount,
    responses(
        (status = 201, description = "Created", body = Account),
        (status = 403, description = "Not an admin"),
        (status = 409, description = "The email is taken"),
        (status = 422, description = "A field breaks a rule"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    Json(request): Json<CreateAccount>,
) -> Result<(StatusCode, Json<Account>)> {
    caller.require(&[Role::Admin])?;
    let email = rules::parse_email(&request.email)?;
    let full_name = rules::parse_full_name(&request.full_name)?;
    rules::check_password(&request.password)?;
    let password_hash = password::hash(request.password).await?;
    let mut tx = state.pool.begin().await?;
    let new = NewAccount { email, full_name, role: request.role, password_hash };
    let account = accounts::create(&mut tx, new, Some(correlation.0)).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(account)))
}

/// Changes to an account; absent fields stay as they are. (No `Debug`: it may carry a password.)
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    /// A new password (8 to 256 characters): every session of the account ends.
    #[schema(min_length = 8, max_length = 256)]
    password: Option<String>,
    /// A new name: one line, not blank, at most 200 characters.
    #[schema(
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*[^\s\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069][^\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]*$"
    )]
    full_name: Option<String>,
    /// A new role.
    role: Option<Role>,
    /// `false` deactivates the account and signs it out.
    active: Option<bool>,
}

/// Changes an account's name, role, activity or password (admin).
#[utoipa::path(patch, path = "/api/accounts/{account_id}", tag = "accounts", security(("bearer" = [])),
    params(("account_id" = Uuid, Path, description = "The account")), request_body = UpdateAccount,
    responses(
        (status = 200, description = "The account after the change", body = Account),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such account"),
        (status = 409, description = "It is the last active admin"),
        (status = 422, description = "A field breaks a rule"),
    ))]
#[tracing::instrument(skip_all, fields(caller = %caller.account_id, %account_id))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    correlation: CorrelationId,
    Path(account_id): Path<Uuid>,
    Json(request): Json<UpdateAccount>,
) -> Result<Json<Account>> {
    caller.require(&[Role::Admin])?;
    let full_name = request.full_name.as_deref().map(rules::parse_full_name).transpose()?;
    let password_hash = match request.password {
        Some(new) => {
            rules::check_password(&new)?;
            Some(password::hash(new).await?)
        }
        None => None,
    };
    let changes = AccountChanges { full_name, role: request.role, active: request.active };
    let mut tx = state.pool.begin().await?;
    let account = accounts::update(&mut tx, account_id, changes, Some(correlation.0)).await?;
    if let Some(hash) = password_hash {
        accounts::set_password(&mut tx, account_id, &hash).await?;
    }
    tx.commit().await?;
    Ok(Json(account))
}
