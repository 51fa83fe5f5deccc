//! The authenticated caller of a request, as an axum extractor.

use std::sync::Arc;

use ates_schemas::events::Role;
use ates_web::Problem;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use futures::future::BoxFuture;
use uuid::Uuid;

use crate::{Claims, TokenError, Verifier};

/// A service's own judgement of whether a verified token is still current, e.g. from its
/// replica of the accounts.
pub trait Freshness: Send + Sync + 'static {
    /// `Err(TokenError::Outdated)` when the account changed after the token was issued.
    fn check<'a>(&'a self, claims: &'a Claims) -> BoxFuture<'a, Result<(), TokenError>>;
}

/// Turns a request's bearer token into a [`Caller`]: part of every service's state.
#[derive(Clone)]
pub struct Authenticator {
    verifier: Arc<Verifier>,
    freshness: Option<Arc<dyn Freshness>>,
}

impl Authenticator {
    /// Accepts every token `verifier` accepts.
    pub fn new(verifier: Arc<Verifier>) -> Self {
        Authenticator { verifier, freshness: None }
    }

    /// Also refuses tokens that `freshness` finds outdated.
    pub fn with_freshness(mut self, freshness: impl Freshness) -> Self {
        self.freshness = Some(Arc::new(freshness));
        self
    }

    /// The caller behind `token`.
    pub async fn authenticate(&self, token: &str) -> Result<Caller, TokenError> {
        let claims = self.verifier.verify(token).await?;
        if let Some(freshness) = &self.freshness {
            freshness.check(&claims).await?;
        }
        Ok(Caller { account_id: claims.sub, role: claims.role, claims })
    }
}

/// The authenticated account making a request. Extracting it refuses the request with a 401
/// problem when the token is missing or not valid.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account id.
    pub account_id: Uuid,
    /// Its role.
    pub role: Role,
    /// The whole token.
    pub claims: Claims,
}

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(Problem::forbidden(format!(
            "This needs the {} role; you are signed in as {}.",
            allowed.join(" or "),
            self.role
        )))
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let header =
            parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or(TokenError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(TokenError::Missing)?;
        Ok(Authenticator::from_ref(state).authenticate(token).await?)
    }
}
