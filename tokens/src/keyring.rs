//! The public keys that verify tokens, fetched from auth's JWKS and cached.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse,
};
use tokio::sync::{Mutex, RwLock};

use crate::TokenError;

/// Where the public keys come from.
pub trait KeySource: Send + Sync + 'static {
    /// The current key set.
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>>;
}

/// Auth's `/.well-known/jwks.json` over HTTP.
pub struct HttpKeySource {
    url: String,
    client: reqwest::Client,
}

impl HttpKeySource {
    /// Fetches the JWKS at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        let client =
            reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
        HttpKeySource { url: url.into(), client }
    }
}

impl KeySource for HttpKeySource {
    fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
        Box::pin(async move {
            let response =
                self.client.get(&self.url).send().await.map_err(|e| format!("{}: {e}", self.url))?;
            let response = response.error_for_status().map_err(|e| format!("{}: {e}", self.url))?;
            response.json::<JwkSet>().await.map_err(|e| format!("{}: {e}", self.url))
        })
    }
}

/// The JWK of an Ed25519 public key.
pub fn public_jwk(kid: &str, public_key: &[u8; 32]) -> Jwk {
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(kid.to_owned()),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x: URL_SAFE_NO_PAD.encode(public_key),
        }),
    }
}

/// Cached verification keys by `kid`, refetched once they are older than `ttl` (so a key auth
/// no longer publishes stops verifying within it). An unknown `kid` triggers a refetch too, but
/// never more than once per `min_refetch`, so a flood of made-up kids cannot hammer auth.
pub struct Keyring {
    source: Box<dyn KeySource>,
    cache: RwLock<Cached>,
    last_fetch: Mutex<Option<Instant>>,
    min_refetch: Duration,
    ttl: Duration,
}

/// The key set as last fetched.
#[derive(Default)]
struct Cached {
    keys: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
}

impl Cached {
    fn fresh(&self, ttl: Duration) -> bool {
        self.fetched.is_some_and(|at| at.elapsed() < ttl)
    }
}

impl Keyring {
    /// A keyring that fetches from `source` when its keys are older than `ttl` or a `kid` is
    /// unknown, at most once per `min_refetch`.
    pub fn new(source: impl KeySource, min_refetch: Duration, ttl: Duration) -> Self {
        Keyring {
            source: Box::new(source),
            cache: RwLock::default(),
            last_fetch: Mutex::default(),
            min_refetch,
            ttl,
        }
    }

    /// The key with this `kid`, fetching the key set if it is not known yet or has grown stale.
    ///
    /// Fetches happen at most once per `min_refetch`: a request with an unknown `kid` waits
    /// for the next allowed fetch (a key rotated in a moment ago is found), and is refused
    /// only if a fetch that finished after it arrived still does not know the `kid`. When auth
    /// cannot be reached, stale keys keep verifying (logged) rather than refusing everyone.
    pub async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        {
            let cache = self.cache.read().await;
            if let Some(key) = cache.keys.get(kid).filter(|_| cache.fresh(self.ttl)) {
                return Ok(key.clone());
            }
        }
        let arrived = Instant::now();
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_none_or(|at| at < arrived) {
            if let Some(at) = *last_fetch {
                tokio::time::sleep_until((at + self.min_refetch).into()).await;
            }
            let fetched = self.source.fetch().await;
            *last_fetch = Some(Instant::now());
            match fetched {
                Ok(set) => {
                    let keys: HashMap<String, DecodingKey> =
                        set.keys.iter().filter_map(decoding_key).collect();
                    tracing::debug!(keys = keys.len(), "fetched the JWKS");
                    *self.cache.write().await = Cached { keys, fetched: Some(Instant::now()) };
                }
                Err(e) if self.cache.read().await.keys.contains_key(kid) => {
                    tracing::warn!("cannot refresh the JWKS, verifying with the keys fetched before: {e}");
                }
                Err(e) => return Err(TokenError::Unavailable(e)),
            }
        }
        self.cache.read().await.keys.get(kid).cloned().ok_or(TokenError::UnknownKey)
    }
}

/// An Ed25519 JWK as a verification key; anything else (or a malformed `x`) is skipped.
fn decoding_key(jwk: &Jwk) -> Option<(String, DecodingKey)> {
    let kid = jwk.common.key_id.clone()?;
    let AlgorithmParameters::OctetKeyPair(params) = &jwk.algorithm else { return None };
    if params.curve != EllipticCurve::Ed25519 {
        return None;
    }
    // A short key would panic inside jsonwebtoken: insist on exactly 32 bytes.
    let raw = URL_SAFE_NO_PAD.decode(&params.x).ok().filter(|raw| raw.len() == 32)?;
    Some((kid, DecodingKey::from_ed_der(&raw)))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A key source that counts fetches and can gain a key.
    #[derive(Clone, Default)]
    struct Counting {
        fetches: Arc<AtomicUsize>,
        kids: Arc<std::sync::Mutex<Vec<String>>>,
    }

    impl KeySource for Counting {
        fn fetch(&self) -> BoxFuture<'_, Result<JwkSet, String>> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let keys = self.kids.lock().unwrap().iter().map(|kid| public_jwk(kid, &[9; 32])).collect();
            Box::pin(async move { Ok(JwkSet { keys }) })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() {
        let source = Counting::default();
        source.kids.lock().unwrap().push("real".into());
        let keyring =
            Arc::new(Keyring::new(source.clone(), Duration::from_secs(1), Duration::from_secs(120)));
        assert!(keyring.key("real").await.is_ok());

        let flood: Vec<_> = (0..200)
            .map(|n| {
                let keyring = keyring.clone();
                tokio::spawn(async move { keyring.key(&format!("bogus-{n}")).await })
            })
            .collect();
        for request in flood {
            assert_eq!(request.await.unwrap().err(), Some(TokenError::UnknownKey));
        }

        let fetches = source.fetches.load(Ordering::SeqCst);
        assert!(fetches <= 3, "200 bogus kids caused {fetches} fetches");
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_rotated_in_just_after_a_fetch_is_found() {
        let source = Counting::default();
        source.kids.lock().unwrap().push("old".into());
        let keyring = Keyring::new(source.clone(), Duration::from_secs(1), Duration::from_secs(120));
        assert!(keyring.key("old").await.is_ok());

        source.kids.lock().unwrap().push("new".into());

        assert!(keyring.key("new").await.is_ok(), "waits for the next allowed fetch instead of refusing");
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }
}
