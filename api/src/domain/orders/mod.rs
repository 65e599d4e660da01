//! Orders: their placement (`placer`: the requests' queue, coalesced; the
//! writes here, with their statements in `sql/`), reads, cancellation and
//! the admin's listing. An order and its post-order job commit together.

pub mod placer;

use std::sync::LazyLock;
use std::time::Duration;

use entity::{order_lines, orders};
use jobs::enqueue::JobRows;
use jobs::enqueue::SqlValue::{Column, Param};
use jobs::{JobKind, JobOptions};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QueryResult, QuerySelect, Statement,
    TransactionTrait, Value,
};

use super::Quantity;
use super::cart;
use super::pricing::{self, PriceRow, PricedItem};
use crate::auth::Viewer;
use crate::error::{ApiError, ApiResult, OnConstraint};
use crate::money::Cents;

/// Lines one order may have.
pub const MAX_LINES: usize = 100;

#[derive(Debug, Clone, Copy)]
pub struct OrderItem {
    pub product_id: i64,
    pub variant_id: Option<i64>,
    pub quantity: Quantity,
}

/// A client's key for retrying an order safely: the same key from the same
/// user returns the first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(raw: &str) -> ApiResult<Self> {
        match raw.chars().count() {
            1..=200 => Ok(Self(raw.to_owned())),
            _ => Err(ApiError::bad_input(
                "idempotencyKey must have 1 to 200 characters",
            )),
        }
    }
}

/// `place_order.sql` with the lines' rules (`priced_lines.sql`) and the job's
/// row (the jobs crate's) filled in. Its parameters are listed at its top.
pub static PLACE_ORDER_SQL: LazyLock<String> = LazyLock::new(|| {
    include_str!("sql/place_order.sql")
        .replace("{priced_lines}", &pricing::priced_lines_sql())
        .replace(
            "{enqueue_job}",
            &jobs::enqueue::enqueue_sql(JobRows {
                kind: JobKind::Count,
                orders: "new_order",
                job_id: Param(6),
                max_attempts: Param(7),
            }),
        )
});

/// `place_orders.sql` with the lines' rules (`priced_lines.sql`) and the jobs'
/// rows (the jobs crate's) filled in. Its parameters are listed at its top.
pub static PLACE_ORDERS_SQL: LazyLock<String> = LazyLock::new(|| {
    include_str!("sql/place_orders.sql")
        .replace("{priced_lines}", &pricing::priced_lines_sql())
        .replace(
            "{enqueue_job}",
            &jobs::enqueue::enqueue_sql(JobRows {
                kind: JobKind::Count,
                orders: "placed_requests",
                job_id: Column("job_id"),
                max_attempts: Param(2),
            }),
        )
});

/// `cancel_order.sql` with its job row filled in: the order's id, then the job's.
static CANCEL_ORDER_SQL: LazyLock<String> = LazyLock::new(|| {
    include_str!("sql/cancel_order.sql").replace(
        "{enqueue_job}",
        &jobs::enqueue::enqueue_sql(JobRows {
            kind: JobKind::Reverse,
            orders: "cancelled",
            job_id: Param(2),
            max_attempts: Param(3),
        }),
    )
});

#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub order: orders::Model,
    /// Known when this call wrote them; loaded on demand otherwise.
    pub lines: Option<Vec<order_lines::Model>>,
    /// True when an earlier order with the same idempotency key was returned.
    pub replayed: bool,
}

/// An order ready to be written: its lines checked for number (1 to
/// [`MAX_LINES`]), not yet for what they name, which the statement that
/// writes it checks.
#[derive(Debug, Clone)]
pub struct NewOrder {
    viewer: Viewer,
    items: Vec<OrderItem>,
    key: Option<IdempotencyKey>,
    /// The cart lines it is made of, removed with it.
    cart_line_ids: Vec<i64>,
    /// The token version the statement is to find the account at, when the
    /// caller's token is still to be confirmed (`auth::Caller`); None when
    /// it was.
    token_version: Option<i32>,
}

impl NewOrder {
    /// An order from explicit items.
    pub fn new(
        viewer: Viewer,
        items: Vec<OrderItem>,
        key: Option<IdempotencyKey>,
    ) -> ApiResult<Self> {
        if items.is_empty() {
            return Err(ApiError::bad_input("an order needs at least one line"));
        }
        check_line_count(items.len())?;
        Ok(Self {
            viewer,
            items,
            key,
            cart_line_ids: Vec::new(),
            token_version: None,
        })
    }

