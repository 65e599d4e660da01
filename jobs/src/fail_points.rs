//! Places where tests can make a run fail, to prove that a failed run leaves
//! no trace and its retry counts the order exactly once. Arming them needs
//! the `test-hooks` feature, which the released binary does not have.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::JobError;

#[derive(Clone, Debug, Default)]
pub struct FailPoints {
    after_product_update: Arc<AtomicU32>,
}

impl FailPoints {
    /// Makes the next `times` runs fail right after the product UPDATE,
    /// inside their transaction.
    #[cfg(feature = "test-hooks")]
    pub fn fail_after_product_update(&self, times: u32) {
        self.after_product_update.store(times, Ordering::SeqCst);
    }

    pub(crate) fn check_after_product_update(&self) -> Result<(), JobError> {
        let armed =
            self.after_product_update
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        match armed {
            Ok(_) => Err(JobError::Injected("after the product update")),
            Err(_) => Ok(()),
        }
    }
}
