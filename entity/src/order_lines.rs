use sea_orm::entity::prelude::*;

/// A line of an order, with a snapshot of what the product was when ordered.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "order_lines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub order_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub line_no: i32,
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub product_name: String,
    pub variant_name: Option<String>,
    pub category: String,
    pub unit_price_cents: i64,
    pub quantity: i32,
    pub subtotal_cents: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
