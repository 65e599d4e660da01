//! Settings read from a lookup (the environment, or a test's list): each
//! kind of value read one way, with an error that names its variable. A
//! variable set to blanks counts as unset.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{ConfigError, Rate, Secret};

pub(super) struct Vars<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    pub(super) fn new(lookup: F) -> Self {
        Self { lookup }
    }

    pub(super) fn get(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// The value, or `default` when unset.
    pub(super) fn text(&self, var: &'static str, default: &str) -> String {
        self.get(var).unwrap_or_else(|| default.to_owned())
    }

    /// A number within `range`.
    pub(super) fn number<T>(
        &self,
        var: &'static str,
        default: T,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        match raw.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(invalid(
                var,
                &format!("must be a number from {} to {}", range.start(), range.end()),
            )),
        }
    }

    /// A number of milliseconds within `range`.
    pub(super) fn millis(
        &self,
        var: &'static str,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        Ok(Duration::from_millis(self.number(var, default, range)?))
    }

    /// A duration such as `7days`, `12h` or `30m`.
    pub(super) fn duration(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        humantime::parse_duration(&self.text(var, default))
            .map_err(|_| invalid(var, "must be a duration such as 7days, 12h or 30m"))
    }

    /// A duration longer than 0.
    pub(super) fn timeout(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<Duration, ConfigError> {
        match self.duration(var, default)? {
            d if d.is_zero() => Err(invalid(var, "must be longer than 0")),
            d => Ok(d),
        }
    }

    /// A rate such as `10/10m`.
    pub(super) fn rate(&self, var: &'static str, default: &str) -> Result<Rate, ConfigError> {
        Rate::parse(&self.text(var, default)).map_err(|e| invalid(var, &e))
    }

    /// A socket address such as `127.0.0.1:8080`.
    pub(super) fn address(
        &self,
        var: &'static str,
        default: &str,
    ) -> Result<SocketAddr, ConfigError> {
        self.text(var, default)
            .parse()
            .map_err(|_| invalid(var, &format!("must be an address such as {default}")))
    }

    /// A secret of at least `min_len` bytes, if set.
    pub(super) fn secret(
        &self,
        var: &'static str,
        min_len: usize,
    ) -> Result<Option<Secret>, ConfigError> {
        match self.get(var) {
            Some(s) if s.len() < min_len => Err(invalid(
                var,
                &format!("must be at least {min_len} characters"),
            )),
            secret => Ok(secret.map(Secret)),
        }
    }

    /// Two variables that go together (a name and its password): both, or
    /// neither.
    pub(super) fn pair(
        &self,
        first: &'static str,
        second: &'static str,
    ) -> Result<Option<(String, String)>, ConfigError> {
        match (self.get(first), self.get(second)) {
            (Some(a), Some(b)) => Ok(Some((a, b))),
            (None, None) => Ok(None),
            (Some(_), None) => Err(invalid(second, &format!("is required with {first}"))),
            (None, Some(_)) => Err(invalid(first, &format!("is required with {second}"))),
        }
    }
}

pub(super) fn invalid(var: &'static str, message: &str) -> ConfigError {
    ConfigError {
        var,
        message: message.to_owned(),
    }
}
