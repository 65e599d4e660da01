//! The reads a food app's frontend makes far more often than it orders: the
//! menu page, one product's figures and the caller's `me`, and what a shop's
//! dashboard reads: what sells now and a 30-day report by day. Each through
//! Tally's GraphQL (public ones with its public-answer cache and without)
//! and as the same answer in straight SQL: one prepared statement each, over
//! a connection of its own per client.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sqlx::Row;
use sqlx::types::Json;

use crate::cpu::{PerOrder, Sample};
use crate::load::{Throughput, closed_loop, graphql_at_rate};
use crate::processes::Tally;
use crate::setup::Bench;

/// Clients of every read measurement, as in the table.
pub const CLIENTS: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// `products(first: 20, orderBy: SALES_COUNT_DESC)`, figures and variants, anonymous.
    Menu,
    /// `product(id) { salesCount totalRevenue rating }`, anonymous, over every product.
    Product,
    /// `me { mostOrderedItems { id name salesCount } favoriteCategories }`, every customer.
    Me,
    /// `products(first: 20, orderBy: TRENDING, window: LAST_DAY)`, anonymous.
    Trending,
    /// `salesReport` of the shop by day over the last 30 days, as an admin.
    Report,
}

impl Read {
    pub const ALL: [Read; 5] = [
        Read::Menu,
        Read::Product,
        Read::Me,
        Read::Trending,
        Read::Report,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Read::Menu => "menu page (20 best sellers, figures, variants)",
            Read::Product => "product(id) figures",
            Read::Me => "me (mostOrderedItems, favoriteCategories)",
            Read::Trending => "what sells now (20 best sellers of the last day)",
            Read::Report => "sales report, 30 days by day (admin)",
        }
    }

    /// Anonymous reads can be answered from Tally's public cache.
    pub fn is_public(self) -> bool {
        !matches!(self, Read::Me | Read::Report)
    }

    const fn document(self) -> &'static str {
        match self {
            Read::Menu => {
                "query Menu { products(first: 20, orderBy: SALES_COUNT_DESC) { edges { cursor node { id name description category price available salesCount totalRevenue rating variants { id name price } } } pageInfo { hasNextPage endCursor } } }"
            }
            Read::Product => {
                "query Figures($id: ID!) { product(id: $id) { salesCount totalRevenue rating } }"
            }
            Read::Me => "{ me { mostOrderedItems { id name salesCount } favoriteCategories } }",
            Read::Trending => {
                "query Trending { products(first: 20, orderBy: TRENDING, window: LAST_DAY) { edges { cursor node { id name category price salesCount } } pageInfo { hasNextPage endCursor } } }"
            }
            Read::Report => {
                "query Report($from: DateTime!, $to: DateTime!) { salesReport(from: $from, to: $to, by: DAY) { units revenue orders periods { startsAt endsAt units revenue orders } } }"
            }
        }
    }
}

/// The same answers as one statement each (the menu reads one row more, to
/// know whether a next page exists, as Tally's page does).
const MENU_SQL: &str = "
select p.id, p.name, p.description, p.category, p.price_cents, p.available,
       p.sales_count, p.total_revenue_cents, p.rating,
       coalesce((select json_agg(json_build_object('id', v.id, 'name', v.name,
                                                   'price_cents', v.price_cents) order by v.id)
                 from product_variants v
                 where v.product_id = p.id), '[]') as variants
from products p
order by p.sales_count desc, p.id desc
limit 21";

const PRODUCT_SQL: &str =
    "select sales_count, total_revenue_cents, rating from products where id = $1";

const ME_SQL: &str = "
select u.id, u.name,
       coalesce((select json_agg(json_build_object('id', p.id, 'name', p.name,
                                                   'sales_count', p.sales_count)
                                 order by top.quantity desc, top.last_ordered_at desc, top.product_id)
                 from (select s.product_id, s.quantity, s.last_ordered_at
                       from customer_product_stats s
                       where s.user_id = u.id
                       order by s.quantity desc, s.last_ordered_at desc, s.product_id
                       limit 5) top
                 join products p on p.id = top.product_id), '[]') as most_ordered,
       array(select s.category
             from customer_category_stats s
             where s.user_id = u.id
             order by s.quantity desc, s.last_ordered_at desc, s.category
             limit 3) as favorite_categories
from users u
where u.id = $1";

/// What sells now, as a developer would write it: the units of the last
/// day's quarter hours by product, the best 20 (and one more, for the next
/// page) with their columns.
const TRENDING_SQL: &str = "
with recent as (
    select product_id, sum(units)::bigint as units
    from product_sales
    where starts_at >= date_bin('15 minutes', now() - interval '1 day',
                                timestamptz '2000-01-01 00:00:00+00')
    group by product_id
    having sum(units) > 0
)
select p.id, p.name, p.category, p.price_cents, p.sales_count, r.units
from recent r
join products p on p.id = r.product_id
order by r.units desc, p.id desc
limit 21";

