//! Authentication: basic auth from the web config (bcrypt hashes) and the intake's bearer
//! token.
//!
//! bcrypt is slow by design (cost 10 is ~70 ms of CPU), so, like the exporter-toolkit, a
//! verified (user, hash, password) is cached and a scrape costs a hash lookup, not a bcrypt. A
//! wrong password is cached too, so repeating it is free. What remains, many *different* wrong
//! passwords, is bounded by [`BcryptGate`]: one bcrypt at a time for the whole process, a short
//! queue, and a per-client-address budget of uncached checks; beyond them the answer is `429`
//! at once. An unknown user costs a bcrypt against a fixed hash like a known one, so response
//! times do not tell which users exist. Cache keys are SHA-256 digests: no password is kept.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderMap};
use base64::Engine;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use super::web_config::WebConfigError;

/// Refused credentials remembered at most; past it the refusals are forgotten (never the
/// verified ones), so junk cannot grow memory.
const MAX_REFUSED_CACHED: usize = 4096;
/// Uncached bcrypt checks one client address may start: a burst, then one per second.
const PER_ADDRESS_BURST: u32 = 10;
/// Requests that may wait for the bcrypt slot; more are refused with `429` at once.
const MAX_WAITING: usize = 16;
/// Longest wait for the bcrypt slot.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// `basic_auth_users` of one loaded web config, with its verification cache (a reload starts a
/// new one, so a removed user or changed hash is never served from the cache).
pub struct BasicAuth {
    users: BTreeMap<String, String>,
    /// A hash verified at load, used for unknown users so they cost the same as known ones.
    decoy: String,
    verified: Mutex<HashSet<[u8; 32]>>,
    refused: Mutex<HashSet<[u8; 32]>>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The outcome of a credential check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Valid,
    Invalid,
    /// Too many uncached checks right now: answer `429`.
    Throttled,
}

impl BasicAuth {
    /// Validates every hash (a typo must fail the load, not every later login).
    pub fn new(users: BTreeMap<String, String>) -> Result<BasicAuth, WebConfigError> {
        for (user, hash) in &users {
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') {
                return Err(WebConfigError::invalid(
                    "basic_auth_users",
                    "user names must be non-empty and without ':'",
                ));
            }
            // The error never quotes the value: a plaintext password pasted by mistake.
            hash.parse::<bcrypt::HashParts>().map_err(|_| {
                WebConfigError::invalid(&key, "is not a bcrypt hash ($2a$, $2b$ or $2y$)")
            })?;
        }
        // The decoy costs what a real user's hash costs.
        let cost = users
            .values()
            .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
            .map(|p| p.get_cost())
            .max()
            .unwrap_or(bcrypt::DEFAULT_COST);
        let decoy = bcrypt::hash_with_salt("decoy", cost, [7u8; 16])
            .map(|h| h.to_string())
            .unwrap_or_default();
        Ok(BasicAuth {
            users,
            decoy,
            verified: Mutex::default(),
            refused: Mutex::default(),
        })
    }

    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let hash = self.users.get(user).map_or("", String::as_str);
        let mut d = Sha256::new();
        for part in [user, hash, password] {
            d.update((part.len() as u64).to_le_bytes());
            d.update(part.as_bytes());
        }
        d.finalize().into()
    }

    /// The cached verdict for these credentials, if any.
    pub fn cached(&self, user: &str, password: &str) -> Option<bool> {
        let key = self.key(user, password);
        if lock(&self.verified).contains(&key) {
            return Some(true);
        }
        lock(&self.refused).contains(&key).then_some(false)
    }

    /// bcrypt-verifies and caches (blocking: call from a blocking thread).
    pub fn verify_uncached(&self, user: &str, password: &str) -> bool {
        let key = self.key(user, password);
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.decoy.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            lock(&self.verified).insert(key);
        } else {
            let mut refused = lock(&self.refused);
            if refused.len() >= MAX_REFUSED_CACHED {
                refused.clear();
            }
            refused.insert(key);
        }
        ok
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bounds the CPU that uncached bcrypt checks can take (see the module docs). One per process,
/// shared by every web-config generation.
pub struct BcryptGate {
    slot: Semaphore,
    waiting: AtomicUsize,
    per_address: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for BcryptGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BcryptGate").finish_non_exhaustive()
    }
}

impl Default for BcryptGate {
    fn default() -> Self {
        let quota = Quota::per_second(NonZeroU32::MIN)
            .allow_burst(NonZeroU32::new(PER_ADDRESS_BURST).unwrap_or(NonZeroU32::MIN));
        BcryptGate {
            slot: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            per_address: RateLimiter::keyed(quota),
        }
    }
}

