//! What a run tells the API processes through PostgreSQL NOTIFY: the orders
//! whose analytics it settled and the products whose figures it changed.
//! Subscriptions (`orderAnalyticsApplied`, `productFiguresChanged`) are fed
//! by it in every API process, whichever process ran the job.

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
}

impl FiguresChanged {
    /// The payloads to send: one message for a run of ordinary size, more for
    /// a big batch.
    pub fn payloads(&self) -> Vec<String> {
        let orders: Vec<_> = self.orders.chunks(IDS_PER_MESSAGE).collect();
        let products: Vec<_> = self.products.chunks(IDS_PER_MESSAGE).collect();
        (0..orders.len().max(products.len()))
            .map(|i| {
                let message = Self {
                    orders: orders.get(i).map_or_else(Vec::new, |ids| ids.to_vec()),
                    products: products.get(i).map_or_else(Vec::new, |ids| ids.to_vec()),
                };
                serde_json::to_string(&message).expect("ids serialize")
            })
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.orders.is_empty() && self.products.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_big_batch_is_split_into_messages_under_the_notify_limit() {
        let change = FiguresChanged {
            orders: (1..=1000).map(|i| i64::MAX - i).collect(),
            products: (1..=200).collect(),
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
}
