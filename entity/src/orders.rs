use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "orders")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub order_number: String,
    pub user_id: i64,
    pub status: OrderStatus,
    pub total_cents: i64,
    pub idempotency_key: Option<String>,
    pub created_at: DateTimeWithTimeZone,
    /// Set, in the same transaction as the figure updates, when the post-order
    /// job has counted this order: the exactly-once marker.
    pub analytics_applied_at: Option<DateTimeWithTimeZone>,
    pub cancelled_at: Option<DateTimeWithTimeZone>,
    /// Set, in the same transaction as the figure updates, when a job has
    /// taken a cancelled order's contribution back (or found it was never
    /// counted): the exactly-once marker of the reversal.
    pub analytics_reversed_at: Option<DateTimeWithTimeZone>,
    /// Set when counting this order failed on its own: no other run's batch,
    /// sweep or rebuild takes it until an operator retries its job.
    pub analytics_held_back_at: Option<DateTimeWithTimeZone>,
    /// The error that held it back, for operators.
    pub analytics_failure: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum OrderStatus {
    #[sea_orm(string_value = "placed")]
    Placed,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
