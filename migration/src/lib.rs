//! Tally's schema: its own migrations (plain SQL in `sql/`), applied after
//! apalis-postgres's, plus the adjustments Tally makes to apalis's tables
//! (whose SQL, like every statement on apalis's tables, is the jobs crate's:
//! `jobs::schema`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{DatabaseConnection, SqlxPostgresConnector};
use sqlx::PgPool;

pub use sea_orm_migration::MigratorTrait;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("setting up the apalis job tables failed")]
    Apalis(#[from] apalis_postgres::Error),
    #[error("migrating Tally's schema failed")]
    Schema(#[from] DbErr),
}

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        macro_rules! sql_migration {
            ($name:literal) => {
                Box::new(SqlMigration {
                    name: $name,
                    up: include_str!(concat!("../sql/", $name, ".up.sql")),
                    down: include_str!(concat!("../sql/", $name, ".down.sql")),
                }) as Box<dyn MigrationTrait>
            };
        }
        vec![
            sql_migration!("m20251125_000001_create_users"),
            sql_migration!("m20251125_000002_create_catalog"),
            sql_migration!("m20251125_000003_create_cart"),
            sql_migration!("m20251125_000004_create_orders"),
            sql_migration!("m20251125_000005_create_customer_stats"),
            sql_migration!("m20251125_000006_product_rankings"),
            sql_migration!("m20251125_000007_order_cancellation"),
            sql_migration!("m20251202_000008_held_back_orders_and_money_bounds"),
            sql_migration!("m20251203_000009_token_versions"),
            sql_migration!("m20251207_000010_shared_by_replicas"),
            sql_migration!("m20251207_000011_customer_rankings"),
            // apalis's table: its SQL is the jobs crate's
            Box::new(SqlMigration {
                name: "m20251207_000012_order_job_keys",
                up: jobs::schema::ORDER_JOB_KEYS_UP,
                down: jobs::schema::ORDER_JOB_KEYS_DOWN,
            }),
            sql_migration!("m20251207_000013_sales_over_time"),
            sql_migration!("m20251207_000014_sales_days"),
        ]
    }
}

/// A migration written as SQL files: the schema reads as SQL, constraints and all.
struct SqlMigration {
    name: &'static str,
    up: &'static str,
    down: &'static str,
}

impl MigrationName for SqlMigration {
    fn name(&self) -> &str {
        self.name
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SqlMigration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.up).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(self.down)
            .await?;
        Ok(())
    }
}

/// Brings a database up to date: apalis-postgres's schema (idempotent), then
/// Tally's migrations, then Tally's adjustments to apalis's tables. The last
/// step runs every time because an apalis upgrade may re-create what it drops.
pub async fn prepare(pool: &PgPool) -> Result<(), Error> {
    apalis_postgres::PostgresStorage::setup(pool).await?;
    let db: DatabaseConnection = SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone());
    Migrator::up(&db, None).await?;
    db.execute_unprepared(jobs::schema::APALIS_ADJUSTMENTS)
        .await?;
    Ok(())
}

/// Whether every migration Tally knows has been applied (for `/readyz`).
pub async fn is_current(db: &DatabaseConnection) -> Result<bool, DbErr> {
    Ok(Migrator::get_pending_migrations(db).await?.is_empty())
}
