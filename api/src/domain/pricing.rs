//! Prices come from the database at the moment of ordering, never from clients.

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};

use super::Price;
use crate::error::{ApiError, ApiResult};
use crate::money::{Cents, MAX_PRICE};

/// A product (and variant) someone asked for, checked and priced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PricedItem {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub product_name: String,
    pub variant_name: Option<String>,
    pub category: String,
    pub unit_price: Cents,
}

#[derive(Debug, FromQueryResult)]
struct PriceRow {
    requested_product_id: i64,
    requested_variant_id: Option<i64>,
    product_id: Option<i64>,
    product_name: Option<String>,
    category: Option<String>,
    product_price_cents: Option<i64>,
    available: Option<bool>,
    variant_id: Option<i64>,
    variant_product_id: Option<i64>,
    variant_name: Option<String>,
    variant_price_cents: Option<i64>,
}

/// Checks and prices `(product, variant)` pairs in one query, whatever their
/// number. Unknown products or variants are `NOT_FOUND`; a variant of another
/// product, an unavailable product or a price above [`MAX_PRICE`] is
/// `BAD_USER_INPUT`.
pub async fn price_items<C: ConnectionTrait>(
    db: &C,
    items: &[(i64, Option<i64>)],
) -> ApiResult<Vec<PricedItem>> {
    let requested: serde_json::Value = items
        .iter()
        .map(|(product_id, variant_id)| {
            serde_json::json!({ "product_id": product_id, "variant_id": variant_id })
        })
        .collect();
    let rows = PriceRow::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("sql/price_lines.sql"),
        [requested.into()],
    ))
    .all(db)
    .await?;
    rows.into_iter().map(PriceRow::check).collect()
}

impl PriceRow {
    fn check(self) -> ApiResult<PricedItem> {
        let (
            Some(product_id),
            Some(product_name),
            Some(category),
            Some(product_price),
            Some(available),
        ) = (
            self.product_id,
            self.product_name,
            self.category,
            self.product_price_cents,
            self.available,
        )
        else {
            return Err(ApiError::not_found(format!(
                "product {} does not exist",
                self.requested_product_id
            )));
        };
        let unit_price = match self.requested_variant_id {
            None => product_price,
            Some(requested) => match (
                self.variant_id,
                self.variant_product_id,
                self.variant_price_cents,
            ) {
                (Some(_), Some(owner), Some(price)) if owner == product_id => price,
                (Some(_), Some(_), Some(_)) => {
                    return Err(ApiError::bad_input(format!(
                        "variant {requested} is not a variant of product {product_id}"
                    )));
                }
                _ => {
                    return Err(ApiError::not_found(format!(
                        "variant {requested} does not exist"
                    )));
                }
            },
        };
        if !available {
            return Err(ApiError::bad_input(format!(
                "product {product_id} ({product_name}) is not available"
            )));
        }
        // The database checks the bound only on rows written since it was
        // added (NOT VALID): an older row above it is refused here, so no
        // order line or figure is made of it.
        let Some(unit_price) = Price::new(Cents(unit_price)) else {
            let priced = match (&self.variant_id, &self.variant_name) {
                (Some(id), Some(name)) => format!("variant {id} ({name}) of product"),
                _ => "product".to_owned(),
            };
            return Err(ApiError::bad_input(format!(
                "{priced} {product_id} ({product_name}) is priced {}, outside 0.00 to \
                 {MAX_PRICE}: an admin must correct its price",
                Cents(unit_price)
            )));
        };
        Ok(PricedItem {
            product_id,
            variant_id: self.variant_id,
            product_name,
            variant_name: self.variant_name,
            category,
            unit_price: unit_price.get(),
        })
    }
}
