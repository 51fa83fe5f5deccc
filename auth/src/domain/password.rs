//! Argon2id password hashes, computed off the async runtime, a few at a time.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Error, Result};

/// How many requests may wait for a hashing slot before more are turned away with 503: each
/// hash takes 19 MiB and tens of milliseconds of a core, so a flood must not queue unbounded.
pub const MAX_WAITING: usize = 64;

/// One hashing slot per core.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

static WAITING: AtomicUsize = AtomicUsize::new(0);

/// A hashing slot, or [`Error::Busy`] when [`MAX_WAITING`] requests already wait for one.
async fn slot() -> Result<SemaphorePermit<'static>> {
    if let Ok(permit) = slots().try_acquire() {
        return Ok(permit);
    }
    if WAITING.fetch_add(1, Ordering::SeqCst) >= MAX_WAITING {
        WAITING.fetch_sub(1, Ordering::SeqCst);
        metrics::counter!("ates_auth_password_hashes_refused_total").increment(1);
        return Err(Error::Busy);
    }
    let permit = slots().acquire().await;
    WAITING.fetch_sub(1, Ordering::SeqCst);
    permit.map_err(|e| Error::PasswordHash(e.to_string()))
}

/// Hashes `password` with Argon2id (default parameters: 19 MiB, 2 passes) into a PHC string.
pub async fn hash(password: String) -> Result<String> {
    let _slot = slot().await?;
    tokio::task::spawn_blocking(move || {
        Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string())
    })
    .await
    .map_err(|e| Error::PasswordHash(e.to_string()))?
    .map_err(|e| Error::PasswordHash(e.to_string()))
}

/// Whether `password` matches `phc`. With no stored hash (an unknown email) it checks against
/// a dummy hash, so the answer takes as long as for a real account.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_hash().to_owned());
    let _slot = slot().await?;
    let matches = tokio::task::spawn_blocking(move || {
        Argon2::default().verify_password(password.as_bytes(), phc.as_str()).is_ok()
    })
    .await
    .unwrap_or(false);
    Ok(known && matches)
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
        assert!(super::verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!super::verify("wrong horse".into(), Some(phc)).await.unwrap());
        assert!(!super::verify("correct horse".into(), None).await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_every_core_is_hashing_and_the_queue_is_full_a_hash_is_refused_at_once() {
        use std::sync::atomic::Ordering;
        let slots = super::slots();
        let all = slots.acquire_many(u32::try_from(slots.available_permits()).unwrap()).await.unwrap();
        let waiters: Vec<_> =
            (0..super::MAX_WAITING).map(|_| tokio::spawn(async { super::slot().await.map(drop) })).collect();
        while super::WAITING.load(Ordering::SeqCst) < super::MAX_WAITING {
            tokio::task::yield_now().await;
        }
        assert!(matches!(super::hash("one too many".into()).await, Err(crate::Error::Busy)));
        drop(all);
        for waiter in waiters {
            let _ = waiter.await.unwrap();
        }
        assert!(super::hash("now there is room".into()).await.is_ok());
    }
}
