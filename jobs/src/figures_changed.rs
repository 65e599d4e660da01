//! What a run tells the API processes through PostgreSQL NOTIFY: the orders
//! whose analytics it settled and the products whose figures it changed.
//! Subscriptions (`orderAnalyticsApplied`, `productFiguresChanged`) are fed
//! by it in every API process, whichever process ran the job, and each
//! process's answers to public reads are dropped by it. A product's edit and
//! a rebuild of every figure send it too.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::{Deserialize, Serialize};

/// The NOTIFY channel.
pub const CHANNEL: &str = "tally_figures_changed";

/// Ids per message: at most 20 characters each plus a comma, so a message
/// of both kinds stays well under NOTIFY's 8000-byte payload limit.
const IDS_PER_MESSAGE: usize = 150;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiguresChanged {
    /// Orders counted in, or taken back out after a cancellation.
    pub orders: Vec<i64>,
    /// Products whose sales count, revenue or rating changed.
    pub products: Vec<i64>,
    /// Any product may have changed (a rebuild of every figure).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

impl FiguresChanged {
    /// The payloads to send: one message for a run of ordinary size, more for
    /// a big batch.
    pub fn payloads(&self) -> Vec<String> {
        let orders: Vec<_> = self.orders.chunks(IDS_PER_MESSAGE).collect();
        let products: Vec<_> = self.products.chunks(IDS_PER_MESSAGE).collect();
        let messages = orders.len().max(products.len()).max(usize::from(self.all));
        (0..messages)
            .map(|i| {
                let message = Self {
                    orders: orders.get(i).map_or_else(Vec::new, |ids| ids.to_vec()),
                    products: products.get(i).map_or_else(Vec::new, |ids| ids.to_vec()),
                    all: self.all,
                };
                serde_json::to_string(&message).expect("ids serialize")
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.products.is_empty() && !self.all
    }

    /// Every product's figures, for a rebuild.
    pub fn everything() -> Self {
        Self {
            all: true,
            ..Self::default()
        }
    }

    /// These products, edited.
    pub fn products(ids: Vec<i64>) -> Self {
        Self {
            products: ids,
            ..Self::default()
        }
    }
}

/// Queues `change`'s messages in `db`'s transaction: PostgreSQL sends them
/// when (and only if) it commits, after what they announce is visible.
pub async fn notify<C: ConnectionTrait>(db: &C, change: &FiguresChanged) -> Result<(), DbErr> {
    if change.is_empty() {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        include_str!("../sql/notify_figures_changed.sql"),
        [CHANNEL.into(), change.payloads().into()],
    ))
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_batch_is_split_into_messages_under_the_notify_limit() {
        let change = FiguresChanged {
            orders: (1..=1000).map(|i| i64::MAX - i).collect(),
            products: (1..=200).collect(),
            all: false,
        };
        let payloads = change.payloads();
        assert_eq!(payloads.len(), 7);
        assert!(payloads.iter().all(|p| p.len() < 8000), "{payloads:?}");
        let mut back = FiguresChanged::default();
        for payload in &payloads {
            let part: FiguresChanged = serde_json::from_str(payload).unwrap();
            back.orders.extend(part.orders);
            back.products.extend(part.products);
        }
        assert_eq!(back, change);
    }

    #[test]
    fn nothing_changed_sends_nothing() {
        assert!(FiguresChanged::default().payloads().is_empty());
    }

    #[test]
    fn everything_is_one_message_that_says_so() {
        assert_eq!(
            FiguresChanged::everything().payloads(),
            [r#"{"orders":[],"products":[],"all":true}"#]
        );
        // the runs' own messages stay as they were
        assert_eq!(
            FiguresChanged::products(vec![7]).payloads(),
            [r#"{"orders":[],"products":[7]}"#]
        );
    }
}
