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

/// Takes a signing key out of the JWKS at once (admin), for an emergency such as a leaked
/// private key: every service refuses the tokens it signed once its key cache refreshes
/// (`ATES_JWKS_TTL`, minutes). If it was the active key, a new one signs from now on.
#[utoipa::path(post, path = "/api/auth/keys/{kid}/retire", tag = "auth", security(("bearer" = [])),
    params(("kid" = String, Path, description = "The key id, as in the JWKS and token headers")),
    responses(
        (status = 200, description = "Unpublished; the key that signs now", body = Rotated),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "No such key"),
    ))]
pub async fn retire(
    State(state): State<AppState>,
    caller: Caller,
    ates_web::Path(kid): ates_web::Path<String>,
) -> Result<Json<Rotated>> {
    caller.require(&[Role::Admin])?;
    match state.sessions.keys.unpublish(&kid).await? {
        Some(kid) => Ok(Json(Rotated { kid })),
        None => Err(ates_web::Problem::not_found(format!("There is no signing key {kid}.")).into()),
    }
}
