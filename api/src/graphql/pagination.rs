//! Relay cursor connections. A cursor is the position of the last item of
//! the previous page: its id, or for a ranked list its rank and id.

use async_graphql::OutputType;
use async_graphql::connection::{Connection, CursorType, Edge, OpaqueCursor};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// The id cursors of id-ordered lists hide behind.
pub type Cursor = OpaqueCursor<i64>;

pub struct Page<K = i64> {
    pub size: u64,
    /// The position of the last item of the previous page.
    pub after: Option<K>,
}

impl<K: Serialize + DeserializeOwned + Send + Sync> Page<K> {
    pub fn parse(first: Option<i32>, after: Option<String>) -> ApiResult<Self> {
        let size = first.unwrap_or(DEFAULT_PAGE);
        if !(0..=MAX_PAGE).contains(&size) {
            return Err(ApiError::bad_input(format!(
                "first must be between 0 and {MAX_PAGE}, got {size}"
            )));
        }
        let after = after
            .map(|c| OpaqueCursor::<K>::decode_cursor(&c).map(|c| c.0))
            .transpose()
            .map_err(|_| ApiError::bad_input("after is not a cursor this API gave out"))?;
        Ok(Self {
            size: size as u64,
            after,
        })
    }

    /// Rows to fetch: one more than the page, to know whether another follows.
    pub fn fetch(&self) -> u64 {
        self.size + 1
    }

    /// Builds the connection from up to `fetch()` rows.
    pub fn connection<T, N: OutputType>(
        &self,
        mut rows: Vec<T>,
        position: impl Fn(&T) -> K,
        node: impl Fn(T) -> N,
    ) -> Connection<OpaqueCursor<K>, N> {
        let has_next = rows.len() as u64 > self.size;
        rows.truncate(self.size as usize);
        let mut connection = Connection::new(self.after.is_some(), has_next);
        connection.edges = rows
            .into_iter()
            .map(|row| Edge::new(OpaqueCursor(position(&row)), node(row)))
            .collect();
        connection
    }
}
