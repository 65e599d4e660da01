//! The schema's mutations, one object per area, merged.

mod cart;
mod catalog;
mod jobs;
mod orders;
mod users;

#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(
    users::UserMutation,
    catalog::CatalogMutation,
    cart::CartMutation,
    orders::OrderMutation,
    jobs::JobMutation,
);
