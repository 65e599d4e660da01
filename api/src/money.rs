//! Money: integer cents inside, a two-decimal `Decimal` string in GraphQL.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// An amount in minor units (cents). Never a float.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cents(pub i64);

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
}