    /// The same order from a caller whose token, at `version`, no account
    /// has confirmed yet: the statement that writes it confirms it, and
    /// refuses the order (`InvalidToken`, nothing written) when the account
    /// is gone or at another version.
    pub fn confirming(self, version: i32) -> Self {
        Self {
            token_version: Some(version),
            ..self
        }
    }

    /// Its number of lines, which a batch's size is bounded by too.
    pub fn lines(&self) -> usize {
        self.items.len()
    }
}

/// Places an order from explicit items: one statement prices the lines and
/// writes the order, its lines and its job, or writes nothing.
#[tracing::instrument(skip_all, fields(user_id = viewer.user_id, lines = items.len()))]
pub async fn place_order<C: ConnectionTrait>(
    db: &C,
    viewer: Viewer,
    items: Vec<OrderItem>,
    key: Option<IdempotencyKey>,
    job: JobOptions,
) -> ApiResult<PlacedOrder> {
    write_order(db, NewOrder::new(viewer, items, key)?, job).await
}

/// Turns the viewer's whole cart into an order and empties it, atomically.
/// The order is made of exactly the lines this call locked, and only the call
/// that removes them places it: of concurrent calls (a double click, a
/// client's retry), the others wait for the first, then find the cart empty,
/// or, with the same idempotency key, its order.
#[tracing::instrument(skip_all, fields(user_id = viewer.user_id))]
pub async fn place_order_from_cart(
    db: &DatabaseConnection,
    viewer: Viewer,
    key: Option<IdempotencyKey>,
    job: JobOptions,
) -> ApiResult<PlacedOrder> {
    if let Some(earlier) = find_by_key(db, viewer.user_id, key.as_ref()).await? {
        return Ok(earlier);
    }
    let txn = db.begin().await?;
    let cart = cart::lock_cart(&txn, viewer.user_id).await?;
    if cart.lines.is_empty() {
        // a concurrent call with the same key may have just ordered it
        return match find_by_key(&txn, viewer.user_id, key.as_ref()).await? {
            Some(earlier) => Ok(earlier),
            None => Err(ApiError::bad_input("the cart is empty")),
        };
    }
    let items = cart
        .lines
        .iter()
        .map(|line| {
            Ok(OrderItem {
                product_id: line.product_id,
                variant_id: line.variant_id,
                quantity: Quantity::parse(line.quantity)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let order = NewOrder {
        cart_line_ids: cart.lines.iter().map(|l| l.id).collect(),
        ..NewOrder::new(viewer, items, key)?
    };
    let placed = write_order(&txn, order, job).await?;
    txn.commit().await?;
    Ok(placed)
}

fn check_line_count(lines: usize) -> ApiResult<()> {
    match lines {
        0..=MAX_LINES => Ok(()),
        _ => Err(ApiError::bad_input(format!(
            "an order has at most {MAX_LINES} lines"
        ))),
    }
}

/// [`write_orders`] for one order.
pub async fn write_order<C: ConnectionTrait>(
    db: &C,
    order: NewOrder,
    job: JobOptions,
) -> ApiResult<PlacedOrder> {
    write_orders(db, std::slice::from_ref(&order), job)
        .await?
        .pop()
        .unwrap_or_else(|| Err(ApiError::internal(anyhow::anyhow!("one order, no answer"))))
}

/// Writes a batch of orders with one statement, so with one round trip and
/// one commit, and answers each in its turn: the order it placed, the
/// earlier order its key names, or why it could not be placed. One order's
/// refusal does not touch the others, nor does a token its account no
/// longer confirms ([`NewOrder::confirming`]). Fails as a whole only when
/// the statement does (an account deleted after its caller was confirmed, a
/// timeout): then nothing was written. A lone order goes by
/// `place_order.sql`, more than one by `place_orders.sql`; a cart's order is
/// written alone.
#[tracing::instrument(skip_all, fields(orders = batch.len()))]
pub async fn write_orders<C: ConnectionTrait>(
    db: &C,
    batch: &[NewOrder],
    job: JobOptions,
) -> ApiResult<Vec<ApiResult<PlacedOrder>>> {
    let statement = match batch {
        [order] => {
            let mut values: Vec<Value> = vec![
                order.viewer.user_id.into(),
                order.token_version.into(),
                order.key.as_ref().map(|k| k.0.clone()).into(),
                lines_json(order).into(),
                order.cart_line_ids.clone().into(),
            ];
            values.extend(jobs::enqueue::enqueue_values(job));
            Statement::from_sql_and_values(DbBackend::Postgres, PLACE_ORDER_SQL.as_str(), values)
        }
        _ if batch.iter().any(|order| !order.cart_line_ids.is_empty()) => {
            return Err(ApiError::internal(anyhow::anyhow!(
                "a cart's order is written alone"
            )));
        }
        _ => {
            let requests: serde_json::Value = batch
                .iter()
                .enumerate()
                .map(|(slot, order)| {
                    serde_json::json!({
                        "slot": slot,
                        "user_id": order.viewer.user_id,
                        "token_version": order.token_version,
                        "key": order.key.as_ref().map(|k| k.0.as_str()),
                        "job_id": jobs::enqueue::new_job_id(),
                        "lines": lines_json(order),
                    })
                })
                .collect();
            Statement::from_sql_and_values(
                DbBackend::Postgres,
                PLACE_ORDERS_SQL.as_str(),
                [requests.into(), jobs::enqueue::max_attempts_value(job)],
            )
        }
    };
    let rows = db
        .query_all_raw(statement)
        .await
        // the token outlived its account
        .on_constraint("orders_user_id_fkey", || ApiError::InvalidToken)?;

    // the rows come by slot, then line: each order's are one run
    let mut rows = rows.as_slice();
    let mut answers = Vec::with_capacity(batch.len());
    for (slot, order) in batch.iter().enumerate() {
        let ours = rows
            .iter()
            .take_while(|row| row.try_get::<i32>("", "slot").ok() == Some(slot as i32))
            .count();
        let (own, rest) = rows.split_at(ours);
        rows = rest;
        let answer = match read_answer(own, order) {
            Ok(Some(placed)) => Ok(placed),
            Ok(None) => find_by_key(db, order.viewer.user_id, order.key.as_ref())
                .await
                .and_then(|earlier| {
                    earlier.ok_or_else(|| {
                        ApiError::internal(anyhow::anyhow!("idempotent order vanished"))
                    })
                }),
            Err(refused) => Err(refused),
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// An order's lines as the placement statements read them.
fn lines_json(order: &NewOrder) -> serde_json::Value {
    order
        .items
        .iter()
        .map(|item| {
            serde_json::json!({
                "product_id": item.product_id,
                "variant_id": item.variant_id,
                "quantity": item.quantity.get(),
            })
        })
        .collect()
}

/// Reads one order's rows of the placement statement: a token the account
/// no longer confirms, the earlier order its key names, the first line that
/// cannot be ordered, or the order it placed. None when every line could be
/// ordered and another request with the same key won the insert: its order
/// is the answer.
fn read_answer(rows: &[QueryResult], order: &NewOrder) -> ApiResult<Option<PlacedOrder>> {
    // every row carries the same order, if there is one, the same total and
    // the same verdict on the token
    let Some(first) = rows.first() else {
        return Err(ApiError::internal(anyhow::anyhow!(
            "the placement statement answered no line for an order"
        )));
    };
    if !first.try_get::<bool>("", "token_stands")? {
        return Err(ApiError::InvalidToken);
    }
    let placed = match first.try_get::<Option<i64>>("", "id")? {
        Some(_) => Some((
            orders::Model::from_query_result(first, "")?,
            first.try_get::<bool>("", "replayed")?,
        )),
        None => None,
    };
    if let Some((placed, true)) = placed {
        return Ok(Some(PlacedOrder {
            order: placed,
            lines: None,
            replayed: true,
        }));
    }
    let priced = rows
        .iter()
        .map(|row| PriceRow::from_query_result(row, "")?.check())
        .collect::<ApiResult<Vec<PricedItem>>>()?;
    let Some((placed, _)) = placed else {
        // Every line could be ordered. Within the bounds (a price at most
        // MAX_PRICE, 99 units, 100 lines) a total stays below 10^12 cents;
        // the statement checks it all the same, so no input can make it wrap.
        if !first.try_get::<bool>("", "total_fits")? {
            return Err(ApiError::bad_input("the order's total is too large"));
        }
        return Ok(None);
    };
    tracing::info!(
        user_id = placed.user_id,
        order_number = %placed.order_number,
        total = %Cents(placed.total_cents),
        "placed an order"
    );
    let lines = priced
        .into_iter()
        .zip(&order.items)
        .enumerate()
        .map(|(n, (line, item))| {
            let quantity = item.quantity.get();
            // a written line's price is within the bounds: this cannot wrap
            let subtotal = line
                .unit_price
                .checked_mul(i64::from(quantity))
                .ok_or_else(|| ApiError::internal(anyhow::anyhow!("a written subtotal wraps")))?;
            Ok(order_lines::Model {
                order_id: placed.id,
                line_no: n as i32 + 1,
                product_id: line.product_id,
                variant_id: line.variant_id,
                product_name: line.product_name,
                variant_name: line.variant_name,
                category: line.category,
                unit_price_cents: line.unit_price.0,
                quantity,
                subtotal_cents: subtotal.0,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Some(PlacedOrder {
        order: placed,
        lines: Some(lines),
        replayed: false,
    }))
}

async fn find_by_key<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    key: Option<&IdempotencyKey>,
) -> ApiResult<Option<PlacedOrder>> {
    let Some(key) = key else {
        return Ok(None);
    };
    let order = orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .filter(orders::Column::IdempotencyKey.eq(key.0.as_str()))
        .one(db)
        .await?;
    Ok(order.map(|order| PlacedOrder {
        order,
        lines: None,
        replayed: true,
    }))
}

/// What [`cancel_order`] did.
#[derive(Debug, Clone)]
pub struct CancelledOrder {
    pub order: orders::Model,
    /// False when the order was cancelled already: nothing was done again.
    pub newly: bool,
}

/// Cancels an order: its customer may within `window` of placing it, an
/// admin any time. The status change and the job that takes the order's
/// contribution back out of the figures commit together. Cancelling a
/// cancelled order again returns it unchanged, so a client may retry.
#[tracing::instrument(skip_all, fields(user_id = viewer.user_id, order_id = id))]
pub async fn cancel_order(
    db: &DatabaseConnection,
    viewer: Viewer,
    id: i64,
    window: Duration,
    job: JobOptions,
) -> ApiResult<CancelledOrder> {
    let txn = db.begin().await?;
    let locked = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            include_str!("sql/lock_order_for_cancel.sql"),
            [
                id.into(),
                window.as_secs_f64().into(),
                (!viewer.is_admin()).then_some(viewer.user_id).into(),
            ],
        ))
        .await?
        .map(|row| -> Result<_, DbErr> {
            let order = orders::Model::from_query_result(&row, "")?;
            Ok((order, row.try_get::<bool>("", "past_window")?))
        })
        .transpose()?
        .filter(|(order, _)| visible_to(viewer, order));
    let Some((order, past_window)) = locked else {
        return Err(no_such_order(id));
    };
    if order.status == orders::OrderStatus::Cancelled {
        return Ok(CancelledOrder {
            order,
            newly: false,
        });
    }
    if past_window && !viewer.is_admin() {
        return Err(ApiError::NotPermitted(format!(
            "an order can be cancelled up to {} after it was placed, and this one is older: \
             ask an admin",
            humantime::format_duration(window)
        )));
    }
    let [job_id, max_attempts] = jobs::enqueue::enqueue_values(job);
    let order = orders::Model::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        CANCEL_ORDER_SQL.as_str(),
        [id.into(), job_id, max_attempts],
    ))
    .one(&txn)
    .await?
    .ok_or_else(|| ApiError::internal(anyhow::anyhow!("locked order {id} was not cancelled")))?;
    txn.commit().await?;
    tracing::info!(
        order_number = %order.order_number,
        by_admin = viewer.user_id != order.user_id,
        "cancelled an order"
    );
    Ok(CancelledOrder { order, newly: true })
}

/// An order its owner or an admin may see; to anyone else it does not exist.
pub async fn find_order<C: ConnectionTrait>(
    db: &C,
    viewer: Viewer,
    id: i64,
) -> ApiResult<orders::Model> {
    orders::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|order| visible_to(viewer, order))
        .ok_or_else(|| no_such_order(id))
}

/// An order is its customer's and the admins' to see and cancel.
fn visible_to(viewer: Viewer, order: &orders::Model) -> bool {
    order.user_id == viewer.user_id || viewer.is_admin()
}

/// What anyone else is told, so that other customers' order ids reveal
/// nothing.
fn no_such_order(id: i64) -> ApiError {
    ApiError::not_found(format!("order {id} does not exist"))
}

/// A page of a user's orders, newest first.
pub async fn list_orders<C: ConnectionTrait>(
    db: &C,
    user_id: i64,
    before_id: Option<i64>,
    limit: u64,
) -> ApiResult<Vec<orders::Model>> {
    let mut query = orders::Entity::find()
        .filter(orders::Column::UserId.eq(user_id))
        .order_by_desc(orders::Column::Id)
        .limit(limit);
    if let Some(before) = before_id {
        query = query.filter(orders::Column::Id.lt(before));
    }
    Ok(query.all(db).await?)
}

/// Where an order's figures stand, from its status and the job's markers.
/// A held-back order is `Pending`: holding back sets neither marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalyticsState {
    /// Placed and not counted yet, or cancelled and not taken back out yet.
    Pending,
    /// Placed and counted.
    Applied,
    /// Cancelled and taken back out (or never counted).
    Reversed,
}

impl AnalyticsState {
    /// The state `Order.analyticsStatus` shows. The filter
    /// `orders(analyticsStatus:)` is [`AnalyticsState::condition`] just below,
    /// the same three cases in SQL: change one, change the other, so that a
    /// filtered list and the field it filters on never disagree.
    pub fn of(order: &orders::Model) -> Self {
        use orders::OrderStatus::{Cancelled, Placed};
        match (
            order.status,
            order.analytics_applied_at,
            order.analytics_reversed_at,
        ) {
            (Placed, None, _) | (Cancelled, _, None) => Self::Pending,
            (Placed, Some(_), _) => Self::Applied,
            (Cancelled, _, Some(_)) => Self::Reversed,
        }
    }

    /// The orders [`AnalyticsState::of`] puts in this state, case for case
    /// (the field and the filter must never disagree: keep them in step).
    fn condition(self) -> Condition {
        use orders::Column::{AnalyticsAppliedAt, AnalyticsReversedAt, Status};
        use orders::OrderStatus::{Cancelled, Placed};
        let case = |status: orders::OrderStatus, marker: sea_orm::sea_query::Expr| {
            Condition::all().add(Status.eq(status)).add(marker)
        };
        match self {
            Self::Pending => Condition::any()
                .add(case(Placed, AnalyticsAppliedAt.is_null()))
                .add(case(Cancelled, AnalyticsReversedAt.is_null())),
            Self::Applied => case(Placed, AnalyticsAppliedAt.is_not_null()),
            Self::Reversed => case(Cancelled, AnalyticsReversedAt.is_not_null()),
        }
    }
}

/// What the admins' list of all orders may be narrowed to: every part is
/// optional, and the parts combine with AND.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderFilter {
    pub status: Option<orders::OrderStatus>,
    pub analytics: Option<AnalyticsState>,
    pub user_id: Option<i64>,
    /// `true`: only held-back orders; `false`: only the others.
    pub held_back: Option<bool>,
}

impl OrderFilter {
    fn condition(&self) -> Condition {
        let mut condition = Condition::all();
        if let Some(status) = self.status {
            condition = condition.add(orders::Column::Status.eq(status));
        }
        if let Some(analytics) = self.analytics {
            condition = condition.add(analytics.condition());
        }
        if let Some(user_id) = self.user_id {
            condition = condition.add(orders::Column::UserId.eq(user_id));
        }
        condition = match self.held_back {
            Some(true) => condition.add(orders::Column::AnalyticsHeldBackAt.is_not_null()),
            Some(false) => condition.add(orders::Column::AnalyticsHeldBackAt.is_null()),
            None => condition,
        };
        condition
    }
}

/// A page of every customer's orders, newest first, narrowed by `filter`.
/// For admins: the caller checks the role.
pub async fn list_all_orders<C: ConnectionTrait>(
    db: &C,
    filter: &OrderFilter,
    before_id: Option<i64>,
    limit: u64,
) -> ApiResult<Vec<orders::Model>> {
    let mut query = orders::Entity::find()
        .filter(filter.condition())
        .order_by_desc(orders::Column::Id)
        .limit(limit);
    if let Some(before) = before_id {
        query = query.filter(orders::Column::Id.lt(before));
    }
    Ok(query.all(db).await?)
}