/// The shop's days from $1 to $2 (UTC days: the server's zone), every day
/// listed, with its units, revenue and orders.
const REPORT_SQL: &str = "
select d.day,
       coalesce(sum(s.units), 0)::bigint as units,
       coalesce(sum(s.revenue_cents), 0)::bigint as revenue_cents,
       coalesce(sum(s.orders), 0)::bigint as orders
from generate_series(date_trunc('day', $1::timestamptz), $2::timestamptz - interval '1 microsecond',
                     interval '1 day') as d (day)
left join shop_sales s on s.starts_at >= d.day and s.starts_at < d.day + interval '1 day'
group by d.day
order by d.day";

/// The span of the report read: 30 UTC days, today the last (the same for
/// every request of a run).
fn report_span() -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    use chrono::{DurationRound, TimeDelta};
    let to = chrono::Utc::now()
        .duration_trunc(TimeDelta::days(1))
        .expect("a day of now")
        + TimeDelta::days(1);
    (to - TimeDelta::days(30), to)
}

/// A product's name and its units per day.
pub type DailySales = (String, Vec<(chrono::DateTime<chrono::Utc>, i64)>);

/// A measurement and what it cost each program per answer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measured {
    pub throughput: Throughput,
    pub cpu: PerOrder,
}

/// Everything the reads part measured, in one run.
#[derive(Default)]
pub struct Reads {
    /// (read, straight SQL)
    pub sql: Vec<(Read, Measured)>,
    /// (read, Tally with its defaults: public answers kept)
    pub tally: Vec<(Read, Measured)>,
    /// (read, Tally with `PUBLIC_CACHE_BYTES=0`): the public reads only.
    pub uncached: Vec<(Read, Measured)>,
    /// The menu while orders flow at half of what `tally serve` with its
    /// workers places: (orders/s asked, orders placed meanwhile, Tally's
    /// menu, straight SQL's menu).
    pub menu_under_orders: Option<UnderOrders>,
    /// Kept answers served and computed, from the default server's /metrics.
    pub public_hits: Option<(u64, u64)>,
    /// The best seller's name and its units per day over the report's 30
    /// days, from `Product.salesSeries`: for a plot.
    pub daily_sales: Option<DailySales>,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct UnderOrders {
    pub rate: f64,
    pub tally: Measured,
    pub tally_orders: Throughput,
    pub sql: Measured,
    pub sql_orders: Throughput,
}

/// Products get variants (every fifth product two) and the shop a history
/// of counted orders, so the menu has figures to rank by and every customer
/// preferences to show; what earlier parts left is kept.
pub async fn prepare(bench: &Arc<Bench>, bin: &std::path::PathBuf) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "insert into product_variants (product_id, name, price_cents)
         select p.id, size.name, p.price_cents + size.extra
         from products p
         cross join (values ('Small', 0), ('Large', 250)) as size (name, extra)
         where p.id % 5 = 0
           and not exists (select 1 from product_variants v where v.product_id = p.id)",
    )
    .execute(&bench.pool)
    .await?;
    let counted = bench
        .count("select count(*) from orders where analytics_applied_at is not null")
        .await?;
    if counted < 2_000 {
        crate::drain::fill_backlog(bench, 2_000).await?;
    }
    let uncounted =
        "select count(*) from orders where analytics_applied_at is null and status = 'placed'";
    // a worker stopped before it has set up its signal handling dies of the
    // signal: start one only for orders it has to count
    if bench.count(uncounted).await? > 0 {
        let worker = Tally::worker(bin, bench, 2, crate::DEFAULT_BATCH)?;
        while bench.count(uncounted).await? > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        worker.stop()?;
    }
    spread_over_a_month(bench).await
}

/// The orders so far were all placed in the last minutes: moves each to a
/// random instant of the last 30 days, busier at lunch and dinner (UTC) and
/// on weekends, and recounts every figure and bucket from them, so the
/// trending window and the 30-day report read a month of quarter hours.
async fn spread_over_a_month(bench: &Bench) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "update orders
         set created_at = date_trunc('day', now() - interval '30 days' * random())
                          + (array[11, 12, 12, 13, 18, 19, 19, 20, 21, 9, 15])[1 + floor(random() * 11)::int]
                            * interval '1 hour'
                          + interval '1 hour' * random()
         where status = 'placed';
         -- weekends sell more: a weekday order in three moves to the Saturday before
         update orders
         set created_at = created_at - interval '1 day' * ((extract(isodow from created_at)::int + 1) % 7)
         where extract(isodow from created_at) < 6 and id % 3 = 0;
         update orders set created_at = least(created_at, now() - interval '1 minute')",
    )
    .execute(&bench.pool)
    .await?;
    let db = sea_orm::SqlxPostgresConnector::from_sqlx_postgres_pool(bench.pool.clone());
    jobs::rebuild::rebuild_analytics(&db).await?;
    Ok(())
}

