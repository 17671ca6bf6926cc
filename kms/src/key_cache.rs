//! The wrapped forms of the keys the API uses on every call (the API signing keys, the token
//! keys, the KMS signing key of the audit checkpoints), kept in memory for a short time so
//! that a signing call does not read the store.
//!
//! What is cached is what [`Kms::wrapped`] answers: a version that passed the lifecycle checks
//! for one purpose, in its HSM-wrapped form (which opens only inside the HSM). Every act of
//! this KMS that may change a key empties the cache at once ([`KeyCache::invalidate`]); an
//! act of another process on the same store (an officer's `ykt key suspend`, a rotation
//! ceremony) is seen within [`KEY_CACHE_TTL`]. A lookup that began before an invalidation does
//! not fill the cache with what it read.

use crate::error::Result;
use crate::kms::Kms;
use crate::model::Purpose;
use crate::provider::WrappedKey;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a cached key version is used before the store is read again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(1);

/// What a lookup names: the key, the version (`None`: the current one) and the purpose.
type Lookup = (String, Option<u8>, Purpose);

#[derive(Default)]
struct Entries {
    /// Moves at every invalidation, so a lookup that straddles one is not kept.
    generation: u64,
    keys: HashMap<Lookup, (Instant, u8, WrappedKey)>,
}

/// The cache: shared by a KMS and the audit writer it starts.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: Mutex<Entries>,
    /// The KMS signing key's ID, fixed at initialisation.
    pub(crate) signing_key_id: OnceLock<String>,
}

impl KeyCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets every cached key.
    pub(crate) fn invalidate(&self) {
        let mut entries = self.entries();
        entries.generation += 1;
        entries.keys.clear();
    }
}

impl Kms {
    /// [`Kms::wrapped`], answered from memory when the same lookup succeeded less than
    /// [`KEY_CACHE_TTL`] ago and no act of this KMS came since.
    pub(crate) async fn cached_wrapped(
        &self,
        key_id: &str,
        version: Option<u8>,
        purpose: Purpose,
    ) -> Result<(u8, WrappedKey)> {
        let lookup = (key_id.to_owned(), version, purpose);
        let generation = {
            let entries = self.key_cache().entries();
            if let Some((at, version, key)) = entries.keys.get(&lookup)
                && at.elapsed() < KEY_CACHE_TTL
            {
                return Ok((*version, key.clone()));
            }
            entries.generation
        };
        let (found_version, key) = self.wrapped(key_id, version, purpose).await?;
        let mut entries = self.key_cache().entries();
        if entries.generation == generation {
            entries
                .keys
                .insert(lookup, (Instant::now(), found_version, key.clone()));
        }
        Ok((found_version, key))
    }
}
