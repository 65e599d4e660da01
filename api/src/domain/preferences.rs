//! A customer's preference figures, read from the totals the post-order job keeps.

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::ApiResult;

/// Ids of the customer's top 5 products (see the SQL for the tie rules).
pub async fn most_ordered_product_ids<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
) -> ApiResult<Vec<i64>> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/most_ordered_products.sql"),
            [user_id.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("", "product_id"))
        .collect::<Result<_, _>>()?)
}

/// The customer's top 3 categories (see the SQL for the tie rules).
pub async fn favorite_categories<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
) -> ApiResult<Vec<String>> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/favorite_categories.sql"),
            [user_id.into()],
        ))
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get("", "category"))
        .collect::<Result<_, _>>()?)
}
