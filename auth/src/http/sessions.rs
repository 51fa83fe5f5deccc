//! `/api/auth/login`, `/refresh`, `/logout`.

use std::net::{IpAddr, SocketAddr};

use ates_web::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::Error;
use crate::domain::account as rules;
use crate::sessions::TokenPair;
use crate::state::AppState;
use ates_web::Result;

/// Credentials. (No `Debug`: a password must never reach a log.)
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    /// The account's email, in any case.
    #[schema(example = "popug@example.com", format = Email, max_length = 254)]
    email: String,
    /// The password.
    password: String,
}

/// A refresh token to exchange or end.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last sign-in or refresh.
    refresh_token: String,
}

/// Signs in: a short-lived access token and a refresh token.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 401, description = "Wrong email or password, or a deactivated account"),
        (status = 422, description = "The email is not an email address"),
        (status = 429, description = "Too many attempts; see Retry-After"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(request): Json<LoginRequest>,
) -> Result<Json<TokenPair>> {
    let address = client_address(&headers, peer, &state.trusted_proxies);
    // A well-formed address of at most 254 characters, before it becomes a limiter key.
    let email = rules::parse_email(&request.email)?;
    if let Err(limited) = state.limiter.check(&email, address) {
        metrics::counter!("ates_auth_logins_total", "outcome" => "rate_limited").increment(1);
        return Err(limited.into());
    }
    match state.sessions.login(&email, request.password).await {
        Err(Error::BadCredentials) => {
            state.limiter.failed(&email, address);
            Err(Error::BadCredentials.into())
        }
        result => Ok(Json(result?)),
    }
}

/// Exchanges a refresh token for a new pair; each refresh token works once.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused refresh token"),
    ))]
#[tracing::instrument(skip_all)]
pub async fn refresh(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<Json<TokenPair>> {
    Ok(Json(state.sessions.refresh(&request.refresh_token).await?))
}

/// Ends the session of a refresh token.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", request_body = RefreshRequest,
    responses((status = 204, description = "Signed out")))]
#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    Json(request): Json<RefreshRequest>,
) -> Result<StatusCode> {
    state.sessions.logout(&request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The peer address, or the first `X-Forwarded-For` entry when a trusted proxy sets it.
/// The client's address: the peer, unless the peer is a trusted proxy; then the right-most
/// `X-Forwarded-For` entry that is not a trusted proxy (the left ones are whatever the client
/// sent). A malformed entry ends the search at the last trusted hop.
fn client_address(headers: &HeaderMap, peer: SocketAddr, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    let mut client = peer.ip();
    if !is_trusted(&client) {
        return client;
    }
    let hops =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let hops: Vec<&str> = hops.collect();
    for hop in hops.iter().rev() {
        let Ok(address) = hop.trim().parse::<IpAddr>() else { break };
        client = address;
        if !is_trusted(&address) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let trusted: Vec<ipnet::IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_address(&headers, format!("{peer}:1234").parse().unwrap(), &trusted).to_string()
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop_and_only_behind_a_trusted_proxy() {
        assert_eq!(address("203.0.113.9", &["1.2.3.4"], &[]), "203.0.113.9", "no trusted proxy: the peer");
        assert_eq!(address("203.0.113.9", &["1.2.3.4"], &["10.0.0.0/8"]), "203.0.113.9", "an untrusted peer");
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6, 198.51.100.7"], &["10.0.0.0/8"]),
            "198.51.100.7",
            "spoofed left entries are ignored"
        );
        assert_eq!(
            address("10.0.0.2", &["198.51.100.7, 10.0.0.3"], &["10.0.0.0/8"]),
            "198.51.100.7",
            "through two proxies"
        );
        assert_eq!(
            address("10.0.0.2", &["6.6.6.6", "198.51.100.7"], &["10.0.0.0/8"]),
            "198.51.100.7",
            "several headers"
        );
        assert_eq!(
            address("10.0.0.2", &["garbage, 10.0.0.3"], &["10.0.0.0/8"]),
            "10.0.0.3",
            "stops at a malformed entry"
        );
        assert_eq!(address("10.0.0.2", &[], &["10.0.0.0/8"]), "10.0.0.2");
    }
}

/// A password change by the account's owner. (No `Debug`: it carries passwords.)
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    /// The password in use now.
    current_password: String,
    /// The new one: 8 to 256 characters.
    #[schema(min_length = 8, max_length = 256)]
    new_password: String,
}

/// Changes the signed-in account's password and ends every session of it (sign in again).
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])), request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; every refresh token of the account is refused from now on"),
        (status = 401, description = "Not signed in, or the current password is wrong"),
        (status = 422, description = "The new password breaks a rule"),
        (status = 503, description = "Too many password checks at once; see Retry-After"),
    ))]
#[tracing::instrument(skip_all, fields(caller = %caller.account_id))]
pub async fn change_password(
    State(state): State<AppState>,
    caller: ates_tokens::Caller,
    Json(request): Json<ChangePassword>,
) -> Result<StatusCode> {
    state.sessions.change_password(caller.account_id, request.current_password, request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