pub async fn measure(
    bench: &Arc<Bench>,
    bin: &std::path::PathBuf,
    duration: Duration,
) -> anyhow::Result<Reads> {
    let mut reads = Reads::default();
    for read in Read::ALL {
        reads
            .sql
            .push((read, priced(|| sql(bench, read, duration)).await?));
    }

    let server = Tally::serve(bin, bench, 0, crate::DEFAULT_BATCH, &[]).await?;
    for read in Read::ALL {
        let measured = priced(|| graphql(bench, &server.addr, read, duration)).await?;
        reads.tally.push((read, measured));
    }
    reads.public_hits = server.public_answers().await.ok();
    reads.daily_sales = Some(daily_sales(bench, &server.addr).await?);
    server.stop()?;

    let server = Tally::serve(
        bin,
        bench,
        0,
        crate::DEFAULT_BATCH,
        &[("PUBLIC_CACHE_BYTES", "0")],
    )
    .await?;
    for read in Read::ALL.into_iter().filter(|r| r.is_public()) {
        let measured = priced(|| graphql(bench, &server.addr, read, duration)).await?;
        reads.uncached.push((read, measured));
    }
    server.stop()?;

    reads.menu_under_orders = Some(under_orders(bench, bin, duration).await?);
    Ok(reads)
}

