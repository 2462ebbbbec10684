//! argon2id password hashes (PHC strings), computed on a few threads of their own, a bounded
//! number at a time.
//!
//! Each hash holds argon2's memory (19 MiB by default) for tens of milliseconds of CPU. With
//! no bound, 64 concurrent wrong-password logins took a process from 165 MB to 1.37 GB, and a
//! second burst to 2.5 GB, kept. Two things bound it here:
//! * `concurrency` threads compute every hash, each in one buffer of argon2's memory that it
//!   keeps and reuses: memory is `concurrency` × 19 MiB, allocated once. (Allocated per hash,
//!   glibc kept up to ~8 freed 19 MiB buffers per thread instead of returning them: measured,
//!   a process at 225 MB after 64 logins with 2 threads, and on tokio's blocking pool, where
//!   each burst brings new threads, 2.4 GB after two bursts.)
//! * at most `queue` more wait; anything beyond is refused at once with [`HashError::Busy`]
//!   (503 with `Retry-After`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString, rand_core::OsRng};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OnceCell, oneshot};

use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing thread is busy and the queue is full.
    #[error("password hashing is at capacity")]
    Busy,
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => ApiError::Overloaded {
                code: "busy",
                message: "too many sign-ups and logins at once on this instance: retry in a second".into(),
                retry_after_s: 1,
            },
            HashError::Failed(e) => ApiError::Internal(e),
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads; they end when the last [`PasswordHasher`] clone is dropped.
struct HashThreads {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl HashThreads {
    fn start(threads: usize) -> anyhow::Result<HashThreads> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads {
            let queue = queue.clone();
            std::thread::Builder::new().name(format!("password-hash-{n}")).spawn(move || {
                loop {
                    // The lock is held only while taking a job, never while running one.
                    let job = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // every sender is gone
                    }
                }
            })?;
        }
        Ok(HashThreads { jobs: Mutex::new(jobs) })
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        let jobs = self.jobs.lock().map_err(|_| anyhow::anyhow!("the hashing queue is poisoned"))?;
        jobs.send(job).map_err(|_| HashError::Failed(anyhow::anyhow!("the hashing threads are gone")))
    }
}

#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    threads: Arc<HashThreads>,
    /// Hashes running or waiting now.
    in_line: Arc<AtomicUsize>,
    /// Running + waiting beyond which a request is refused.
    capacity: usize,
    /// A hash of nothing anyone knows, with the current parameters: a login for an address
    /// with no account is checked against it, so that it costs what a real one does and the
    /// answer's timing does not tell which addresses have accounts. Made on first use, on the
    /// hashing threads.
    decoy: Arc<OnceCell<String>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("capacity", &self.capacity).finish()
    }
}

/// Releases a place in line when dropped.
struct InLine(Arc<AtomicUsize>);

impl Drop for InLine {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl PasswordHasher {
    /// `concurrency` hashing threads (at least 1), `queue` more hashes waiting.
    pub fn new(memory_kib: u32, iterations: u32, concurrency: usize, queue: usize) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters m={memory_kib} t={iterations}: {e}"))?;
        let concurrency = concurrency.max(1);
        Ok(Self {
            params,
            threads: Arc::new(HashThreads::start(concurrency)?),
            in_line: Arc::default(),
            capacity: concurrency + queue,
            decoy: Arc::new(OnceCell::new()),
        })
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    /// Runs `work` on a hashing thread; `Busy` when the line is full.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, HashError> {
        if self.in_line.fetch_add(1, Ordering::AcqRel) >= self.capacity {
            self.in_line.fetch_sub(1, Ordering::AcqRel);
            return Err(HashError::Busy);
        }
        let place = InLine(self.in_line.clone());
        let (done, result) = oneshot::channel();
        // The place in line is given back when the hash is done, even if the request that
        // asked for it is gone by then: the thread is busy until then either way.
        // It is given back before the answer is sent, so whoever reads the answer finds the
        // place free.
        self.threads.submit(Box::new(move || {
            let outcome = work();
            drop(place);
            let _ = done.send(outcome);
        }))?;
        result.await.map_err(|_| anyhow::anyhow!("a hashing thread ended mid-hash"))?.map_err(HashError::Failed)
    }

