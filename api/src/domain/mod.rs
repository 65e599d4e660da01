//! Tally's rules as plain functions over a database connection. The caller
//! owns any transaction; GraphQL stays out of here.

pub mod cart;
pub mod catalog;
pub mod demo;
pub mod orders;
pub mod preferences;
pub mod pricing;
pub mod users;

use crate::error::{ApiError, ApiResult};

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
