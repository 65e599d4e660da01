//! Rates that recover (GCRA), as the sign-in throttles (`auth::throttle`)
//! and the WebSocket message limits use them.

use std::time::Duration;

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
}