    /// Hashes `password` with the current parameters and a fresh salt.
    pub async fn hash(&self, password: String) -> Result<String, HashError> {
        let argon2 = self.argon2();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            hash_phc(&argon2, password.as_bytes(), salt.as_salt())
        })
        .await
    }

    /// True when `password` matches `phc`; with `None` (no such account) it checks against the
    /// decoy and is always false. The parameters stored in `phc` are used, so hashes made with
    /// older settings still verify.
    pub async fn verify(&self, password: String, phc: Option<String>) -> Result<bool, HashError> {
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => {
                let decoy = self.decoy.get_or_try_init(|| self.hash(rand::random::<u64>().to_string())).await?;
                (decoy.clone(), false)
            }
        };
        self.run(move || Ok(verify_phc(password.as_bytes(), &phc)? && real)).await
    }
}

thread_local! {
    /// argon2's memory, kept by each hashing thread from one hash to the next.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// argon2 of `password` and `salt` into `out`, in this thread's kept memory.
fn argon2_into(argon2: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> argon2::Result<()> {
    MEMORY.with_borrow_mut(|memory| {
        let blocks = argon2.params().block_count();
        if memory.len() != blocks {
            // Other parameters (a hash from older settings): the buffer takes their size.
            *memory = vec![Block::default(); blocks];
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut memory[..])
    })
}

/// The PHC string of `password` under `argon2` and `salt`.
fn hash_phc(argon2: &Argon2<'_>, password: &[u8], salt: Salt<'_>) -> anyhow::Result<String> {
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let length = argon2.params().output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let output = Output::init_with(length, |out| {
        argon2_into(argon2, password, salt_bytes, out).map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(salt),
        hash: Some(output),
    };
    Ok(phc.to_string())
}

/// Whether `password` matches the PHC string `phc`, with the parameters it names.
fn verify_phc(password: &[u8], phc: &str) -> anyhow::Result<bool> {
    let unreadable = |e: &dyn std::fmt::Display| anyhow::anyhow!("stored hash unreadable: {e}");
    let parsed = PasswordHash::new(phc).map_err(|e| unreadable(&e))?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(|e| unreadable(&e))?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| unreadable(&e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(|e| unreadable(&e))?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else { return Ok(false) };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(|e| unreadable(&e))?;
    let argon2 = Argon2::new(algorithm, version, params);
    let computed = Output::init_with(expected.len(), |out| {
        argon2_into(&argon2, password, salt_bytes, out).map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(|e| anyhow::anyhow!("verifying a password: {e}"))?;
    // `Output`'s equality is constant-time.
    Ok(computed == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beyond_the_slots_and_the_queue_a_hash_is_refused_at_once() {
        let hasher = PasswordHasher::new(8 * 1024, 3, 1, 2).unwrap();
        let tasks: Vec<_> = (0..12)
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash("correct horse".into()).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => {}
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(busy >= 1, "12 at once through 1 slot and a queue of 2: some must be refused");
        assert_eq!(hasher.in_line.load(Ordering::Acquire), 0, "every place in line was given back");
        // Once the line is empty, hashing works again.
        let phc = hasher.hash("correct horse".into()).await.unwrap();
        assert!(hasher.verify("correct horse".into(), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify("wrong".into(), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() {
        let hasher = PasswordHasher::new(1024, 2, 1, 4).unwrap();
        // Ours verify with the argon2 crate's own verifier ...
        let ours = hasher.hash("correct horse".into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(argon2::PasswordVerifier::verify_password(&Argon2::default(), b"correct horse", &parsed).is_ok());
        // ... and its hashes, made with other parameters, verify here.
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(2048, 1, 1, None).unwrap()),
            b"correct horse",
            &SaltString::generate(&mut OsRng),
        )
        .unwrap()
        .to_string();
        assert!(hasher.verify("correct horse".into(), Some(theirs.clone())).await.unwrap());
        assert!(!hasher.verify("correct hors".into(), Some(theirs)).await.unwrap());
        assert!(hasher.verify("x".into(), Some("not a hash".into())).await.is_err());
    }

    #[tokio::test]
    async fn an_address_without_an_account_is_checked_against_the_decoy_and_never_matches() {
        let hasher = PasswordHasher::new(1024, 1, 2, 8).unwrap();
        assert!(!hasher.verify(String::new(), None).await.unwrap());
        assert!(!hasher.verify("correct horse".into(), None).await.unwrap());
    }
}
