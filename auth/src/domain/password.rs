//! Argon2id password hashes, computed off the async runtime, a few at a time, in work areas
//! that are reused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::{Error, Result};

/// How many requests may wait for a hashing slot before more are turned away with 503: each
/// hash takes 19 MiB and tens of milliseconds of a core, so a flood must not queue unbounded.
pub const MAX_WAITING: usize = 64;

/// One hashing slot per core.
fn slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS.get_or_init(|| Semaphore::new(slot_count()))
}

fn slot_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
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
    let slot = slot().await?;
    // The slot goes with the work: a request given up on does not free it while its hash runs.
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        hash_now(&password)
    })
    .await
    .map_err(|e| Error::PasswordHash(e.to_string()))?
}

/// Whether `password` matches `phc`. With no stored hash (an unknown email) it checks against
/// a dummy hash, so the answer takes as long as for a real account.
pub async fn verify(password: String, phc: Option<String>) -> Result<bool> {
    let known = phc.is_some();
    let slot = slot().await?;
    let matches = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let phc = phc.as_deref().unwrap_or_else(|| dummy_hash());
        matches_now(&password, phc).unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    Ok(known && matches)
}

fn hash_now(password: &str) -> Result<String> {
    let argon = Argon2::default();
    let salt = argon2::password_hash::generate_salt();
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(failed)?,
        salt: Some(Salt::new(&salt).map_err(failed)?),
        hash: Some(output(&argon, password.as_bytes(), &salt)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to `phc` with `phc`'s own algorithm, version and parameters.
fn matches_now(password: &str, phc: &str) -> Result<bool> {
    let phc = PasswordHash::new(phc).map_err(failed)?;
    let (Some(salt), Some(expected)) = (&phc.salt, &phc.hash) else { return Ok(false) };
    let algorithm = Algorithm::try_from(phc.algorithm.as_str()).map_err(failed)?;
    let version = phc.version.map(Version::try_from).transpose().map_err(failed)?.unwrap_or_default();
    let params = Params::try_from(&phc).map_err(failed)?;
    let computed = output(&Argon2::new(algorithm, version, params), password.as_bytes(), salt)?;
    // `Output`'s comparison takes the same time wherever the outputs differ.
    Ok(computed == *expected)
}

/// Work areas of the default size, each put back after its hash. Allocating 19 MiB per hash
/// grew the process by that much for every thread that ever hashed (the allocator keeps a
/// freed block of that size in the thread's arena); reused, there are never more of them than
/// hashing slots.
static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());

/// `argon`'s output for `password` and `salt`, computed in a reused work area.
fn output(argon: &Argon2<'_>, password: &[u8], salt: &[u8]) -> Result<Output> {
    let blocks = argon.params().block_count();
    let pooled = blocks == Params::default().block_count();
    let reused = if pooled { MEMORY.lock().ok().and_then(|mut m| m.pop()) } else { None };
    let mut memory = reused.unwrap_or_else(|| vec![Block::default(); blocks]);
    let mut out = vec![0; argon.params().output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    let hashed = argon.hash_password_into_with_memory(password, salt, &mut out, &mut memory);
    if pooled
        && let Ok(mut pool) = MEMORY.lock()
        && pool.len() < slot_count()
    {
        pool.push(memory);
    }
    hashed.map_err(failed)?;
    Output::new(&out).map_err(failed)
}

fn failed(error: impl std::fmt::Display) -> Error {
    Error::PasswordHash(error.to_string())
}

/// A hash of a random password, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_now(&uuid::Uuid::new_v4().to_string()).expect("hash a random password"))
}

#[cfg(test)]
mod tests {
    /// The slots, the queue and the work areas are the process's: the tests take turns.
    static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn a_password_matches_only_its_own_hash() {
        let _turn = TURNS.lock().await;
        let phc = super::hash("correct horse".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(super::verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!super::verify("wrong horse".into(), Some(phc)).await.unwrap());
        assert!(!super::verify("correct horse".into(), None).await.unwrap());
    }

    /// Through `hash` and `verify` only, so every hash here holds a slot (see the next test).
    #[tokio::test]
    async fn hashes_are_standard_phc_strings_that_the_argon2_crate_accepts_and_the_other_way_round() {
        let _turn = TURNS.lock().await;
        use argon2::{Argon2, PasswordHasher, PasswordVerifier};
        let verify = |password: &str, phc: &str| super::verify(password.into(), Some(phc.into()));
        let ours = super::hash("correct horse".into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{ours}");
        assert!(Argon2::default().verify_password(b"correct horse", ours.as_str()).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse", ours.as_str()).is_err());
        let theirs = Argon2::default().hash_password(b"correct horse").unwrap().to_string();
        assert!(verify("correct horse", &theirs).await.unwrap());
        assert!(!verify("wrong horse", &theirs).await.unwrap());
        // Other parameters than ours are read from the hash.
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        let small = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let small = small.hash_password(b"correct horse").unwrap().to_string();
        assert!(verify("correct horse", &small).await.unwrap());
        assert!(!verify("correct horse", "not a hash").await.unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_reuses_at_most_one_work_area_per_slot() {
        let _turn = TURNS.lock().await;
        let hashes: Vec<_> = (0..12).map(|n| tokio::spawn(super::hash(format!("password {n}")))).collect();
        for hash in hashes {
            hash.await.unwrap().unwrap();
        }
        let slots = super::slot_count();
        let areas = super::MEMORY.lock().unwrap().len();
        assert!((1..=slots).contains(&areas), "{areas} work areas for {slots} slots");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn when_every_core_is_hashing_and_the_queue_is_full_a_hash_is_refused_at_once() {
        use std::sync::atomic::Ordering;
        let _turn = TURNS.lock().await;
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
