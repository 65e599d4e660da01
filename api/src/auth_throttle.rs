//! Throttling of sign-in attempts, after Saleor's login throttling: a few
//! failures are free, then every further attempt waits 1 s, 2 s, 4 s … (at
//! most `LOGIN_MAX_DELAY`) after the last failure, and is refused without
//! the password being looked at (`TOO_MANY_REQUESTS`, with the wait).
//! Failures count per client address (one machine guessing many accounts)
//! and per account (many machines guessing one); a successful login clears
//! its account's count, not its address's. Registrations count per address,
//! and a registration for a taken email counts for that account, so the
//! form cannot be used to enumerate accounts quickly either.
//!
//! In memory, per process: a deployment of several API processes behind a
//! balancer multiplies the free attempts by their number, and no more.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::warn;

use crate::config::AuthLimits;
use crate::error::{ApiError, ApiResult};

/// Addresses or accounts remembered at most, per kind: a bound on memory
/// whatever the number of addresses or emails an attacker tries.
const MAX_REMEMBERED: usize = 100_000;

/// A quiet address or account is forgotten after this long.
const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Where an attempt comes from, as far as limits go: an IPv4 address, or an
/// IPv6 /64 (one machine owns a whole /64 as easily as one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(IpAddr);

impl ClientAddr {
    pub fn ip(self) -> IpAddr {
        self.0
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(prefix.into()))
            }
            v4 => Self(v4),
        }
    }
}

pub struct AuthThrottle {
    failed_logins: Strikes<ClientAddr>,
    accounts: Strikes<String>,
    registrations: Strikes<ClientAddr>,
}

impl AuthThrottle {
    pub fn new(limits: &AuthLimits) -> Self {
        Self {
            failed_logins: Strikes::new(limits.free_failures, limits.max_delay),
            accounts: Strikes::new(limits.free_failures, limits.max_delay),
            registrations: Strikes::new(limits.free_registrations, limits.max_delay),
        }
    }

    /// Whether a login from `from` for `email` may check its password now.
    /// If so, the attempt counts as a failure at once (until `logged_in`
    /// says otherwise), so concurrent guesses cannot all pass the check
    /// before any of them has failed.
    pub fn begin_login(&self, from: Option<ClientAddr>, email: &str) -> ApiResult<()> {
        let now = Instant::now();
        if let Some(from) = from {
            let strikes = self.failed_logins.attempt(from, now)?;
            if strikes == self.failed_logins.free {
                warn!(client = %from.0, "repeated failed logins from one address: throttling its sign-ins");
            }
        }
        if self.accounts.attempt(account(email), now)? == self.accounts.free {
            // no email: logs are no place for personal data
            warn!("repeated failed logins for one account: throttling its sign-ins");
        }
        Ok(())
    }

    /// The login begun by `begin_login` succeeded: its strike is taken back
    /// from the address, and the account starts afresh.
    pub fn logged_in(&self, from: Option<ClientAddr>, email: &str) {
        if let Some(from) = from {
            self.failed_logins.take_back(&from);
        }
        self.accounts.forget(&account(email));
    }

    /// The login begun by `begin_login` could not check the password (the
    /// database was unavailable, say): it counts for nobody.
    pub fn login_abandoned(&self, from: Option<ClientAddr>, email: &str) {
        if let Some(from) = from {
            self.failed_logins.take_back(&from);
        }
        self.accounts.take_back(&account(email));
    }

    /// Whether a registration from `from` for `email` may go ahead now; if
    /// so, it counts against the address.
    pub fn begin_registration(&self, from: Option<ClientAddr>, email: &str) -> ApiResult<()> {
        let now = Instant::now();
        if let Some(retry_after) = self.accounts.wait(&account(email), now) {
            return Err(ApiError::TooManyRequests { retry_after });
        }
        if let Some(from) = from
            && self.registrations.attempt(from, now)? == self.registrations.free
        {
            warn!(client = %from.0, "many registrations from one address: throttling them");
        }
        Ok(())
    }

