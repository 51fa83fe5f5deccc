//! The first admin, from `ATES_ADMIN_EMAIL` and `ATES_ADMIN_PASSWORD`, when there is none.

use anyhow::Context;
use ates_schemas::events::Role;
use sqlx::PgPool;

use crate::accounts::{self, AccountChanges, NewAccount};
use crate::domain::{account as rules, password};

/// Makes sure an active admin exists: creates one from the settings, or makes the account
/// with that email an active admin. Several instances starting at once create one admin.
pub async fn first_admin(
    pool: &PgPool,
    email: Option<&str>,
    password_text: Option<&str>,
) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('ates.auth.first_admin'))").execute(&mut *tx).await?;
    if accounts::any_active_admin(&mut tx).await? {
        return Ok(());
    }
    let (Some(email), Some(password_text)) = (email, password_text) else {
        tracing::warn!(
            "there is no active admin: set ATES_ADMIN_EMAIL and ATES_ADMIN_PASSWORD to create one"
        );
        return Ok(());
    };
    let email = rules::parse_email(email).context("ATES_ADMIN_EMAIL")?;
    rules::check_password(password_text).context("ATES_ADMIN_PASSWORD")?;
    match accounts::find_by_email(&mut tx, &email).await? {
        Some(id) => {
            let changes =
                AccountChanges { role: Some(Role::Admin), active: Some(true), ..Default::default() };
            accounts::update(&mut tx, id, changes, None).await?;
            tracing::info!(%email, "made the existing account the first admin");
        }
        None => {
            let password_hash = password::hash(password_text.to_owned()).await?;
            let new = NewAccount {
                email: email.clone(),
                full_name: "Administrator".into(),
                role: Role::Admin,
                password_hash,
            };
            accounts::create(&mut tx, new, None).await?;
            tracing::info!(%email, "created the first admin");
        }
    }
    tx.commit().await?;
    Ok(())
}
