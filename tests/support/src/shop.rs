//! A shop to order from, written straight into a migrated database: dishes
//! in a few categories, customers and an admin, each account with a token
//! signed with a secret the server is given (no passwords: no one signs
//! in). The binary's tests and `tally-bench` order from it.

use entity::users::Role;
use sqlx::PgPool;
use tally::auth::{Tokens, Viewer};
use tally::config::Secret;

/// What [`open`] wrote.
pub struct Shop {
    /// Each dish's id and price in cents, by id.
    pub products: Vec<(i64, i64)>,
    /// Each customer's id and token, by id.
    pub customers: Vec<(i64, String)>,
    /// The admin's id and token.
    pub admin: (i64, String),
}

/// `dishes` dishes over `categories`, `customers` customers and an admin,
/// with tokens signed with `secret`.
pub async fn open(
    pool: &PgPool,
    dishes: i64,
    categories: &[&str],
    customers: i64,
    secret: &str,
) -> Result<Shop, sqlx::Error> {
    sqlx::query(
        "insert into products (name, category, price_cents)
         select 'Dish ' || n, ($2::text[])[1 + n % cardinality($2::text[])],
                300 + (n * 37) % 1500
         from generate_series(1, $1) n",
    )
    .bind(dishes)
    .bind(categories)
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into users (name, email, password_hash, role)
         select 'Customer ' || n, 'customer' || n || '@shop.test', 'not a hash', 'customer'
         from generate_series(1, $1) n",
    )
    .bind(customers)
    .execute(pool)
    .await?;
    sqlx::query(
        "insert into users (name, email, password_hash, role)
         values ('Admin', 'admin@shop.test', 'not a hash', 'admin')",
    )
    .execute(pool)
    .await?;
    let products = sqlx::query_as("select id, price_cents from products order by id")
        .fetch_all(pool)
        .await?;
    let mut accounts = tokens_signed_with(pool, secret).await?;
    // the admin came last
    let admin = accounts.pop().expect("the admin's account");
    Ok(Shop {
        products,
        customers: accounts,
        admin,
    })
}

/// Each account's id and a token for it signed with `secret`, by id.
pub async fn tokens_signed_with(
    pool: &PgPool,
    secret: &str,
) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let users: Vec<(i64, String)> = sqlx::query_as("select id, role::text from users order by id")
        .fetch_all(pool)
        .await?;
    let issuer = Tokens::new(&Secret::new(secret));
    Ok(users
        .into_iter()
        .map(|(user_id, role)| {
            let role = match role.as_str() {
                "admin" => Role::Admin,
                _ => Role::Customer,
            };
            let token = issuer
                .issue(Viewer { user_id, role }, 0)
                .map_err(|e| e.message())
                .expect("a token");
            (user_id, token)
        })
        .collect())
}
