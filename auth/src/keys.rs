//! Ed25519 signing keys: created on first start, kept in the auth database, rotated on
//! demand, and published as a JWKS until the tokens they signed have expired.

use std::time::{Duration, Instant};

use ates_tokens::{KeySource, public_jwk};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use futures::future::BoxFuture;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rand::RngCore;
use sqlx::PgPool;
use tokio::sync::RwLock;

use crate::Result;

/// How often an instance re-reads which key is active, so a rotation made by another instance
/// takes effect here too.
const RELOAD_EVERY: Duration = Duration::from_secs(30);

struct ActiveKey {
    kid: String,
    key: EncodingKey,
    loaded: Instant,
}

/// The signing side of the keys.
pub struct SigningKeys {
    pool: PgPool,
    active: RwLock<ActiveKey>,
    /// Retired keys stay in the JWKS this long: the access token lifetime plus the reload delay.
    publish_retired_for: Duration,
}

impl SigningKeys {
    /// Loads the active key, creating the first one if there is none.
    pub async fn load_or_create(pool: PgPool, access_ttl: Duration) -> Result<Self> {
        let active = load_active(&pool).await?;
        Ok(SigningKeys {
            pool,
            active: RwLock::new(active),
            publish_retired_for: access_ttl + RELOAD_EVERY + Duration::from_secs(60),
        })
    }

    /// Signs `claims` with the active key.
    pub async fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String> {
        if self.active.read().await.loaded.elapsed() > RELOAD_EVERY {
            let fresh = load_active(&self.pool).await?;
            *self.active.write().await = fresh;
        }
        let active = self.active.read().await;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(active.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &active.key)?)
    }

    /// Retires the active key and creates a new one; returns the new `kid`.
    pub async fn rotate(&self) -> Result<String> {
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        sqlx::query!("UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL")
            .execute(&mut *tx)
            .await?;
        let kid = insert_new_key(&mut tx).await?;
        tx.commit().await?;
        *self.active.write().await = load_active(&self.pool).await?;
        tracing::info!(%kid, "rotated the signing key");
        Ok(kid)
    }

    /// Takes key `kid` out of the JWKS at once, for an emergency (a leaked private key): every
    /// service refuses its tokens once its key cache refreshes (`ATES_JWKS_TTL`). If it is the
    /// active key, a new one is made first. Returns the active `kid` afterwards; `None` when
    /// there is no such key.
    pub async fn unpublish(&self, kid: &str) -> Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        lock_keys(&mut tx).await?;
        let found =
            sqlx::query!("SELECT retired_at IS NULL AS \"active!\" FROM signing_keys WHERE kid = $1", kid)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(found) = found else { return Ok(None) };
        if found.active {
            sqlx::query!("UPDATE signing_keys SET retired_at = now() WHERE kid = $1", kid)
                .execute(&mut *tx)
                .await?;
            insert_new_key(&mut tx).await?;
        }
        sqlx::query!(
            "UPDATE signing_keys SET unpublished_at = coalesce(unpublished_at, now()) WHERE kid = $1",
            kid
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let active = load_active(&self.pool).await?;
        let kid_now = active.kid.clone();
        *self.active.write().await = active;
        tracing::warn!(retired = %kid, active = %kid_now, "a signing key was unpublished");
        Ok(Some(kid_now))
    }

    /// The JWKS source backed by this database, for auth's own verifier.
    pub fn source(&self) -> DbKeySource {
        DbKeySource { pool: self.pool.clone(), publish_retired_for: self.publish_retired_for }
    }
}

/// The public keys from the auth database: the active key and recently retired ones.
#[derive(Clone)]
pub struct DbKeySource {
    pool: PgPool,
    publish_retired_for: Duration,
}

impl DbKeySource {
    /// The JWKS as published.
    pub async fn jwks(&self) -> Result<JwkSet> {
        let horizon = chrono::Utc::now()
            - chrono::Duration::from_std(self.publish_retired_for).unwrap_or(chrono::Duration::MAX);
        let published = sqlx::query!(
            "SELECT kid, public_key FROM signing_keys
             WHERE unpublished_at IS NULL AND (retired_at IS NULL OR retired_at > $1)
             ORDER BY created_at DESC",
            horizon,
        )
        .fetch_all(&self.pool)
        .await?;
        let keys = published
            .into_iter()
            .filter_map(|key| Some(public_jwk(&key.kid, &<[u8; 32]>::try_from(key.public_key).ok()?)))
            .collect();
        Ok(JwkSet { keys })
    }
}

impl KeySource for DbKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        Box::pin(async move { self.jwks().await.map_err(|e| e.to_string()) })
    }
}

/// Serialises key creation and rotation across auth instances.
async fn lock_keys(tx: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('ates.auth.signing_keys'))").execute(tx).await?;
    Ok(())
}

async fn load_active(pool: &PgPool) -> Result<ActiveKey> {
    let mut tx = pool.begin().await?;
    let mut active = select_active(&mut tx).await?;
    if active.is_none() {
        // First start: create the key, unless another instance did while we waited for the lock.
        lock_keys(&mut tx).await?;
        active = select_active(&mut tx).await?;
        if active.is_none() {
            insert_new_key(&mut tx).await?;
            active = select_active(&mut tx).await?;
        }
    }
    tx.commit().await?;
    let active = active.expect("a key exists after creating one");
    Ok(ActiveKey {
        kid: active.kid,
        key: EncodingKey::from_ed_der(&active.private_key),
        loaded: Instant::now(),
    })
}

/// The key that signs, as stored.
struct StoredKey {
    kid: String,
    /// PKCS#8 DER.
    private_key: Vec<u8>,
}

async fn select_active(tx: &mut sqlx::PgConnection) -> Result<Option<StoredKey>> {
    let key =
        sqlx::query_as!(StoredKey, "SELECT kid, private_key FROM signing_keys WHERE retired_at IS NULL")
            .fetch_optional(tx)
            .await?;
    Ok(key)
}

async fn insert_new_key(tx: &mut sqlx::PgConnection) -> Result<String> {
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let signing = SigningKey::from_bytes(&seed);
    let der = signing.to_pkcs8_der().expect("an Ed25519 key encodes as PKCS#8");
    let kid = uuid::Uuid::now_v7().simple().to_string();
    let public_key = signing.verifying_key().to_bytes();
    sqlx::query!(
        "INSERT INTO signing_keys (kid, private_key, public_key) VALUES ($1, $2, $3)",
        kid,
        der.as_bytes(),
        public_key.as_slice(),
    )
    .execute(tx)
    .await?;
    Ok(kid)
}
