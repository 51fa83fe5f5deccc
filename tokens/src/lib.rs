//! Local verification of aTES access tokens, used by every service.
//!
//! Auth signs access tokens with Ed25519 and publishes its public keys as a JWKS. A service
//! verifies each token here, without calling auth: the signature against a cached key (the
//! JWKS is fetched again only for an unknown `kid`, at most once per interval), the algorithm
//! pinned to EdDSA, `exp`/`nbf` with a small leeway, `iss` and `aud`. A service that keeps a
//! replica of the accounts can also refuse tokens made outdated by a role change or
//! deactivation ([`Freshness`]).

mod caller;
mod claims;
mod error;
mod keyring;
mod verifier;

pub use caller::{Authenticator, Caller, Freshness};
pub use claims::Claims;
pub use error::TokenError;
pub use keyring::{HttpKeySource, KeySource, Keyring, public_jwk};
pub use verifier::{LEEWAY_SECS, TokenConfig, TokenSettings, Verifier};
