//! The published verification keys and their rotation.

use ates_schemas::events::Role;
use ates_tokens::Caller;
use ates_web::Json;
use axum::extract::State;
use axum::http::header;
use serde::Serialize;

use crate::state::AppState;
use ates_web::Result;

/// How long a cache may keep the JWK set: short, so a retired key stops verifying soon.
const JWKS_MAX_AGE: &str = "public, max-age=60";

/// The public keys that verify access tokens (RFC 7517). Services fetch it and cache it.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The JWK set", body = Object)))]
pub async fn jwks(
    State(state): State<AppState>,
) -> Result<([(header::HeaderName, &'static str); 1], Json<jsonwebtoken::jwk::JwkSet>)> {
    Ok(([(header::CACHE_CONTROL, JWKS_MAX_AGE)], Json(state.jwks.jwks().await?)))
}

/// The new signing key.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Rotated {
    /// Its key id; the previous key stays published until its tokens have expired.
    kid: String,
}

/// Starts signing with a new key (admin).
#[utoipa::path(post, path = "/api/auth/keys/rotate", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Rotated", body = Rotated),
        (status = 403, description = "Not an admin"),
    ))]
pub async fn rotate(State(state): State<AppState>, caller: Caller) -> Result<Json<Rotated>> {
    caller.require(&[Role::Admin])?;
    Ok(Json(Rotated { kid: state.sessions.keys.rotate().await? }))
}