/// The best seller's units per day over the report's span, as
/// `Product.salesSeries` gives them.
async fn daily_sales(bench: &Bench, addr: &str) -> anyhow::Result<DailySales> {
    let (from, to) = report_span();
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{addr}/graphql"))
        .bearer_auth(&bench.admin)
        .json(&json!({
            "query": "query($from: DateTime!, $to: DateTime!) {
                products(first: 1, orderBy: SALES_COUNT_DESC) { edges { node {
                    name salesSeries(from: $from, to: $to, by: DAY) { periods { startsAt units } }
                } } }
            }",
            "variables": { "from": from.to_rfc3339(), "to": to.to_rfc3339() },
        }))
        .send()
        .await?
        .json()
        .await?;
    let product = &answer["data"]["products"]["edges"][0]["node"];
    let name = product["name"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no best seller: {answer}"))?
        .to_owned();
    let periods = product["salesSeries"]["periods"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no sales series: {answer}"))?;
    let days = periods
        .iter()
        .map(|p| {
            let starts_at = p["startsAt"].as_str().unwrap_or_default().parse()?;
            Ok((starts_at, p["units"].as_i64().unwrap_or_default()))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok((name, days))
}

/// The menu read by Tally and by straight SQL while `tally serve` with its
/// workers takes orders at half of what it can carry: every counting run
/// then changes the best sellers, and every kept menu is dropped.
async fn under_orders(
    bench: &Arc<Bench>,
    bin: &std::path::PathBuf,
    duration: Duration,
) -> anyhow::Result<UnderOrders> {
    let server = Tally::serve(bin, bench, 2, crate::DEFAULT_BATCH, &[]).await?;
    let carried = crate::load::graphql_placement(bench, &server.addr, CLIENTS, duration).await?;
    let rate = carried.per_second / 2.0;
    let (tally_orders, tally) = tokio::join!(
        graphql_at_rate(bench, &server.addr, rate, duration),
        priced(|| graphql(bench, &server.addr, Read::Menu, duration)),
    );
    let (sql_orders, sql) = tokio::join!(
        graphql_at_rate(bench, &server.addr, rate, duration),
        priced(|| sql(bench, Read::Menu, duration)),
    );
    server.stop()?;
    Ok(UnderOrders {
        rate,
        tally: tally?,
        tally_orders: tally_orders?,
        sql: sql?,
        sql_orders: sql_orders?,
    })
}

/// A measurement with the CPU each program spent per answer meanwhile.
async fn priced<F: Future<Output = anyhow::Result<Throughput>>>(
    measure: impl FnOnce() -> F,
) -> anyhow::Result<Measured> {
    let started = Sample::now();
    let throughput = measure().await?;
    let answers = throughput.per_second * throughput.elapsed.as_secs_f64();
    Ok(Measured {
        throughput,
        cpu: started.per_order(answers),
    })
}

/// `read` from `CLIENTS` anonymous (or, for `me`, signed-in) HTTP clients.
async fn graphql(
    bench: &Arc<Bench>,
    addr: &str,
    read: Read,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()?;
    let url = format!("http://{addr}/graphql");
    // written once: the load generator's work is not what is measured
    let bodies: Vec<bytes::Bytes> = match read {
        Read::Product => bench
            .products
            .iter()
            .map(|(id, _)| json!({ "query": read.document(), "variables": { "id": id.to_string() } }))
            .collect(),
        Read::Report => {
            let (from, to) = report_span();
            vec![json!({ "query": read.document(),
                         "variables": { "from": from.to_rfc3339(), "to": to.to_rfc3339() } })]
        }
        Read::Menu | Read::Me | Read::Trending => vec![json!({ "query": read.document() })],
    }
    .iter()
    .map(|body| bytes::Bytes::from(body.to_string()))
    .collect();
    closed_loop(
        CLIENTS,
        duration,
        async |_| anyhow::Ok(()),
        async |_, n| {
            let mut request = http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bodies[n % bodies.len()].clone());
            if read == Read::Me {
                let (_, token) = &bench.customers[n % bench.customers.len()];
                request = request.bearer_auth(token);
            }
            if read == Read::Report {
                request = request.bearer_auth(&bench.admin);
            }
            let response = request.send().await?;
            anyhow::ensure!(response.status().is_success(), "{}", response.status());
            let answer = response.bytes().await?;
            // an answer with errors carries them after its data
            anyhow::ensure!(
                !answer.windows(10).any(|w| w == b"\"errors\":[")
                    && !answer.starts_with(b"{\"data\":null")
                    && !answer.starts_with(b"{\"data\":{\"me\":null"),
                "{read:?} failed: {}",
                String::from_utf8_lossy(&answer)
            );
            Ok(1)
        },
    )
    .await
}

/// The same answer as `read`, by one prepared statement.
async fn sql(bench: &Arc<Bench>, read: Read, duration: Duration) -> anyhow::Result<Throughput> {
    let span = report_span();
    closed_loop(
        CLIENTS,
        duration,
        async |_| Ok(bench.pool.acquire().await?),
        async |conn, n| {
            match read {
                Read::Menu => {
                    let rows = sqlx::query(MENU_SQL).fetch_all(&mut **conn).await?;
                    anyhow::ensure!(rows.len() == 21, "the menu has {} rows", rows.len());
                    for row in rows {
                        let _: (i64, String, String, String, i64, bool, i64, i64, f64) = (
                            row.try_get("id")?,
                            row.try_get("name")?,
                            row.try_get("description")?,
                            row.try_get("category")?,
                            row.try_get("price_cents")?,
                            row.try_get("available")?,
                            row.try_get("sales_count")?,
                            row.try_get("total_revenue_cents")?,
                            row.try_get("rating")?,
                        );
                        let _: Json<serde_json::Value> = row.try_get("variants")?;
                    }
                }
                Read::Product => {
                    let (id, _) = bench.products[n % bench.products.len()];
                    let row = sqlx::query(PRODUCT_SQL)
                        .bind(id)
                        .fetch_one(&mut **conn)
                        .await?;
                    let _: (i64, i64, f64) = (
                        row.try_get("sales_count")?,
                        row.try_get("total_revenue_cents")?,
                        row.try_get("rating")?,
                    );
                }
                Read::Me => {
                    let (id, _) = bench.customers[n % bench.customers.len()];
                    let row = sqlx::query(ME_SQL).bind(id).fetch_one(&mut **conn).await?;
                    let _: (i64, String, Json<serde_json::Value>, Vec<String>) = (
                        row.try_get("id")?,
                        row.try_get("name")?,
                        row.try_get("most_ordered")?,
                        row.try_get("favorite_categories")?,
                    );
                }
                Read::Trending => {
                    let rows = sqlx::query(TRENDING_SQL).fetch_all(&mut **conn).await?;
                    anyhow::ensure!(!rows.is_empty(), "nothing sold in the last day");
                    for row in rows {
                        let _: (i64, String, String, i64, i64, i64) = (
                            row.try_get("id")?,
                            row.try_get("name")?,
                            row.try_get("category")?,
                            row.try_get("price_cents")?,
                            row.try_get("sales_count")?,
                            row.try_get("units")?,
                        );
                    }
                }
                Read::Report => {
                    let (from, to) = span;
                    let rows = sqlx::query(REPORT_SQL)
                        .bind(from)
                        .bind(to)
                        .fetch_all(&mut **conn)
                        .await?;
                    anyhow::ensure!(rows.len() == 30, "the report has {} days", rows.len());
                    for row in rows {
                        let _: (chrono::DateTime<chrono::Utc>, i64, i64, i64) = (
                            row.try_get("day")?,
                            row.try_get("units")?,
                            row.try_get("revenue_cents")?,
                            row.try_get("orders")?,
                        );
                    }
                }
            }
            Ok(1)
        },
    )
    .await
}
