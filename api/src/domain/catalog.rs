use entity::{product_variants, products};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

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
    pub price: Cents,
}

impl VariantSpec {
    pub fn parse(name: &str, price: Cents) -> ApiResult<Self> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ApiError::bad_input(
                "variant name must have 1 to 100 characters",
            ));
        }
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
    pub price: Cents,
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
            price,
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
    pub price: Option<Cents>,
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
            price,
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
        price_cents: Set(new.price.0),
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
        product.price_cents = Set(price.0);
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
        price_cents: Set(v.price.0),
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

/// A page of products in id order, optionally of one category.
pub async fn list_products<C: ConnectionTrait>(
    db: &C,
    category: Option<&Category>,
    after_id: Option<i64>,
    limit: u64,
) -> ApiResult<Vec<products::Model>> {
    let mut query = products::Entity::find()
        .order_by_asc(products::Column::Id)
        .limit(limit);
    if let Some(category) = category {
        query = query.filter(products::Column::Category.eq(category.as_str()));
    }
    if let Some(after) = after_id {
        query = query.filter(products::Column::Id.gt(after));
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
