//! Refresh tokens: random, shown to the client once, stored only as a hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// A new refresh token and the hash that is stored.
pub struct NewRefreshToken {
    /// What the client gets.
    pub token: String,
    /// What the database keeps.
    pub hash: Vec<u8>,
}

/// 256 random bits, URL-safe.
pub fn generate() -> NewRefreshToken {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    NewRefreshToken { token, hash }
}

/// The stored form of a presented token.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_are_unique_and_only_their_hash_matches() {
        let (a, b) = (super::generate(), super::generate());
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 43);
        assert_eq!(super::hash(&a.token), a.hash);
        assert_ne!(super::hash(&b.token), a.hash);
    }
}
