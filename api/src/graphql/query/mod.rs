mod cart;
mod catalog;
mod orders;
mod users;

#[derive(async_graphql::MergedObject, Default)]
pub struct Query(
    users::UserQuery,
    catalog::CatalogQuery,
    cart::CartQuery,
    orders::OrderQuery,
);
