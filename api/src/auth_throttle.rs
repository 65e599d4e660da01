//! Sign-in rates, kept in PostgreSQL so that every replica behind a balancer
//! counts the same attempts: n replicas never give a guesser n times the
//! free tries. Each is a rate that recovers (GCRA: a burst, then one attempt
//! every `period / burst`), not strikes remembered after the last one, so an
//! office that signed up twenty people yesterday signs up the twenty-first
//! today.
//!
//! - failed logins per client address (one machine guessing many accounts);
//! - failed logins per account, from addresses that account has never
//!   signed in from (many machines guessing one account): its owner, from
//!   an address it signed in or registered from, is never held back by
//!   them (the idea of OWASP's device cookies, with the address as the
//!   device);
//! - registrations per client address, each counted, whatever its email
//!   (a registration for a taken email holds no account back).
//!
//! An attempt a rate refuses is answered `TOO_MANY_REQUESTS` with the wait,
//! without the password being looked at, and counts against nothing. The
//! statements are in `domain/sql/` (`login_gate.sql` says how a login is
//! counted); `domain::users` runs them.

use std::net::IpAddr;
use std::time::Duration;

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

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A rate that recovers: `burst` attempts at once, then one every
/// `period / burst`; a key quiet for a `period` has its whole burst again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub burst: u32,
    pub period: Duration,
}

impl Rate {
    /// `"10/10m"`: 10 per 10 minutes.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let wrong = || format!("{raw:?} is no rate such as 10/10m (attempts per period)");
        let (burst, period) = raw.split_once('/').ok_or_else(wrong)?;
        let burst: u32 = burst.trim().parse().map_err(|_| wrong())?;
        let period = humantime::parse_duration(period.trim()).map_err(|_| wrong())?;
        if burst == 0 || period.is_zero() || period < Duration::from_millis(u64::from(burst)) {
            return Err(wrong());
        }
        Ok(Self { burst, period })
    }

    /// The time one attempt takes up.
    pub fn step(self) -> Duration {
        self.period / self.burst
    }

    /// How far ahead of now a key's theoretical arrival time may stand for
    /// an attempt to go ahead: the burst less the one attempt.
    pub fn tolerance(self) -> Duration {
        self.period - self.step()
    }

    /// How far ahead a failure may push it: waits never pass one period,
    /// however many concurrent guesses got through together.
    pub fn cap(self) -> Duration {
        self.tolerance() + self.period
    }
}

/// The three rates (`LOGIN_FAILURES_PER_ADDRESS`,
/// `LOGIN_FAILURES_PER_ACCOUNT`, `REGISTRATIONS_PER_ADDRESS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInRates {
    pub login_failures_per_address: Rate,
    pub login_failures_per_account: Rate,
    pub registrations_per_address: Rate,
}

/// The keys of `sign_in_throttles`.
pub(crate) mod keys {
    use super::ClientAddr;

    pub fn login_address(client: ClientAddr) -> String {
        format!("login address {client}")
    }

    /// Any spelling of the email is the one account (unknown emails too,
    /// so guessing at them costs the same).
    pub fn login_account(email: &str) -> String {
        format!("login account {}", email.trim().to_lowercase())
    }

    pub fn registration_address(client: ClientAddr) -> String {
        format!("registration address {client}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_is_a_burst_then_one_attempt_per_step() {
        let rate = Rate::parse("10/10m").unwrap();
        assert_eq!(
            rate,
            Rate {
                burst: 10,
                period: Duration::from_secs(600)
            }
        );
        assert_eq!(rate.step(), Duration::from_secs(60));
        assert_eq!(rate.tolerance(), Duration::from_secs(540));
        assert_eq!(rate.cap(), Duration::from_secs(1140));
        assert_eq!(
            Rate::parse(" 20 / 1h ").unwrap().step(),
            Duration::from_secs(180)
        );
        for wrong in ["10", "0/1m", "10/0s", "x/1m", "10/soon", "1000/1ms"] {
            assert!(Rate::parse(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let one: ClientAddr = "2001:db8:1:2::1".parse::<IpAddr>().unwrap().into();
        let same: ClientAddr = "2001:db8:1:2:ffff::9".parse::<IpAddr>().unwrap().into();
        let other: ClientAddr = "2001:db8:1:3::1".parse::<IpAddr>().unwrap().into();
        assert_eq!(one, same);
        assert_ne!(one, other);
        assert_eq!(keys::login_address(one), "login address 2001:db8:1:2::");
        let mapped: ClientAddr = "::ffff:127.0.0.2".parse::<IpAddr>().unwrap().into();
        assert_eq!(mapped, "127.0.0.2".parse::<IpAddr>().unwrap().into());
    }

    #[test]
    fn an_account_is_its_email_however_spelled() {
        assert_eq!(
            keys::login_account(" Ann@Example.COM "),
            keys::login_account("ann@example.com")
        );
    }
}