    /// A registration for an email that has an account already.
    pub fn email_taken(&self, email: &str) {
        self.accounts.strike(account(email), Instant::now());
    }
}

/// The account an email names, however it is spelled.
fn account(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Strikes against keys: after `free` of them, each further attempt waits
/// a doubling delay after the last strike.
struct Strikes<K> {
    free: u32,
    max_delay: Duration,
    records: Mutex<HashMap<K, Record>>,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    strikes: u32,
    last: Instant,
}

impl<K: Eq + Hash + Clone> Strikes<K> {
    fn new(free: u32, max_delay: Duration) -> Self {
        Self {
            free,
            max_delay,
            records: Mutex::default(),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, HashMap<K, Record>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `key` must still wait for its next attempt, if at all.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        self.wait_of(self.records().get(key)?, now)
    }

    fn wait_of(&self, record: &Record, now: Instant) -> Option<Duration> {
        let until = record.last + self.delay_after(record.strikes)?;
        (until > now).then(|| until - now)
    }

    fn delay_after(&self, strikes: u32) -> Option<Duration> {
        let over = strikes.checked_sub(self.free)?;
        let seconds = 1u64 << over.min(40);
        Some(Duration::from_secs(seconds).min(self.max_delay))
    }

    /// Counts a strike; returns how many `key` has now.
    fn strike(&self, key: K, now: Instant) -> u32 {
        let mut records = self.records();
        self.strike_locked(&mut records, key, now)
    }

    fn strike_locked(&self, records: &mut HashMap<K, Record>, key: K, now: Instant) -> u32 {
        if records.len() >= MAX_REMEMBERED && !records.contains_key(&key) {
            records.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if records.len() >= MAX_REMEMBERED {
                // the quietest half goes: a flood of new keys cannot grow this
                let mut lasts: Vec<Instant> = records.values().map(|r| r.last).collect();
                lasts.sort_unstable();
                let median = lasts[lasts.len() / 2];
                records.retain(|_, r| r.last > median);
            }
        }
        let record = records.entry(key).or_insert(Record {
            strikes: 0,
            last: now,
        });
        if now.duration_since(record.last) >= FORGET_AFTER {
            record.strikes = 0;
        }
        record.strikes = record.strikes.saturating_add(1);
        record.last = now;
        record.strikes
    }

    /// A strike for `key`, unless it must still wait: then how long.
    fn attempt(&self, key: K, now: Instant) -> ApiResult<u32> {
        // one lock for the check and the strike: concurrent attempts see
        // each other's strikes
        let mut records = self.records();
        if let Some(retry_after) = records.get(&key).and_then(|r| self.wait_of(r, now)) {
            return Err(ApiError::TooManyRequests { retry_after });
        }
        Ok(self.strike_locked(&mut records, key, now))
    }

    fn take_back(&self, key: &K) {
        if let Some(record) = self.records().get_mut(key) {
            record.strikes = record.strikes.saturating_sub(1);
        }
    }

    fn forget(&self, key: &K) {
        self.records().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> AuthThrottle {
        AuthThrottle::new(&AuthLimits {
            free_failures: 3,
            free_registrations: 2,
            max_delay: Duration::from_secs(60),
        })
    }

    fn addr(ip: &str) -> Option<ClientAddr> {
        Some(ip.parse::<IpAddr>().unwrap().into())
    }

    fn retry_after(result: ApiResult<()>) -> Option<u64> {
        match result {
            Err(ApiError::TooManyRequests { retry_after }) => Some(retry_after.as_secs()),
            Err(other) => panic!("{}", other.message()),
            Ok(()) => None,
        }
    }

    #[test]
    fn failures_past_the_free_ones_wait_a_doubling_delay_up_to_the_maximum() {
        let strikes = Strikes::<u8>::new(3, Duration::from_secs(60));
        let delays: Vec<_> = (0..10).map(|n| strikes.delay_after(n)).collect();
        let s = |n| Some(Duration::from_secs(n));
        assert_eq!(
            delays,
            [
                None,
                None,
                None,
                s(1),
                s(2),
                s(4),
                s(8),
                s(16),
                s(32),
                s(60)
            ]
        );
        assert_eq!(strikes.delay_after(u32::MAX), s(60));
    }

    #[test]
    fn an_address_guessing_is_refused_while_others_and_the_account_owner_are_not() {
        let throttle = throttle();
        let attacker = addr("127.0.0.2");
        for n in 0..3 {
            assert_eq!(
                retry_after(throttle.begin_login(attacker, &format!("u{n}@x.io"))),
                None
            );
        }
        // the fourth guess, for any account, waits about a second
        let wait = retry_after(throttle.begin_login(attacker, "other@x.io"));
        assert!(wait.is_some_and(|seconds| seconds <= 1), "{wait:?}");
        // another machine signs in to those accounts as usual
        assert_eq!(
            retry_after(throttle.begin_login(addr("127.0.0.1"), "u0@x.io")),
            None
        );
    }

    #[test]
    fn a_successful_login_takes_its_strike_back() {
        let throttle = throttle();
        let office = addr("10.1.1.1");
        for n in 0..10 {
            let email = format!("u{n}@x.io");
            throttle.begin_login(office, &email).unwrap();
            throttle.logged_in(office, &email);
        }
        assert_eq!(retry_after(throttle.begin_login(office, "u0@x.io")), None);
    }

    #[test]
    fn guesses_at_one_account_from_many_addresses_lock_the_account_until_it_signs_in() {
        let throttle = throttle();
        for n in 0..3 {
            let from = addr(&format!("10.0.0.{n}"));
            throttle.begin_login(from, "Ann@Example.com ").unwrap();
        }
        assert!(
            throttle
                .begin_login(addr("10.0.1.1"), "ann@example.com")
                .is_err()
        );
        throttle.logged_in(addr("10.0.1.1"), "ann@example.com");
        assert!(
            throttle
                .begin_login(addr("10.0.1.1"), "ann@example.com")
                .is_ok()
        );
    }

    #[test]
    fn registrations_past_the_free_ones_wait_and_taken_emails_count_for_the_account() {
        let throttle = throttle();
        let from = addr("127.0.0.3");
        assert!(throttle.begin_registration(from, "a@x.io").is_ok());
        assert!(throttle.begin_registration(from, "b@x.io").is_ok());
        assert!(throttle.begin_registration(from, "c@x.io").is_err());
        assert!(
            throttle
                .begin_registration(addr("127.0.0.4"), "c@x.io")
                .is_ok()
        );
        for _ in 0..3 {
            throttle.email_taken("taken@x.io");
        }
        assert!(
            throttle
                .begin_registration(addr("127.0.0.5"), "taken@x.io")
                .is_err()
        );
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let one: ClientAddr = "2001:db8:1:2::1".parse::<IpAddr>().unwrap().into();
        let same: ClientAddr = "2001:db8:1:2:ffff::9".parse::<IpAddr>().unwrap().into();
        let other: ClientAddr = "2001:db8:1:3::1".parse::<IpAddr>().unwrap().into();
        assert_eq!(one, same);
        assert_ne!(one, other);
        let mapped: ClientAddr = "::ffff:127.0.0.2".parse::<IpAddr>().unwrap().into();
        assert_eq!(mapped, "127.0.0.2".parse::<IpAddr>().unwrap().into());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_keys() {
        let strikes = Strikes::<u32>::new(3, Duration::from_secs(60));
        let start = Instant::now();
        for n in 0..(MAX_REMEMBERED as u32 + 10) {
            strikes.strike(n, start + Duration::from_millis(u64::from(n)));
        }
        assert!(strikes.records().len() <= MAX_REMEMBERED);
        assert!(strikes.records().contains_key(&(MAX_REMEMBERED as u32 + 9)));
    }
}
