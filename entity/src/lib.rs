//! SeaORM models of Tally's tables: data only, no logic, no GraphQL.
//! The schema itself (constraints, indexes) lives in the `migration` crate.

pub mod cart_lines;
pub mod customer_category_stats;
pub mod customer_product_stats;
pub mod order_lines;
pub mod orders;
pub mod product_variants;
pub mod products;
pub mod users;