impl BcryptGate {
    /// Checks `user`/`password` against `auth`: from the cache when possible, else with one
    /// bcrypt if this client and the process have room for it.
    pub async fn check(
        &self,
        auth: &Arc<BasicAuth>,
        client: IpAddr,
        user: &str,
        password: &str,
    ) -> Check {
        match auth.cached(user, password) {
            Some(true) => return Check::Valid,
            Some(false) => return Check::Invalid,
            None => {}
        }
        if self.per_address.check_key(&client).is_err() {
            return Check::Throttled;
        }
        // Keep the keyed limiter's memory to the addresses seen recently.
        if self.per_address.len() > 10_000 {
            self.per_address.retain_recent();
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Check::Throttled;
        }
        let permit = tokio::time::timeout(MAX_WAIT, self.slot.acquire()).await;
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        let Ok(Ok(_permit)) = permit else {
            return Check::Throttled;
        };
        let (auth, user, password) = (auth.clone(), user.to_owned(), password.to_owned());
        match tokio::task::spawn_blocking(move || auth.verify_uncached(&user, &password)).await {
            Ok(true) => Check::Valid,
            _ => Check::Invalid,
        }
    }
}

/// `Authorization: Basic base64(user:password)`, decoded.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Constant-time check of `Authorization: Bearer <token>` (scheme case-insensitive). An empty
/// expected token matches nothing.
pub fn bearer_matches(expected: &str, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && !expected.is_empty()
        && bool::from(token.trim().as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn bearer_token_check() {
        assert!(!bearer_matches("s3cret", &HeaderMap::new()));
        assert!(bearer_matches("s3cret", &headers("Bearer s3cret")));
        assert!(bearer_matches("s3cret", &headers("bearer  s3cret ")));
        assert!(!bearer_matches("s3cret", &headers("Bearer s3cre")));
        assert!(!bearer_matches("s3cret", &headers("Bearer s3cret2")));
        assert!(!bearer_matches("s3cret", &headers("Basic s3cret")));
        assert!(!bearer_matches("s3cret", &headers("s3cret")));
        assert!(!bearer_matches("", &headers("Bearer ")));
    }

    #[test]
    fn basic_credentials_decode() {
        // "prometheus:pa:ss" — the password may hold ':'.
        let h = headers("Basic cHJvbWV0aGV1czpwYTpzcw==");
        assert_eq!(
            basic_credentials(&h),
            Some(("prometheus".into(), "pa:ss".into()))
        );
        assert_eq!(basic_credentials(&headers("Basic !!!")), None);
        assert_eq!(basic_credentials(&headers("Bearer x")), None);
    }

    fn auth() -> Arc<BasicAuth> {
        let hash = bcrypt::hash("right", 4).unwrap();
        Arc::new(BasicAuth::new(BTreeMap::from([("prom".to_owned(), hash)])).unwrap())
    }

    #[tokio::test]
    async fn verified_and_refused_credentials_are_cached() {
        let (auth, gate) = (auth(), BcryptGate::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(auth.cached("prom", "right"), None);
        assert_eq!(gate.check(&auth, ip, "prom", "right").await, Check::Valid);
        assert_eq!(auth.cached("prom", "right"), Some(true));
        assert_eq!(gate.check(&auth, ip, "prom", "wrong").await, Check::Invalid);
        assert_eq!(auth.cached("prom", "wrong"), Some(false));
        // An unknown user is refused even with a known user's password.
        assert_eq!(
            gate.check(&auth, ip, "other", "right").await,
            Check::Invalid
        );
    }

    #[tokio::test]
    async fn uncached_checks_per_address_are_throttled() {
        let (auth, gate) = (auth(), BcryptGate::default());
        let ip: IpAddr = "192.0.2.2".parse().unwrap();
        let mut throttled = 0;
        for i in 0..PER_ADDRESS_BURST + 5 {
            if gate.check(&auth, ip, "prom", &format!("guess{i}")).await == Check::Throttled {
                throttled += 1;
            }
        }
        assert!(throttled >= 4, "{throttled}");
        // A cached verdict is never throttled, and another address has its own budget.
        assert_eq!(
            gate.check(&auth, ip, "prom", "guess0").await,
            Check::Invalid
        );
        let other: IpAddr = "192.0.2.3".parse().unwrap();
        assert_eq!(
            gate.check(&auth, other, "prom", "right").await,
            Check::Valid
        );
    }
}
