//! The threads that hash passwords. Argon2 is slow on purpose and takes
//! 19 MiB a hash. Run on tokio's blocking pool with a fresh allocation each
//! time, the allocator kept what hashes had taken: 30 registrations one
//! after the other took the server from 31 MiB to 300 MiB, and a flood of
//! logins further. Here one thread per core but one (at least one) takes
//! the hashes in turn from a short queue, each into the same memory of its
//! own, so the server holds a hash's memory per thread whatever the
//! traffic; a core stays free for the other requests; and a hash that
//! cannot join the queue within `WAIT` is refused as unavailable rather
//! than piling up.
//!
//! One client address has at most [`PER_ADDRESS`] hashes queued or being
//! computed; its others wait for one of those to finish (within the same
//! `WAIT`). Sign-ins that succeed are never throttled, so without a share
//! one address signing in to its own account 60 times at once kept the
//! queue full, and another customer's sign-in waited 850 ms behind them
//! (25 ms alone).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{self, Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use crate::auth::ClientAddr;
use crate::error::{ApiError, ApiResult};

/// How long a hash may wait for room in the queue.
const WAIT: Duration = Duration::from_secs(5);

/// Hashes queued per thread, beyond the one it is computing.
const QUEUED_PER_THREAD: usize = 4;

/// Hashes one client address may have queued or being computed at once.
pub const PER_ADDRESS: usize = 2;

type Job = Box<dyn FnOnce() + Send>;

static POOL: LazyLock<mpsc::Sender<Job>> = LazyLock::new(|| {
    // one core is left to everything else: placements keep their latency
    // while sign-ins queue
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = cores.saturating_sub(1).max(1);
    let (sender, receiver) = mpsc::channel::<Job>(threads * QUEUED_PER_THREAD);
    let receiver = Arc::new(Mutex::new(receiver));
    for n in 0..threads {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("password-hashing-{n}"))
            .spawn(move || {
                loop {
                    // the lock is held while waiting: one thread waits, the
                    // others wait for it, and each job goes to one thread
                    let job = receiver
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .blocking_recv();
                    match job {
                        // a panic fails its request (its result never comes), not the thread
                        Some(job) => {
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                        None => return,
                    }
                }
            })
            .expect("a password hashing thread");
    }
    sender
});

/// Runs `work` on a hashing thread, in its address's share, and hands back
/// its result.
pub async fn run<T: Send + 'static>(
    from: Option<ClientAddr>,
    work: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let deadline = Instant::now() + WAIT;
    // held until the hash is done: the share counts the computing one too
    let _share = match from {
        Some(from) => Some(
            tokio::time::timeout_at(deadline, Share::take(from))
                .await
                .map_err(|_| ApiError::HASHING_BUSY)?,
        ),
        None => None,
    };
    let (done, result) = oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(work());
    });
    let waited = deadline.saturating_duration_since(Instant::now());
    match POOL.send_timeout(job, waited).await {
        Ok(()) => {}
        Err(mpsc::error::SendTimeoutError::Timeout(_)) => return Err(ApiError::HASHING_BUSY),
        Err(mpsc::error::SendTimeoutError::Closed(_)) => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "the password hashing threads are gone"
            )));
        }
    }
    result
        .await
        .map_err(|_| ApiError::internal(anyhow::anyhow!("a password hashing job panicked")))
}

/// Each address's places, while it has a hash queued or computed (or one
/// waiting for a place).
static SHARES: LazyLock<Mutex<HashMap<ClientAddr, Arc<Semaphore>>>> = LazyLock::new(Mutex::default);

/// One of an address's places.
struct Share {
    permit: Option<OwnedSemaphorePermit>,
    from: ClientAddr,
}

