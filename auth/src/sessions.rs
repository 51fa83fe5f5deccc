//! Sign-in, refresh and sign-out: access tokens and rotating refresh tokens.

use std::time::Duration;

use ates_schemas::events::Role;
use ates_tokens::Claims;
use chrono::Utc;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::accounts::stored_role;
use crate::domain::{password, refresh};
use crate::keys::SigningKeys;
use crate::{Error, Result};

/// What a successful sign-in or refresh returns.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    /// The JWT to send as `Authorization: Bearer`.
    pub access_token: String,
    /// Exchange it at `/api/auth/refresh` for a new pair; it works once.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Issues tokens.
pub struct Sessions {
    pub pool: PgPool,
    pub keys: SigningKeys,
    pub issuer: String,
    pub audience: String,
    /// At most 15 minutes (the settings refuse more).
    pub access_ttl: Duration,
    /// Checked at start-up to fit a timestamp.
    pub refresh_ttl: chrono::Duration,
}

impl Sessions {
    /// Checks the credentials and starts a new session (a new refresh token family).
    pub async fn login(&self, email: &str, password_text: String) -> Result<TokenPair> {
        let found = sqlx::query!(
            "SELECT account_id, role, password_hash, active FROM accounts WHERE lower(email) = lower($1)",
            email.trim(),
        )
        .fetch_optional(&self.pool)
        .await?;
        let (stored_hash, account) = match found {
            Some(row) => (Some(row.password_hash), Some((row.account_id, row.role, row.active))),
            None => (None, None),
        };
        // An unknown email is checked against a dummy hash: it takes as long as a wrong password.
        let matches = password::verify(password_text, stored_hash).await?;
        let Some((id, role, active)) = account.filter(|_| matches) else {
            metrics::counter!("ates_auth_logins_total", "outcome" => "refused").increment(1);
            return Err(Error::BadCredentials);
        };
        if !active {
            metrics::counter!("ates_auth_logins_total", "outcome" => "inactive").increment(1);
            return Err(Error::Deactivated);
        }
        let role = stored_role(role)?;
        let mut tx = self.pool.begin().await?;
        let pair = self.issue(&mut tx, id, role, Uuid::now_v7()).await?;
        tx.commit().await?;
        metrics::counter!("ates_auth_logins_total", "outcome" => "ok").increment(1);
        Ok(pair)
    }

    /// Exchanges a refresh token for a new pair. A token that was already used revokes its
    /// whole family: someone else may hold a copy.
    pub async fn refresh(&self, token: &str) -> Result<TokenPair> {
        let hash = refresh::hash(token);
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query!(
            r#"SELECT t.family_id, t.account_id, t.used_at IS NOT NULL AS "used!",
                      t.revoked_at IS NOT NULL AS "revoked!", t.expires_at < now() AS "expired!",
                      a.role, a.active
               FROM refresh_tokens t JOIN accounts a USING (account_id)
               WHERE t.token_hash = $1 FOR UPDATE OF t"#,
            hash,
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(found) = found else {
            return Err(Error::UnknownRefreshToken);
        };
        if found.revoked {
            return Err(Error::SessionEnded);
        }
        if found.used {
            sqlx::query!(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
                found.family_id,
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let (account_id, family) = (found.account_id, found.family_id);
            tracing::warn!(%account_id, %family, "a used refresh token was presented again; the session is revoked");
            return Err(Error::RefreshTokenReused);
        }
        if found.expired {
            return Err(Error::SessionExpired);
        }
        if !found.active {
            return Err(Error::Deactivated);
        }
        sqlx::query!("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1", hash)
            .execute(&mut *tx)
            .await?;
        let role = stored_role(found.role)?;
        let pair = self.issue(&mut tx, found.account_id, role, found.family_id).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Changes the password of `account_id`, which must know its current one, and ends every
    /// session of the account.
    pub async fn change_password(&self, account_id: Uuid, current: String, new: String) -> Result<()> {
        crate::domain::account::check_password(&new)?;
        let stored =
            sqlx::query_scalar!("SELECT password_hash FROM accounts WHERE account_id = $1", account_id)
                .fetch_optional(&self.pool)
                .await?
                .ok_or(Error::NoSuchAccount(account_id))?;
        if !password::verify(current, Some(stored)).await? {
            return Err(Error::WrongPassword);
        }
        let hash = password::hash(new).await?;
        let mut tx = self.pool.begin().await?;
        crate::accounts::set_password(&mut tx, account_id, &hash).await?;
        tx.commit().await?;
        tracing::info!(%account_id, "password changed; every session of the account ended");
        Ok(())
    }

    /// Ends the session the refresh token belongs to. Unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<()> {
        sqlx::query!(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
            refresh::hash(token),
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn issue(
        &self,
        tx: &mut PgConnection,
        account_id: Uuid,
        role: Role,
        family: Uuid,
    ) -> Result<TokenPair> {
        let new = refresh::generate();
        sqlx::query!(
            "INSERT INTO refresh_tokens (token_hash, family_id, account_id, expires_at) VALUES ($1, $2, $3, $4)",
            new.hash,
            family,
            account_id,
            Utc::now() + self.refresh_ttl,
        )
        .execute(&mut *tx)
        .await?;
        let now = Utc::now();
        let ttl = self.access_ttl.as_secs().cast_signed();
        let claims = Claims {
            sub: account_id,
            role,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + ttl,
            jti: Uuid::new_v4(),
            iat_ms: now.timestamp_millis(),
        };
        let access_token = self.keys.sign(&claims).await?;
        Ok(TokenPair {
            access_token,
            refresh_token: new.token,
            token_type: "Bearer",
            expires_in: self.access_ttl.as_secs(),
        })
    }
}
