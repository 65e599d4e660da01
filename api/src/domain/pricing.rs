//! Prices come from the database at the moment of ordering, never from
//! clients. Which lines can be ordered is decided once, in SQL
//! (`sql/priced_lines.sql`); this module words the reasons.

use std::sync::LazyLock;

use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement};

use super::Price;
use crate::error::{ApiError, ApiResult};
use crate::money::{Cents, MAX_PRICE};

/// `sql/priced_lines.sql`, the highest price filled in: a select over the
/// caller's CTE `requested`.
pub(super) fn priced_lines_sql() -> String {
    include_str!("sql/priced_lines.sql").replace("{max_price_cents}", &MAX_PRICE.0.to_string())
}

static PRICE_LINES_SQL: LazyLock<String> = LazyLock::new(|| {
    include_str!("sql/price_lines.sql").replace("{priced_lines}", &priced_lines_sql())
});

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

/// A line of `priced_lines.sql`.
#[derive(Debug, FromQueryResult)]
pub(super) struct PriceRow {
    requested_product_id: i64,
    requested_variant_id: Option<i64>,
    product_id: Option<i64>,
    product_name: Option<String>,
    category: Option<String>,
    variant_id: Option<i64>,
    variant_name: Option<String>,
    unit_price_cents: Option<i64>,
    problem: Option<String>,
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
        PRICE_LINES_SQL.as_str(),
        [requested.into()],
    ))
    .all(db)
    .await?;
    rows.into_iter().map(PriceRow::check).collect()
}

impl PriceRow {
    /// The line priced, or the error its problem is.
    pub(super) fn check(self) -> ApiResult<PricedItem> {
        let product_id = self.product_id.unwrap_or(self.requested_product_id);
        let product_name = self.product_name.clone().unwrap_or_default();
        let variant = self.requested_variant_id.unwrap_or_default();
        match self.problem.as_deref() {
            None => {}
            Some("no_product") => {
                return Err(ApiError::not_found(format!(
                    "product {} does not exist",
                    self.requested_product_id
                )));
            }
            Some("no_variant") => {
                return Err(ApiError::not_found(format!(
                    "variant {variant} does not exist"
                )));
            }
            Some("foreign_variant") => {
                return Err(ApiError::bad_input(format!(
                    "variant {variant} is not a variant of product {product_id}"
                )));
            }
            Some("unavailable") => {
                return Err(ApiError::bad_input(format!(
                    "product {product_id} ({product_name}) is not available"
                )));
            }
            Some("price_unbounded") => {
                let priced = match (&self.variant_id, &self.variant_name) {
                    (Some(id), Some(name)) => format!("variant {id} ({name}) of product"),
                    _ => "product".to_owned(),
                };
                return Err(ApiError::bad_input(format!(
                    "{priced} {product_id} ({product_name}) is priced {}, outside 0.00 to \
                     {MAX_PRICE}: an admin must correct its price",
                    Cents(self.unit_price_cents.unwrap_or_default())
                )));
            }
            Some(other) => {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "priced_lines.sql gave an unknown problem {other:?}"
                )));
            }
        }
        let priced = (
            self.product_id,
            self.product_name,
            self.category,
            self.unit_price_cents.map(Cents).and_then(Price::new),
        );
        let (Some(product_id), Some(product_name), Some(category), Some(unit_price)) = priced
        else {
            return Err(ApiError::internal(anyhow::anyhow!(
                "priced_lines.sql passed a line of product {product_id} without its price"
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