impl Share {
    async fn take(from: ClientAddr) -> Self {
        let places = shares()
            .entry(from)
            .or_insert_with(|| Arc::new(Semaphore::new(PER_ADDRESS)))
            .clone();
        let permit = places
            .acquire_owned()
            .await
            .expect("a share is never closed");
        Self {
            permit: Some(permit),
            from,
        }
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut shares = shares();
        // the map's is the last reference: nobody holds or waits for a place
        if shares
            .get(&self.from)
            .is_some_and(|places| Arc::strong_count(places) == 1)
        {
            shares.remove(&self.from);
        }
    }
}

fn shares() -> std::sync::MutexGuard<'static, HashMap<ClientAddr, Arc<Semaphore>>> {
    SHARES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The most memory a stored hash's parameters may ask for (64 MiB): a row
/// that asks for more is refused rather than allocated.
const MAX_BLOCKS: usize = 64 * 1024;

thread_local! {
    /// Each hashing thread's Argon2 memory, allocated once and reused: the
    /// allocator then has nothing to keep from one hash to the next.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Argon2id with the default parameters: a PHC string for `password`.
/// Runs on a hashing thread.
pub(crate) fn hash(password: &[u8]) -> password_hash::Result<String> {
    let argon2 = Argon2::default();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
    with_memory(&argon2, password, salt_bytes, &mut output)?;
    let hash = PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::default().into()),
        params: ParamsString::try_from(argon2.params())?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output)?),
    };
    Ok(hash.to_string())
}

/// Whether `password` is the one `phc` was made from, compared in constant
/// time. Runs on a hashing thread.
pub(crate) fn verify(password: &[u8], phc: &str) -> password_hash::Result<bool> {
    let stored = PasswordHash::new(phc)?;
    let algorithm = Algorithm::try_from(stored.algorithm)?;
    let version = stored
        .version
        .map(Version::try_from)
        .transpose()?
        .unwrap_or_default();
    let params = Params::try_from(&stored)?;
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else {
        return Err(password_hash::Error::PhcStringField);
    };
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let salt_bytes = salt.decode_b64(&mut salt_bytes)?;
    let argon2 = Argon2::new(algorithm, version, params);
    let mut output = vec![0u8; expected.len()];
    with_memory(&argon2, password, salt_bytes, &mut output)?;
    Ok(Output::new(&output)? == expected)
}

fn with_memory(
    argon2: &Argon2,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> password_hash::Result<()> {
    let blocks = argon2.params().block_count();
    if blocks > MAX_BLOCKS {
        return Err(password_hash::Error::ParamValueInvalid(
            password_hash::errors::InvalidValue::TooLong,
        ));
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon2.hash_password_into_with_memory(password, salt, output, &mut memory[..blocks])
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use argon2::{PasswordHasher, PasswordVerifier};

    use super::*;

    #[tokio::test]
    async fn an_address_holds_its_share_of_places_and_is_forgotten_after() {
        let from = ClientAddr::from(std::net::IpAddr::from([192, 0, 2, 7]));
        let first = Share::take(from).await;
        let second = Share::take(from).await;
        let third = tokio::time::timeout(Duration::from_millis(50), Share::take(from)).await;
        assert!(third.is_err(), "a third place was given");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(1), Share::take(from))
            .await
            .expect("a place given back is taken");
        drop((second, third));
        assert!(!shares().contains_key(&from));
    }

    #[test]
    fn a_hash_verifies_its_password_only_and_reads_like_any_argon2_hash() {
        let phc = hash(b"correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(b"correct horse", &phc).unwrap());
        assert!(!verify(b"correct horsf", &phc).unwrap());
        // the argon2 crate's own verifier agrees, and we read its hashes
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = Argon2::default()
            .hash_password(b"battery staple", &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string();
        assert!(verify(b"battery staple", &theirs).unwrap());
        assert!(!verify(b"battery stapler", &theirs).unwrap());
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_or_malformed_is_an_error() {
        let greedy = "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(verify(b"x", greedy).is_err());
        assert!(verify(b"x", "x").is_err());
    }
}
