//! Sign-in, refresh and sign-out: access tokens and rotating refresh tokens.

use std::time::Duration;

use ates_schemas::events::Role;
use ates_tokens::Claims;
use chrono::Utc;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::{password, refresh};
use crate::keys::SigningKeys;
use ates_web::{Error, Problem, Result};

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
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

const BAD_CREDENTIALS: &str = "The email or password is wrong.";

impl Sessions {
    /// Checks the credentials and starts a new session (a new refresh token family).
    pub async fn login(&self, email: &str, password_text: String) -> Result<TokenPair> {
        let found: Option<(Uuid, String, String, bool)> = sqlx::query_as(
            "SELECT account_id, role, password_hash, active FROM accounts WHERE lower(email) = lower($1)",
        )
        .bind(email.trim())
        .fetch_optional(&self.pool)
        .await?;
        let (stored_hash, account) = match found {
            Some((id, role, hash, active)) => (Some(hash), Some((id, role, active))),
            None => (None, None),
        };
        // An unknown email is checked against a dummy hash: it takes as long as a wrong password.
        let matches = password::verify(password_text, stored_hash).await;
        let Some((id, role, active)) = account.filter(|_| matches) else {
            metrics::counter!("ates_auth_logins_total", "outcome" => "refused").increment(1);
            return Err(Problem::unauthorized(BAD_CREDENTIALS).into());
        };
        if !active {
            metrics::counter!("ates_auth_logins_total", "outcome" => "inactive").increment(1);
            return Err(Problem::unauthorized("This account has been deactivated.").into());
        }
        let role: Role = role.parse().map_err(|e: String| Error::Internal(anyhow::anyhow!(e)))?;
        let mut tx = self.pool.begin().await?;
        let pair = self.issue(&mut tx, id, role, Uuid::now_v7()).await?;
        tx.commit().await?;
        metrics::counter!("ates_auth_logins_total", "outcome" => "ok").increment(1);
        Ok(pair)
    }

    /// Exchanges a refresh token for a new pair. A token that was already used revokes its
    /// whole family: someone else may hold a copy.
    pub async fn refresh(&self, token: &str) -> Result<TokenPair> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(Uuid, Uuid, bool, bool, bool, String, bool)> = sqlx::query_as(
            "SELECT t.family_id, t.account_id, t.used_at IS NOT NULL, t.revoked_at IS NOT NULL,
                    t.expires_at < now(), a.role, a.active
             FROM refresh_tokens t JOIN accounts a USING (account_id)
             WHERE t.token_hash = $1 FOR UPDATE OF t",
        )
        .bind(refresh::hash(token))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((family, account_id, used, revoked, expired, role, active)) = row else {
            return Err(Problem::unauthorized("This refresh token is not known; sign in again.").into());
        };
        if revoked {
            return Err(Problem::unauthorized("This session has ended; sign in again.").into());
        }
        if used {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
            )
            .bind(family)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            tracing::warn!(%account_id, %family, "a used refresh token was presented again; the session is revoked");
            return Err(Problem::unauthorized("This refresh token was already used, so its session has been ended for safety; sign in again.").into());
        }
        if expired {
            return Err(Problem::unauthorized("This session has expired; sign in again.").into());
        }
        if !active {
            return Err(Problem::unauthorized("This account has been deactivated.").into());
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1")
            .bind(refresh::hash(token))
            .execute(&mut *tx)
            .await?;
        let role: Role = role.parse().map_err(|e: String| Error::Internal(anyhow::anyhow!(e)))?;
        let pair = self.issue(&mut tx, account_id, role, family).await?;
        tx.commit().await?;
        Ok(pair)
    }

    /// Ends the session the refresh token belongs to. Unknown tokens are ignored.
    pub async fn logout(&self, token: &str) -> Result<()> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now()
             WHERE revoked_at IS NULL
               AND family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1)",
        )
        .bind(refresh::hash(token))
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
        let refresh_ttl = chrono::Duration::from_std(self.refresh_ttl).map_err(anyhow::Error::from)?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, account_id, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&new.hash)
        .bind(family)
        .bind(account_id)
        .bind(Utc::now() + refresh_ttl)
        .execute(&mut *tx)
        .await?;
        let now = Utc::now();
        let ttl = i64::try_from(self.access_ttl.as_secs()).map_err(anyhow::Error::from)?;
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
