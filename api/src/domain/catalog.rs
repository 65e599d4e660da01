//! The catalog's rules: categories, variants, new products and edits.

use entity::{product_variants, products};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::Price;
use crate::error::{ApiError, ApiResult, OnConstraint};
use crate::money::Cents;

/// A category slug such as `pizza` or `soft-drinks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category(String);

impl Category {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        let slug = raw.trim();
        let valid = !slug.is_empty()
            && slug.len() <= 50
            && slug.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            });
        if valid {
            Ok(Self(slug.to_owned()))
        } else {
            Err(ApiError::bad_input(format!(
                "category {raw:?} must be a lowercase slug such as \"pizza\" or \"soft-drinks\""
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn product_name(raw: &str) -> ApiResult<String> {
    let name = raw.trim();
    match name.chars().count() {
        1..=200 => Ok(name.to_owned()),
        _ => Err(ApiError::bad_input("name must have 1 to 200 characters")),
    }
}

fn description(raw: &str) -> ApiResult<String> {
    match raw.chars().count() {
        0..=5000 => Ok(raw.to_owned()),
        _ => Err(ApiError::bad_input(
            "description must have at most 5000 characters",
        )),
    }
}

pub struct VariantSpec {
    pub name: String,
    pub price: Price,
}

impl VariantSpec {
    pub fn parse(name: &str, price: Cents) -> ApiResult<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_input(
                "variant name must have 1 to 100 characters",
            ));
        }
        let price = Price::parse_as(&format!("the price of variant {name:?}"), price)?;
        Ok(Self {
            name: name.to_owned(),
            price,
        })
    }
}

/// A product's variants are told apart by name.
fn unique_names(variants: &[VariantSpec]) -> ApiResult<()> {
    let mut names: Vec<&str> = variants.iter().map(|v| v.name.as_str()).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(ApiError::bad_input(
            "variant names must be unique within a product",
        ));
    }
    Ok(())
}

pub struct NewProduct {
    pub name: String,
    pub description: String,
    pub category: Category,
    pub price: Price,
    pub available: bool,
    pub variants: Vec<VariantSpec>,
}

impl NewProduct {
    pub fn parse(
        name: &str,
        description_text: &str,
        category: &str,
        price: Cents,
        available: bool,
        variants: Vec<VariantSpec>,
    ) -> ApiResult<Self> {
        unique_names(&variants)?;
        Ok(Self {
            name: product_name(name)?,
            description: description(description_text)?,
            category: Category::parse(category)?,
            price: Price::parse(price)?,
            available,
            variants,
        })
    }
}

/// Changes to a product; `None` leaves a field as it is. Variants are added,
/// or repriced when one of that name exists; none is removed, since order
/// lines keep pointing at them.
#[derive(Default)]
pub struct ProductPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub category: Option<Category>,
    pub price: Option<Price>,
    pub available: Option<bool>,
    pub variants: Vec<VariantSpec>,
}

impl ProductPatch {
    pub fn parse(
        name: Option<&str>,
        description_text: Option<&str>,
        category: Option<&str>,
        price: Option<Cents>,
        available: Option<bool>,
        variants: Vec<VariantSpec>,
    ) -> ApiResult<Self> {
        unique_names(&variants)?;
        Ok(Self {
            name: name.map(product_name).transpose()?,
            description: description_text.map(description).transpose()?,
            category: category.map(Category::parse).transpose()?,
            price: price.map(Price::parse).transpose()?,
            available,
            variants,
        })
    }
}

/// Creates a product and its variants; run it in a transaction.
pub async fn create_product<C: ConnectionTrait>(
    db: &C,
    new: NewProduct,
) -> ApiResult<products::Model> {
    let product = products::ActiveModel {
        name: Set(new.name),
        description: Set(new.description),
        category: Set(new.category.0),
        price_cents: Set(new.price.get().0),
        available: Set(new.available),
        ..Default::default()
    };
    let product = products::Entity::insert(product)
        .exec_with_returning(db)
        .await?;
    upsert_variants(db, product.id, new.variants).await?;
    tracing::info!(product_id = product.id, "created a product");
    Ok(product)
}

/// Applies a patch; run it in a transaction.
pub async fn update_product<C: ConnectionTrait>(
    db: &C,
    id: i64,
    patch: ProductPatch,
) -> ApiResult<products::Model> {
    let mut product: products::ActiveModel = find_product(db, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product {id} does not exist")))?
        .into();
    if let Some(name) = patch.name {
        product.name = Set(name);
    }
    if let Some(description) = patch.description {
        product.description = Set(description);
    }
    if let Some(category) = patch.category {
        product.category = Set(category.0);
    }
    if let Some(price) = patch.price {
        product.price_cents = Set(price.get().0);
    }
    if let Some(available) = patch.available {
        product.available = Set(available);
    }
    product.updated_at = Set(chrono::Utc::now().into());
    let product = products::Entity::update(product).exec(db).await?;
    upsert_variants(db, id, patch.variants).await?;
    tracing::info!(product_id = id, "updated a product");
    Ok(product)
}

async fn upsert_variants<C: ConnectionTrait>(
    db: &C,
    product_id: i64,
    variants: Vec<VariantSpec>,
) -> ApiResult<()> {
    if variants.is_empty() {
        return Ok(());
    }
    let rows = variants.into_iter().map(|v| product_variants::ActiveModel {
        product_id: Set(product_id),
        name: Set(v.name),
        price_cents: Set(v.price.get().0),
        ..Default::default()
    });
    product_variants::Entity::insert_many(rows)
        .on_conflict(
            OnConflict::columns([
                product_variants::Column::ProductId,
                product_variants::Column::Name,
            ])
            .update_column(product_variants::Column::PriceCents)
            .to_owned(),
        )
        .exec(db)
        .await
        .on_constraint("product_variants_product_name_key", || {
            ApiError::bad_input("variant names must be unique within a product")
        })?;
    Ok(())
}

pub async fn find_product<C: ConnectionTrait>(
    db: &C,
    id: i64,
) -> ApiResult<Option<products::Model>> {
    Ok(products::Entity::find_by_id(id).one(db).await?)
}

/// The products of `ids` that exist, in id order.
pub async fn find_products<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> ApiResult<Vec<products::Model>> {
    Ok(products::Entity::find()
        .filter(products::Column::Id.is_in(ids.iter().copied()))
        .order_by_asc(products::Column::Id)
        .all(db)
        .await?)
}

/// The orders a product list comes in. Rankings break ties by id, newer
/// (higher) first, so a page boundary among equal figures is exact and pages
/// never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProductOrder {
    /// Oldest first (ids grow with time).
    #[default]
    Id,
    /// Best sellers by units first.
    SalesCount,
    /// Highest revenue first.
    Revenue,
    /// Highest rating first.
    Rating,
    /// Latest first, by creation time.
    Newest,
}

