//! Money: integer cents inside, a two-decimal `Decimal` string in GraphQL.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// An amount in minor units (cents). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(pub i64);

/// The highest unit price, 1000000.00: products, variants and order lines
/// alike (the database checks the same bound, `*_price_cents_max`). With at
/// most 99 units a line and 100 lines an order, an order's total stays below
/// 10^12 cents, and the figures' bigints cannot overflow in any history (see
/// `jobs/sql/apply_product_figures.sql`).
pub const MAX_PRICE: Cents = Cents(100_000_000);

impl Cents {
    /// `self × n`, or `None` past `i64`.
    pub fn checked_mul(self, n: i64) -> Option<Self> {
        self.0.checked_mul(n).map(Self)
    }

    /// `self + other`, or `None` past `i64`.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// The sum of `amounts`, or `None` past `i64`.
    pub fn checked_sum(amounts: impl IntoIterator<Item = Self>) -> Option<Self> {
        amounts
            .into_iter()
            .try_fold(Self(0), |sum, amount| sum.checked_add(amount))
    }
}

impl std::fmt::Display for Cents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl std::str::FromStr for Cents {
    type Err = String;

    /// Accepts "12", "12.5" and "12.50"; refuses more than two decimals,
    /// signs, exponents and anything that would overflow.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("{s:?} is not an amount like \"12.50\"");
        let (units, fraction) = s.split_once('.').unwrap_or((s, ""));
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        if !digits(units) || (s.contains('.') && !digits(fraction)) || fraction.len() > 2 {
            return Err(err());
        }
        let units: i64 = units.parse().map_err(|_| err())?;
        let fraction: i64 = format!("{fraction:0<2}").parse().map_err(|_| err())?;
        units
            .checked_mul(100)
            .and_then(|c| c.checked_add(fraction))
            .map(Cents)
            .ok_or_else(err)
    }
}

/// A decimal amount serialised as a string with two decimals, e.g. "12.50".
#[Scalar(name = "Decimal")]
impl ScalarType for Cents {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => s.parse().map_err(InputValueError::custom),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_two_decimals() {
        assert_eq!(Cents(1250).to_string(), "12.50");
        assert_eq!(Cents(5).to_string(), "0.05");
        assert_eq!(Cents(0).to_string(), "0.00");
        assert_eq!(Cents(-199).to_string(), "-1.99");
    }

    #[test]
    fn parses_amounts() {
        assert_eq!("12.50".parse(), Ok(Cents(1250)));
        assert_eq!("12.5".parse(), Ok(Cents(1250)));
        assert_eq!("12".parse(), Ok(Cents(1200)));
        assert_eq!("0.07".parse(), Ok(Cents(7)));
        for bad in [
            "",
            "-1.00",
            "1.234",
            "1e3",
            ".5",
            "5.",
            "abc",
            "99999999999999999999",
        ] {
            assert!(bad.parse::<Cents>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn the_largest_amounts_format_exactly() {
        // what `totalRevenue` shows of the largest figure a bigint holds
        assert_eq!(Cents(i64::MAX).to_string(), "92233720368547758.07");
        assert_eq!("92233720368547758.07".parse(), Ok(Cents(i64::MAX)));
        assert_eq!(MAX_PRICE.to_string(), "1000000.00");
    }

    #[test]
    fn the_parser_takes_amounts_past_the_price_bound() {
        // the bound is `Price`'s to enforce, with its own message
        assert_eq!("1000000.00".parse(), Ok(MAX_PRICE));
        assert_eq!("1000000.01".parse(), Ok(Cents(100_000_001)));
    }

    #[test]
    fn checked_arithmetic_stops_at_i64() {
        assert_eq!(Cents(250).checked_mul(3), Some(Cents(750)));
        assert_eq!(Cents(i64::MAX).checked_mul(2), None);
        assert_eq!(Cents(i64::MAX).checked_add(Cents(1)), None);
        assert_eq!(
            Cents::checked_sum([Cents(1), Cents(2), Cents(3)]),
            Some(Cents(6))
        );
        assert_eq!(Cents::checked_sum([Cents(i64::MAX), Cents(1)]), None);
        assert_eq!(Cents::checked_sum([]), Some(Cents(0)));
        // the largest order within the bounds: 100 lines of 99 at the maximum
        let line = MAX_PRICE.checked_mul(99).unwrap();
        assert_eq!(
            Cents::checked_sum(std::iter::repeat_n(line, 100)),
            Some(Cents(990_000_000_000))
        );
    }
}
