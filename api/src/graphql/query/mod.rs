//! The schema's queries, one object per area, merged.

mod cart;
mod catalog;
mod jobs;
mod orders;
mod sales;
mod users;

#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    users::UserQuery,
    catalog::CatalogQuery,
    cart::CartQuery,
    orders::OrderQuery,
    jobs::JobQuery,
    sales::SalesQuery,
);