/// Where a product stands in a list: the key its order sorts by, and its id.
/// What a cursor carries, so the next page starts right after it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ProductPosition {
    Id(i64),
    SalesCount(i64, i64),
    Revenue(i64, i64),
    Rating(f64, i64),
    /// Microseconds since the epoch: PostgreSQL's own precision.
    Newest(i64, i64),
    /// The window's start (microseconds since the epoch), the units sold in
    /// it, the id (`sales::trending`).
    Trending(i64, i64, i64),
}

/// The instant a cursor carries, in microseconds since the epoch.
pub fn cursor_instant(micros: i64) -> ApiResult<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| ApiError::bad_input("after is not a cursor this API gave out"))
}

/// Why a cursor of one order cannot page another.
pub const OTHER_ORDERS_CURSOR: &str =
    "after is a cursor of another order: page with the orderBy it came from";

impl ProductOrder {
    pub fn position(self, product: &products::Model) -> ProductPosition {
        let id = product.id;
        match self {
            Self::Id => ProductPosition::Id(id),
            Self::SalesCount => ProductPosition::SalesCount(product.sales_count, id),
            Self::Revenue => ProductPosition::Revenue(product.total_revenue_cents, id),
            Self::Rating => ProductPosition::Rating(product.rating, id),
            Self::Newest => ProductPosition::Newest(product.created_at.timestamp_micros(), id),
        }
    }
}

/// A page of products in `order`, optionally of one category, starting after
/// `after` (a position in the same order). A ranking sorts by its key and the
/// id, both descending, so "after" is one row comparison that its index
/// (`migration/sql/m20251125_000006_product_rankings.up.sql`) answers
/// directly, however deep the page.
pub async fn list_products<C: ConnectionTrait>(
    db: &C,
    category: Option<&Category>,
    order: ProductOrder,
    after: Option<ProductPosition>,
    limit: u64,
) -> ApiResult<Vec<products::Model>> {
    use products::Column;
    use sea_orm::ExprTrait;
    use sea_orm::sea_query::{Expr, IntoCondition, SimpleExpr};

    let key = match order {
        ProductOrder::Id => None,
        ProductOrder::SalesCount => Some(Column::SalesCount),
        ProductOrder::Revenue => Some(Column::TotalRevenueCents),
        ProductOrder::Rating => Some(Column::Rating),
        ProductOrder::Newest => Some(Column::CreatedAt),
    };
    let mut query = products::Entity::find().limit(limit);
    query = match key {
        None => query.order_by_asc(Column::Id),
        Some(key) => query.order_by_desc(key).order_by_desc(Column::Id),
    };
    if let Some(category) = category {
        query = query.filter(Column::Category.eq(category.as_str()));
    }
    if let Some(after) = after {
        let ranked_after = |key: Column, value: SimpleExpr, id: i64| {
            Expr::tuple([Expr::col(key), Expr::col(Column::Id)])
                .lt(Expr::tuple([value, Expr::val(id)]))
                .into_condition()
        };
        let condition = match (order, after) {
            (ProductOrder::Id, ProductPosition::Id(id)) => Column::Id.gt(id).into_condition(),
            (ProductOrder::SalesCount, ProductPosition::SalesCount(units, id)) => {
                ranked_after(Column::SalesCount, Expr::val(units), id)
            }
            (ProductOrder::Revenue, ProductPosition::Revenue(cents, id)) => {
                ranked_after(Column::TotalRevenueCents, Expr::val(cents), id)
            }
            (ProductOrder::Rating, ProductPosition::Rating(rating, id)) => {
                ranked_after(Column::Rating, Expr::val(rating), id)
            }
            (ProductOrder::Newest, ProductPosition::Newest(micros, id)) => {
                ranked_after(Column::CreatedAt, Expr::val(cursor_instant(micros)?), id)
            }
            _ => return Err(ApiError::bad_input(OTHER_ORDERS_CURSOR)),
        };
        query = query.filter(condition);
    }
    Ok(query.all(db).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_are_slugs() {
        assert_eq!(
            Category::parse("soft-drinks").unwrap().as_str(),
            "soft-drinks"
        );
        for bad in [
            "",
            "Pizza",
            "soft drinks",
            "-pizza",
            "pizza-",
            "a--b",
            "piz_za",
        ] {
            assert!(Category::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
