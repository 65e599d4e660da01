//! GraphQL output types: thin views over entity models and domain values.

mod cart;
mod job;
mod order;
mod product;
mod sales;
mod user;

pub use cart::{Cart, CartLine};
pub use job::{Job, Rebuild};
pub use order::{AnalyticsStatus, Order, OrderLine, OrderStatus, analytics_status};
pub use product::{Product, ProductVariant};
pub(crate) use sales::span as sales_span;
pub use sales::{SalesGrain, SalesPeriod, SalesReport, SalesWindow};
pub use user::{AuthPayload, Role, User};
