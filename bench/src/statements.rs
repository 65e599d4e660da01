//! SQL statements per order, counted the way the tests count them: through
//! SeaORM's metric callback on the connection the API and workers use.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use entity::users::Role;
use jobs::JobOptions;
use jobs::analytics::{Outcome, apply_order};
use jobs::fail_points::FailPoints;
use tally::auth::Viewer;
use tally::domain::Quantity;
use tally::domain::orders::{OrderItem, place_order};

use crate::setup::Bench;

#[derive(Debug, Clone, Copy)]
pub struct Statements {
    pub lines: usize,
    pub place_order: usize,
    pub job: usize,
}

pub async fn count(bench: &Bench, line_counts: &[usize]) -> anyhow::Result<Vec<Statements>> {
    let counter = Arc::new(AtomicUsize::new(0));
    let mut db = tally::db::orm(&bench.pool);
    let seen = counter.clone();
    db.set_metric_callback(move |_| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let viewer = Viewer {
        user_id: bench.customers[0].0,
        role: Role::Customer,
    };
    let mut counts = Vec::new();
    for &lines in line_counts {
        let items = bench.products[..lines]
            .iter()
            .map(|(id, _)| {
                Ok(OrderItem {
                    product_id: *id,
                    variant_id: None,
                    quantity: Quantity::parse(2).map_err(|e| anyhow::anyhow!(e.message()))?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        counter.store(0, Ordering::SeqCst);
        let placed = place_order(&db, viewer, items, None, JobOptions { max_attempts: 5 })
            .await
            .map_err(|e| anyhow::anyhow!(e.message()))?;
        let place_order = counter.swap(0, Ordering::SeqCst);
        // batch size 1: this order alone, as its own job would
        let outcome = apply_order(&db, placed.order.id, 1, &FailPoints::default()).await?;
        anyhow::ensure!(
            matches!(outcome, Outcome::Applied(_)),
            "the order was not applied: {outcome:?}"
        );
        counts.push(Statements {
            lines,
            place_order,
            job: counter.load(Ordering::SeqCst),
        });
    }
    Ok(counts)
}
