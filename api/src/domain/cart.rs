//! A customer's cart: its lines, priced now, and their changes.

use entity::cart_lines;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, Statement,
};

use super::Quantity;
use super::pricing::price_items;
use crate::error::{ApiError, ApiResult, violated_constraint};
use crate::money::Cents;

#[derive(Debug, Clone, FromQueryResult)]
pub struct CartLine {
    pub id: i64,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub quantity: i32,
    /// The current price of the product or its variant.
    pub unit_price_cents: i64,
}

/// Within the bounds a cart cannot reach it; a legacy price above
/// `MAX_PRICE` might, and gets this instead of a wrapped or panicking sum.
fn too_large() -> ApiError {
    ApiError::bad_input("the cart's total is too large")
}

impl CartLine {
    pub fn subtotal(&self) -> ApiResult<Cents> {
        Cents(self.unit_price_cents)
            .checked_mul(i64::from(self.quantity))
            .ok_or_else(too_large)
    }
}

#[derive(Debug, Clone)]
pub struct Cart {
    pub lines: Vec<CartLine>,
}

impl Cart {
    pub fn total(&self) -> ApiResult<Cents> {
        let subtotals = self
            .lines
            .iter()
            .map(CartLine::subtotal)
            .collect::<ApiResult<Vec<_>>>()?;
        Cents::checked_sum(subtotals).ok_or_else(too_large)
    }
}

pub async fn cart<C: ConnectionTrait>(db: &C, user_id: i64) -> ApiResult<Cart> {
    let lines = CartLine::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("sql/cart_lines.sql"),
        [user_id.into()],
    ))
    .all(db)
    .await?;
    Ok(Cart { lines })
}

/// The cart as [`cart`] reads it, its lines locked until the caller's
/// transaction ends: what an order from the cart is made of. A concurrent
/// order from the same cart waits here, then finds the lines gone.
pub async fn lock_cart<C: ConnectionTrait>(db: &C, user_id: i64) -> ApiResult<Cart> {
    let lines = CartLine::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        concat!(include_str!("sql/cart_lines.sql"), "for update of c"),
        [user_id.into()],
    ))
    .all(db)
    .await?;
    Ok(Cart { lines })
}

/// Adds a line, or adds to the quantity of the line with the same product and variant.
pub async fn add_to_cart<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    product_id: i64,
    variant_id: Option<i64>,
    quantity: Quantity,
) -> ApiResult<()> {
    price_items(db, &[(product_id, variant_id)]).await?;
    let line = cart_lines::ActiveModel {
        user_id: Set(user_id),
        product_id: Set(product_id),
        variant_id: Set(variant_id),
        quantity: Set(quantity.get()),
        ..Default::default()
    };
    cart_lines::Entity::insert(line)
        .on_conflict(
            OnConflict::columns([
                cart_lines::Column::UserId,
                cart_lines::Column::ProductId,
                cart_lines::Column::VariantId,
            ])
            .value(
                cart_lines::Column::Quantity,
                Expr::cust("cart_lines.quantity + excluded.quantity"),
            )
            .to_owned(),
        )
        .exec_without_returning(db)
        .await
        .map_err(|e| match violated_constraint(&e) {
            Some("cart_lines_quantity_check") => {
                ApiError::bad_input(format!("a cart line holds at most {} items", Quantity::MAX))
            }
            // the token outlived its account
            Some("cart_lines_user_id_fkey") => ApiError::InvalidToken,
            _ => e.into(),
        })?;
    Ok(())
}

pub async fn update_cart_line<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    line_id: i64,
    quantity: Quantity,
) -> ApiResult<()> {
    let updated = cart_lines::Entity::update_many()
        .col_expr(cart_lines::Column::Quantity, Expr::value(quantity.get()))
        .filter(cart_lines::Column::Id.eq(line_id))
        .filter(cart_lines::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if updated.rows_affected == 0 {
        return Err(ApiError::not_found(format!(
            "cart line {line_id} does not exist"
        )));
    }
    Ok(())
}

pub async fn remove_cart_line<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    line_id: i64,
) -> ApiResult<()> {
    let deleted = cart_lines::Entity::delete_many()
        .filter(cart_lines::Column::Id.eq(line_id))
        .filter(cart_lines::Column::UserId.eq(user_id))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(ApiError::not_found(format!(
            "cart line {line_id} does not exist"
        )));
    }
    Ok(())
}
