//! Tally's rules as plain functions over a database connection. The caller
//! owns any transaction; GraphQL stays out of here.

pub mod cart;
pub mod catalog;
pub mod demo;
pub mod orders;
pub mod preferences;
pub mod pricing;
pub mod sales;
pub mod sales_report;
pub mod sign_in;
pub mod users;

use crate::error::{ApiError, ApiResult};
use crate::money::{Cents, MAX_PRICE};

/// A line quantity: 1 to 99.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity(i32);

impl Quantity {
    pub const MAX: i32 = 99;

    pub fn parse(raw: i32) -> ApiResult<Self> {
        if (1..=Self::MAX).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(ApiError::bad_input(format!(
                "quantity must be between 1 and {}, got {raw}",
                Self::MAX
            )))
        }
    }

    pub fn get(self) -> i32 {
        self.0
    }
}

/// A unit price: 0.00 to [`MAX_PRICE`] (1000000.00). Holding one proves the
/// bound, which keeps every order total and figure far inside bigint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price(Cents);

impl Price {
    /// `None` outside 0.00 to [`MAX_PRICE`].
    pub fn new(raw: Cents) -> Option<Self> {
        (Cents(0)..=MAX_PRICE).contains(&raw).then_some(Self(raw))
    }

    pub fn parse(raw: Cents) -> ApiResult<Self> {
        Self::parse_as("price", raw)
    }

    /// As [`Price::parse`], the message naming the price `what`, e.g.
    /// `the price of variant "Large"`.
    pub fn parse_as(what: &str, raw: Cents) -> ApiResult<Self> {
        Self::new(raw).ok_or_else(|| {
            let bound = if raw > MAX_PRICE {
                format!("at most {MAX_PRICE}")
            } else {
                "at least 0.00".to_owned()
            };
            ApiError::bad_input(format!("{what} must be {bound}, got {raw}"))
        })
    }

    pub fn get(self) -> Cents {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_stop_at_the_maximum() {
        assert_eq!(Price::parse(Cents(100_000_000)).unwrap().get(), MAX_PRICE);
        assert_eq!(Price::parse(Cents(0)).unwrap().get(), Cents(0));
        let too_high = Price::parse("1000000.01".parse().unwrap()).unwrap_err();
        assert_eq!(too_high.code(), "BAD_USER_INPUT");
        assert_eq!(
            too_high.message(),
            "price must be at most 1000000.00, got 1000000.01"
        );
        assert_eq!(
            Price::parse(Cents(-1)).unwrap_err().message(),
            "price must be at least 0.00, got -0.01"
        );
        assert!(Price::new(Cents(i64::MAX)).is_none());
    }
}
