//! What a WebSocket's operations pay, as HTTP requests pay. Over HTTP a
//! request takes one of the process's `MAX_REQUESTS_IN_FLIGHT` slots in the
//! router, and an address has its share of connections; a socket is one
//! connection that may send operations as fast as it likes. So each
//! socket has a budget ([`SocketBudget`], in its connection's data):
//!
//! - a rate (`WEBSOCKET_OPERATION_RATE`: a burst, then one operation per
//!   `period / burst`), past which an operation is refused with
//!   TOO_MANY_REQUESTS and a `retryAfter`, before anything runs, and the
//!   socket stays open;
//! - an in-flight slot per query or mutation, and per subscription while
//!   it resolves (its first read): one of the socket's own
//!   [`MAX_IN_FLIGHT_PER_SOCKET`], waited for (a client subscribing to 100
//!   products at once has them read 8 at a time), then one of the
//!   process's, taken at once or refused as HTTP requests are. One socket
//!   never holds more than its 8.
//!
//! Errors over a socket get their codes here as they do over HTTP
//! (`error::code_the_uncoded`): a validation error is BAD_USER_INPUT.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextSubscribe,
};
use async_graphql::{Context, Response};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{Semaphore, SemaphorePermit};

use super::lock;
use crate::config::Rate;
use crate::error::{ApiError, ApiResult, code_the_uncoded};

/// Operations one socket may have in flight at once.
pub const MAX_IN_FLIGHT_PER_SOCKET: usize = 8;

/// One socket's rate and slots.
pub struct SocketBudget {
    /// The process's `MAX_REQUESTS_IN_FLIGHT`, shared with HTTP.
    in_flight: Arc<Semaphore>,
    own: Semaphore,
    rate: Rate,
    /// GCRA's theoretical arrival time: the burst is spent when it stands
    /// more than the rate's tolerance ahead of now.
    due: Mutex<Instant>,
}

/// An operation's slot, given back when dropped.
pub struct Slot<'a> {
    _in_flight: SemaphorePermit<'a>,
    _own: SemaphorePermit<'a>,
}

impl SocketBudget {
    pub fn new(in_flight: Arc<Semaphore>, rate: Rate) -> Self {
        Self {
            in_flight,
            own: Semaphore::new(MAX_IN_FLIGHT_PER_SOCKET),
            rate,
            due: Mutex::new(Instant::now()),
        }
    }

    /// A slot for an operation about to run, once the socket has one free;
    /// OVERLOADED at once if the process has none.
    pub async fn slot(&self) -> ApiResult<Slot<'_>> {
        let own = self.own.acquire().await.map_err(|_| ApiError::OVERLOADED)?;
        let in_flight = self
            .in_flight
            .try_acquire()
            .map_err(|_| ApiError::OVERLOADED)?;
        Ok(Slot {
            _in_flight: in_flight,
            _own: own,
        })
    }

    /// The slot of a subscription's first read, when it comes over a socket
    /// (every subscription does).
    pub async fn slot_of<'a>(ctx: &Context<'a>) -> ApiResult<Option<Slot<'a>>> {
        match ctx.data_opt::<SocketBudget>() {
            Some(budget) => budget.slot().await.map(Some),
            None => Ok(None),
        }
    }

    /// Counts one operation against the rate, unless it is spent.
    fn admit(&self, now: Instant) -> ApiResult<()> {
        let mut due = lock(&self.due);
        let from = (*due).max(now);
        let ahead = from - now;
        if ahead > self.rate.tolerance() {
            return Err(ApiError::TooManyRequests {
                retry_after: ahead - self.rate.tolerance(),
            });
        }
        *due = from + self.rate.step();
        Ok(())
    }
}

pub struct SocketOperations;

impl ExtensionFactory for SocketOperations {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SocketOperations)
    }
}

#[async_trait::async_trait]
impl Extension for SocketOperations {
    /// Queries and mutations over a socket; HTTP requests hold their slot
    /// from the router.
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let Some(budget) = ctx.data_opt::<SocketBudget>() else {
            return next.run(ctx, operation_name).await;
        };
        match budget.slot().await {
            Ok(_slot) => next.run(ctx, operation_name).await,
            // as HTTP's shedding: not a log line per refusal
            Err(e) => Response::from_errors(vec![e.into_unlogged_server_error()]),
        }
    }

    /// Every operation over a socket comes this way, whatever its kind.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        if let Some(budget) = ctx.data_opt::<SocketBudget>()
            && let Err(e) = budget.admit(Instant::now())
        {
            let refused = Response::from_errors(vec![e.into_unlogged_server_error()]);
            return futures::stream::once(async move { refused }).boxed();
        }
        next.run(ctx, stream)
            .map(|mut response| {
                code_the_uncoded(&mut response.errors);
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn budget_of(burst: u32, period: Duration, in_flight: usize) -> SocketBudget {
        SocketBudget::new(Arc::new(Semaphore::new(in_flight)), Rate { burst, period })
    }

    #[test]
    fn a_socket_has_its_burst_then_one_operation_a_step() {
        let budget = budget_of(5, Duration::from_secs(1), 100);
        let start = Instant::now();
        for _ in 0..5 {
            assert!(budget.admit(start).is_ok());
        }
        assert!(matches!(
            budget.admit(start),
            Err(ApiError::TooManyRequests { .. })
        ));
        // a step later (200 ms), one more
        let later = start + Duration::from_millis(200);
        assert!(budget.admit(later).is_ok());
        assert!(budget.admit(later).is_err());
        // quiet for a period: the whole burst again
        let quiet = later + Duration::from_secs(1);
        for _ in 0..5 {
            assert!(budget.admit(quiet).is_ok());
        }
    }

    #[tokio::test]
    async fn one_socket_holds_at_most_its_share_of_the_slots() {
        let budget = budget_of(100, Duration::from_secs(1), 100);
        let mut held = Vec::new();
        for _ in 0..MAX_IN_FLIGHT_PER_SOCKET {
            held.push(budget.slot().await.ok().unwrap());
        }
        let one_more = tokio::time::timeout(Duration::from_millis(50), budget.slot()).await;
        assert!(one_more.is_err(), "a ninth slot was given");
        assert_eq!(
            budget.in_flight.available_permits(),
            100 - MAX_IN_FLIGHT_PER_SOCKET
        );
        held.pop();
        assert!(budget.slot().await.is_ok());
        drop(held);
        // none when the process has none left, at once
        let full = budget_of(100, Duration::from_secs(1), 0);
        assert!(matches!(full.slot().await, Err(ApiError::Unavailable(_))));
        assert_eq!(full.own.available_permits(), MAX_IN_FLIGHT_PER_SOCKET);
    }
}
