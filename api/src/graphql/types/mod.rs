//! GraphQL output types: thin views over entity models and domain values.

mod cart;
mod order;
mod product;
mod user;

pub use cart::{Cart, CartLine};
pub use order::{AnalyticsStatus, Order, OrderLine, OrderStatus};
pub use product::{Product, ProductVariant};
pub use user::{AuthPayload, Role, User};
