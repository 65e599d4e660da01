//! Customers' preference figures, read from the totals the post-order job
//! keeps: for many customers in one statement each, so a page of orders with
//! their customers' preferences costs two reads, not two per order; and one
//! customer's with their account, in one statement, for `me`.

use std::collections::HashMap;

use entity::{products, users};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};

use crate::auth::Verified;

/// A customer's account and preferences, as `me` shows them.
pub struct Profile {
    pub user: users::Model,
    pub preferences: Preferences,
}

/// A customer's preferences, with the products themselves.
#[derive(Clone, Debug, PartialEq)]
pub struct Preferences {
    /// The top 5 products, best first.
    pub most_ordered: Vec<products::Model>,
    /// The top 3 categories, best first.
    pub favorite_categories: Vec<String>,
}

/// The account of `token` with its preferences, in one statement that
/// checks the token too: None when the account is gone or is no longer at
/// the token's version.
pub async fn profile<C: ConnectionTrait>(
    db: &C,
    token: &Verified,
) -> Result<Option<Profile>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/profile.sql"),
            [token.viewer.user_id.into(), token.version.into()],
        ))
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut most_ordered = Vec::with_capacity(rows.len());
    for row in &rows {
        // a customer without products has one row, without a product
        if row.try_get::<Option<i64>>("", "product_id")?.is_some() {
            most_ordered.push(products::Model::from_query_result(row, "product_")?);
        }
    }
    Ok(Some(Profile {
        user: users::Model::from_query_result(first, "")?,
        preferences: Preferences {
            most_ordered,
            favorite_categories: first.try_get("", "favorite_categories")?,
        },
    }))
}

/// Each customer's top 5 product ids (see the SQL for the tie rules); a
/// customer with no orders counted has none.
pub async fn most_ordered_product_ids<C: ConnectionTrait>(
    db: &C,
    user_ids: &[i64],
) -> Result<HashMap<i64, Vec<i64>>, DbErr> {
    ranked(
        db,
        include_str!("sql/most_ordered_products.sql"),
        user_ids,
        "product_id",
    )
    .await
}

/// Each customer's top 3 categories (see the SQL for the tie rules).
pub async fn favorite_categories<C: ConnectionTrait>(
    db: &C,
    user_ids: &[i64],
) -> Result<HashMap<i64, Vec<String>>, DbErr> {
    ranked(
        db,
        include_str!("sql/favorite_categories.sql"),
        user_ids,
        "category",
    )
    .await
}

/// `sql`'s rows (`user_id`, `column`), best first per customer, grouped by
/// customer; every asked customer is in the map.
async fn ranked<C: ConnectionTrait, T: sea_orm::TryGetable>(
    db: &C,
    sql: &str,
    user_ids: &[i64],
    column: &str,
) -> Result<HashMap<i64, Vec<T>>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [user_ids.to_vec().into()],
        ))
        .await?;
    let mut by_user: HashMap<i64, Vec<T>> = user_ids.iter().map(|id| (*id, Vec::new())).collect();
    for row in rows {
        let user_id: i64 = row.try_get("", "user_id")?;
        by_user
            .entry(user_id)
            .or_default()
            .push(row.try_get("", column)?);
    }
    Ok(by_user)
}
