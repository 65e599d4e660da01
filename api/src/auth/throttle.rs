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
//! counted); `domain::users` runs them. The rates are settings
//! (`config::SignInRates`).

/// The keys of `sign_in_throttles`.
pub(crate) mod keys {
    use crate::auth::ClientAddr;

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
    use std::net::IpAddr;

    use super::*;
    use crate::auth::ClientAddr;

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
