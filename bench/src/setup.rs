//! A fresh database for one benchmark run: schema, and the tests' shop
//! (`tally_test_support::shop`): a catalog, customers and their tokens.
//! Users are written straight into the table (hashing 64 passwords would
//! only measure argon2); tokens are minted with the secret the spawned
//! servers get.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::Rng;
use sqlx::{Connection, PgPool};
use tally::config::Config;

pub const JWT_SECRET: &str = "tally-bench-secret-tally-bench-secret";

pub struct Bench {
    pub maintenance_url: String,
    pub database: String,
    pub database_url: String,
    pub pool: PgPool,
    /// The products' ids and prices in cents.
    pub products: Vec<(i64, i64)>,
    pub customers: Vec<(i64, String)>,
    /// A token of the shop's admin (sales reports).
    pub admin: String,
}

impl Bench {
    pub async fn create(maintenance_url: &str) -> anyhow::Result<Self> {
        let epoch = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let database = format!("tally_bench_{epoch}");
        let mut url = reqwest::Url::parse(maintenance_url).context("--database-url")?;
        url.set_path(&database);
        let database_url = url.to_string();

        let mut config = Config::from_lookup(|_| None).expect("defaults");
        config.database = tally::config::Database::Url(database_url.clone());
        config.db_pool_size = 40;
        let pool = tally::db::connect_and_migrate(&config, tally::db::PoolKind::Commands)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;

        let shop = tally_test_support::shop::open(
            &pool,
            50,
            &["pizza", "burgers", "salads", "desserts", "beverages"],
            64,
            JWT_SECRET,
        )
        .await?;
        Ok(Self {
            maintenance_url: maintenance_url.to_owned(),
            database,
            database_url,
            pool,
            products: shop.products,
            customers: shop.customers,
            admin: shop.admin.1,
        })
    }

    /// Three distinct random products and quantities: one order's lines.
    pub fn random_lines(&self) -> Vec<(i64, i64, i32)> {
        let mut rng = rand::rng();
        let mut lines: Vec<(i64, i64, i32)> = Vec::with_capacity(3);
        while lines.len() < 3 {
            let (id, price) = self.products[rng.random_range(0..self.products.len())];
            if lines.iter().all(|l| l.0 != id) {
                lines.push((id, price, rng.random_range(1..=3)));
            }
        }
        lines
    }

    /// The bench's pool as SeaORM takes it, for the jobs crate's functions.
    pub fn orm(&self) -> sea_orm::DatabaseConnection {
        tally::db::orm(&self.pool)
    }

    pub async fn count(&self, sql: &str) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.pool)
            .await?)
    }

    pub async fn drop_database(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn = sqlx::PgConnection::connect(&self.maintenance_url).await?;
        let sql = format!("drop database if exists \"{}\" with (force)", self.database);
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
        Ok(())
    }
}
