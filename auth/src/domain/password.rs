//! Argon2id password hashes, computed off the async runtime.

use std::sync::OnceLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::{Error, Result};

/// Hashes `password` with Argon2id (default parameters: 19 MiB, 2 passes) into a PHC string.
pub async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
    })
    .await
    .map_err(|e| Error::PasswordHash(e.to_string()))?
    .map_err(|e| Error::PasswordHash(e.to_string()))
}

/// Whether `password` matches `phc`. With no stored hash (an unknown email) it checks against
/// a dummy hash, so the answer takes as long as for a real account.
pub async fn verify(password: String, phc: Option<String>) -> bool {
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
    let matches = tokio::task::spawn_blocking(move || {
        Argon2::default().verify_password(password.as_bytes(), phc.as_str()).is_ok()
    })
    .await
    .unwrap_or(false);
    known && matches
}

/// A hash of a random password, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = uuid::Uuid::new_v4().to_string();
        Argon2::default().hash_password(password.as_bytes()).expect("hash a random password").to_string()
    })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_password_matches_only_its_own_hash() {
        let phc = super::hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), Some(phc.clone())).await);
        assert!(!super::verify("wrong horse".into(), Some(phc)).await);
        assert!(!super::verify("correct horse".into(), None).await);
    }
}
