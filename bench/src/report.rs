//! The table, side by side, with the targets; and the plots.

use std::path::Path;

use plotters::prelude::*;

use crate::Args;
use crate::cpu::PerOrder;
use crate::drain::Drain;
use crate::fetch::History;
use crate::lag::Lag;
use crate::load::Throughput;
use crate::reads::{Measured, Reads};
use crate::statements::Statements;
use crate::sustained::Sustained;

#[derive(Default)]
pub struct Report {
    /// (connections, straight SQL one order per statement)
    pub raw_placement: Vec<(usize, Throughput)>,
    /// (connections, orders per statement, straight SQL)
    pub raw_coalesced: Option<(usize, usize, Throughput)>,
    /// (clients, placeOrder with Tally's defaults: coalesced)
    pub graphql_placement: Vec<(usize, Throughput)>,
    /// placeOrder at 32 clients, other placer settings than the defaults.
    pub graphql_other: Vec<(&'static str, Throughput)>,
    /// The coalesced server's statements by orders written, after its runs.
    pub batch_sizes: Option<Vec<(String, u64)>>,
    /// placeOrder at 32 clients against `tally serve` with its workers: the
    /// lag's 100 %.
    pub placement_with_workers: Option<Throughput>,
    pub peak_rss_mib: Option<f64>,
    pub drain_coalesced: Drain,
    /// (orders per run, drain): coalescing with other batches than the
    /// default's, one process, as `drain_coalesced`.
    pub drain_other_batches: Vec<(u32, Drain)>,
    pub drain_single: Drain,
    pub drain_by_hand_single: Drain,
    pub drain_by_hand_batched: Drain,
    /// The same with 1000 orders per transaction, beside Tally's biggest batch.
    pub drain_by_hand_1000: Drain,
    /// 200 orders per transaction without the sales buckets.
    pub drain_by_hand_figures_alone: Drain,
    /// (worker processes, drain); one process is `drain_coalesced`.
    pub scaling: Vec<(usize, Drain)>,
    /// (share of the best placeOrder rate, lag)
    pub lag: Vec<(f64, Lag)>,
    /// At 90 %, with 100 orders per run (the default until issue #16).
    pub lag_small_batches: Option<Lag>,
    pub statements: Vec<Statements>,
    /// (measurement, CPU per order of each program) for the throughputs above.
    pub cpu: Vec<(String, PerOrder)>,
    pub history: Option<History>,
    pub reads: Option<Reads>,
    pub sustained: Option<Sustained>,
}

impl Report {
    pub fn best_graphql_rate(&self) -> f64 {
        self.graphql_placement
            .iter()
            .map(|(_, t)| t.per_second)
            .fold(0.0, f64::max)
    }

    fn best_raw_rate(&self) -> f64 {
        self.raw_placement
            .iter()
            .map(|(_, t)| t.per_second)
            .fold(0.0, f64::max)
    }

    pub fn print(&self, args: &Args) {
        let raw = self.best_raw_rate();
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        println!(
            "\n## tally-bench: {cores} cores, {} s per measurement, backlog {}{}\n",
            args.duration,
            args.backlog,
            if args.smoke {
                " (smoke: numbers mean little)"
            } else {
                ""
            }
        );
        let placed_or_drained = !self.raw_placement.is_empty()
            || self.drain_coalesced.orders > 0
            || !self.lag.is_empty();
        if placed_or_drained {
            println!("| measurement | orders/s | p50 ms | p99 ms | ratio | target |");
            println!("|---|---:|---:|---:|---:|---|");
        }
        self.print_placement(raw);
        self.print_drains();
        self.print_lag();
        self.print_costs();
        if let Some(h) = &self.history {
            h.print();
        }
        if let Some(reads) = &self.reads {
            reads.print();
        }
        if let Some(sustained) = &self.sustained {
            sustained.print();
        }
        self.print_placement_details();
    }

    /// Placement: straight SQL, then Tally's, each against the best straight
    /// SQL (`raw`).
    fn print_placement(&self, raw: f64) {
        for (clients, t) in &self.raw_placement {
            println!(
                "| placement, straight SQL, {clients} connections | {:.0} | {:.2} | {:.2} | | |",
                t.per_second, t.p50_ms, t.p99_ms
            );
        }
        let raw_coalesced = self.raw_coalesced.map(|(connections, batch, t)| {
            println!(
                "| placement, straight SQL, {connections} connections × {batch} orders per statement | {:.0} | {:.2} | {:.2} | {:.2} × SQL | |",
                t.per_second,
                t.p50_ms,
                t.p99_ms,
                t.per_second / raw
            );
            t.per_second
        });
        let versus_coalesced = |t: &Throughput| match raw_coalesced {
            Some(limit) => format!(", {:.2} × SQL coalesced", t.per_second / limit),
            None => String::new(),
        };
        let errors = |t: &Throughput| match t.errors {
            0 => String::new(),
            n => format!(" ({n} errors)"),
        };
        for (clients, t) in &self.graphql_placement {
            let target = if *clients == 32 {
                "> 1.0 × SQL, p99 ≤ SQL's"
            } else {
                ""
            };
            println!(
                "| placeOrder over HTTP, {clients} clients, coalesced (the default){} | {:.0} | {:.2} | {:.2} | {:.2} × SQL{} | {target} |",
                errors(t),
                t.per_second,
                t.p50_ms,
                t.p99_ms,
                t.per_second / raw,
                versus_coalesced(t)
            );
        }
        for (name, t) in &self.graphql_other {
            println!(
                "| placeOrder over HTTP, 32 clients, {name}{} | {:.0} | {:.2} | {:.2} | {:.2} × SQL | |",
                errors(t),
                t.per_second,
                t.p50_ms,
                t.p99_ms,
                t.per_second / raw
            );
        }
        if let Some(t) = &self.placement_with_workers {
            println!(
                "| placeOrder over HTTP, 32 clients, `tally serve` with its 2 workers (the lag's 100 %) | {:.0} | {:.2} | {:.2} | {:.2} × SQL | |",
                t.per_second,
                t.p50_ms,
                t.p99_ms,
                t.per_second / raw
            );
        }
    }

    /// Drains of a backlog: Tally's and straight SQL's, and how they scale.
    fn print_drains(&self) {
        let best = self.best_graphql_rate();
        let batched = self.drain_by_hand_batched.per_second;
        let coalesced_name = format!(
            "drain, Tally, coalescing ({}/run, the default), 1 process",
            crate::DEFAULT_BATCH
        );
        let drains = [
            (
                coalesced_name.as_str(),
                &self.drain_coalesced,
                "≥ 3 × placement, ≥ 0.50 × SQL batched",
            ),
            (
                "drain, Tally, one order per run, 1 process",
                &self.drain_single,
                "",
            ),
            (
                "drain, straight SQL, one order per transaction, 4 connections",
                &self.drain_by_hand_single,
                "",
            ),
            (
                "drain, straight SQL, 200 orders per transaction, 2 connections",
                &self.drain_by_hand_batched,
                "",
            ),
            (
                "drain, straight SQL, 1000 orders per transaction, 2 connections",
                &self.drain_by_hand_1000,
                "",
            ),
            (
                "drain, straight SQL, 200 orders per transaction, 2 connections, figures alone (no sales buckets)",
                &self.drain_by_hand_figures_alone,
                "",
            ),
        ];
        // a part not run (--only) has no orders
        for (n, (name, d, target)) in drains
            .into_iter()
            .enumerate()
            .filter(|(_, (_, d, _))| d.orders > 0)
        {
            println!(
                "| {name}, {} orders{} | {:.0} | | | {:.2} × placement, {:.2} × SQL batched | {target} |",
                d.orders,
                if d.exact { "" } else { " **NOT EXACT**" },
                d.per_second,
                d.per_second / best,
                d.per_second / batched
            );
            // the other batch sizes beside the default's
            if n == 0 {
                for (batch, d) in &self.drain_other_batches {
                    println!(
                        "| drain, Tally, coalescing ({batch}/run), 1 process{} | {:.0} | | | {:.2} × the default, {:.2} × SQL batched | |",
                        if d.exact { "" } else { " **NOT EXACT**" },
                        d.per_second,
                        d.per_second / self.drain_coalesced.per_second,
                        d.per_second / batched
                    );
                }
            }
        }
        for (processes, d) in &self.scaling {
            println!(
                "| drain, Tally, coalescing, {processes} processes{} | {:.0} | | | {:.2} × 1 process | |",
                if d.exact { "" } else { " **NOT EXACT**" },
                d.per_second,
                d.per_second / self.drain_coalesced.per_second
            );
        }
        let alone = &self.drain_by_hand_figures_alone;
        if alone.orders > 0 && self.drain_by_hand_batched.orders > 0 {
            println!(
                "| sales buckets in the counting run: the straight-SQL drain (200/transaction) with them, against the figures alone | {:.0} | | | {:.2} × figures alone | ≥ 0.90 × |",
                batched,
                batched / alone.per_second
            );
        }
    }

    /// The lag from an order's commit to its counting, at shares of the
    /// placement rate.
    fn print_lag(&self) {
        let small = self
            .lag_small_batches
            .iter()
            .map(|lag| (0.9, lag, " with 100/run"));
        for (share, lag, batches) in self.lag.iter().map(|(s, l)| (*s, l, "")).chain(small) {
            let target = if share == 0.9 && batches.is_empty() {
                "p99 ≤ 100 ms"
            } else {
                ""
            };
            println!(
                "| lag commit → counted, at {:.0}%{batches} ({:.0} orders/s asked, {:.0} placed) | | {:.1} | {:.1} | max {:.1} ms | {target} |",
                share * 100.0,
                lag.rate,
                lag.placed.per_second,
                lag.p50_ms,
                lag.p99_ms,
                lag.max_ms
            );
        }
    }

    /// CPU per order by process, and statements per order by its lines.
    fn print_costs(&self) {
        if !self.cpu.is_empty() {
            println!(
                "\n| CPU per order, ms | Tally | PostgreSQL | load generator | cores busy (of {}) |",
                std::thread::available_parallelism().map_or(0, |n| n.get())
            );
            println!("|---|---:|---:|---:|---:|");
        }
        for (name, cpu) in &self.cpu {
            println!(
                "| {name} | {:.3} | {:.3} | {:.3} | {:.2} |",
                cpu.tally_ms, cpu.postgres_ms, cpu.bench_ms, cpu.cores_busy
            );
        }
        if !self.statements.is_empty() {
            println!("\n| lines per order | statements per placeOrder | statements per job run |");
            println!("|---:|---:|---:|");
        }
        for s in &self.statements {
            println!("| {} | {} | {} |", s.lines, s.place_order, s.job);
        }
    }

    /// The coalesced placement's batch sizes, the server's memory, and the
    /// coalescing drain's times.
    fn print_placement_details(&self) {
        if let Some(buckets) = &self.batch_sizes {
            let mut below = 0;
            let sizes: Vec<String> = buckets
                .iter()
                .map(|(le, count)| {
                    let these = count - below;
                    below = *count;
                    format!("≤ {le}: {these}")
                })
                .collect();
            println!(
                "placement statements of the coalesced server, by orders written: {}",
                sizes.join(", ")
            );
        }
        if let Some(rss) = self.peak_rss_mib {
            println!("peak RSS of `tally serve` after the placement runs: {rss:.0} MiB");
        }
        if self.drain_coalesced.orders > 0 {
            let drain_jobs = self.drain_coalesced.jobs_seconds.unwrap_or_default();
            println!(
                "coalescing drain: every order counted after {:.1} s, every job done after {drain_jobs:.1} s",
                self.drain_coalesced.seconds
            );
        }
    }

    /// `throughput.png` (orders/s by concurrency) and `lag.png` (lag over time).
    pub fn plot(&self, out: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(out)?;
        register_font()?;
        self.plot_throughput(&out.join("throughput.png"))?;
        self.plot_lag(&out.join("lag.png"))?;
        eprintln!(
            "plots: {}, {}",
            out.join("throughput.png").display(),
            out.join("lag.png").display()
        );
        if let Some((name, days)) = self.reads.as_ref().and_then(|r| r.daily_sales.as_ref()) {
            let path = out.join("daily-sales.png");
            plot_daily_sales(name, days, &path)?;
            eprintln!("plot: {}", path.display());
        }
        Ok(())
    }

    fn plot_throughput(&self, path: &Path) -> anyhow::Result<()> {
        let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let top = self
            .raw_placement
            .iter()
            .chain(&self.graphql_placement)
            .map(|(_, t)| t.per_second)
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Order placement: orders/s by concurrency",
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0usize..34usize, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("concurrent clients / connections")
            .y_desc("orders/s")
            .draw()?;
        let series = [
            (
                "placeOrder over HTTP (Tally, coalesced)",
                &self.graphql_placement,
                BLUE,
            ),
            (
                "straight SQL, one order per statement (limit)",
                &self.raw_placement,
                RED,
            ),
        ];
        for (name, points, color) in series {
            let points: Vec<(usize, f64)> =
                points.iter().map(|(c, t)| (*c, t.per_second)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }

    fn plot_lag(&self, path: &Path) -> anyhow::Result<()> {
        let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
        root.fill(&WHITE)?;
        let end = self
            .lag
            .iter()
            .flat_map(|(_, l)| l.series.iter().map(|s| s.0))
            .fold(1.0, f64::max)
            + 1.0;
        let top = self
            .lag
            .iter()
            .flat_map(|(_, l)| l.series.iter().map(|s| s.2))
            .fold(1.0, f64::max)
            * 1.15;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Lag from commit to counted, per second of steady load",
                ("sans-serif", 22),
            )
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..end, 0.0..top)?;
        chart
            .configure_mesh()
            .x_desc("second of the run")
            .y_desc("ms")
            .draw()?;
        let colors = [GREEN, MAGENTA];
        for ((share, lag), color) in self.lag.iter().zip(colors) {
            for (quantile, pick, width) in [("p50", 1usize, 1u32), ("p99", 2, 3)] {
                let points: Vec<(f64, f64)> = lag
                    .series
                    .iter()
                    .map(|s| (s.0, if pick == 1 { s.1 } else { s.2 }))
                    .collect();
                chart
                    .draw_series(LineSeries::new(points, color.stroke_width(width)))?
                    .label(format!("{quantile} at {:.0}% load", share * 100.0))
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// plotters draws text with a font it is given: Debian's DejaVu Sans
/// (fonts-dejavu-core, installed by scripts/install-test-deps).
/// One product's units per day, as bars.
fn plot_daily_sales(
    name: &str,
    days: &[(chrono::DateTime<chrono::Utc>, i64)],
    path: &Path,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (900, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let top = days
        .iter()
        .map(|(_, units)| *units)
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{name}: units sold per day (Product.salesSeries, by: DAY)"),
            ("sans-serif", 22),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0..days.len(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(days.len().min(10))
        .x_label_formatter(&|i| {
            days.get(*i)
                .map_or(String::new(), |(day, _)| day.format("%b %d").to_string())
        })
        .y_desc("units")
        .draw()?;
    chart.draw_series(days.iter().enumerate().map(|(i, (_, units))| {
        Rectangle::new([(i, 0.0), (i + 1, *units as f64)], BLUE.mix(0.7).filled())
    }))?;
    root.present()?;
    Ok(())
}

fn register_font() -> anyhow::Result<()> {
    const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
    let bytes = std::fs::read(FONT)
        .map_err(|e| anyhow::anyhow!("{FONT}: {e} (apt-get install fonts-dejavu-core)"))?;
    plotters::style::register_font(
        "sans-serif",
        FontStyle::Normal,
        Box::leak(bytes.into_boxed_slice()),
    )
    .map_err(|_| anyhow::anyhow!("{FONT} is not a usable font"))?;
    Ok(())
}

impl History {
    fn print(&self) {
        let h = self;
        println!("\n| job history | apalis fetch (get_jobs) ms | count by status ms |");
        println!("|---|---:|---:|");
        for (name, f) in [
            ("empty", &h.empty),
            ("with history", &h.full),
            ("after pruning", &h.pruned),
        ] {
            println!(
                "| {name}: {} finished jobs | {:.2} | {:.2} |",
                f.history, f.fetch_ms, f.count_by_status_ms
            );
        }
        println!(
            "\npruning {} finished jobs took {:.1} s",
            h.full.history, h.prune_seconds
        );
    }
}

impl Reads {
    fn print(&self) {
        println!(
            "\n| read, {} clients | answers/s | p50 ms | p99 ms | ratio | target |",
            crate::reads::CLIENTS
        );
        println!("|---|---:|---:|---:|---:|---|");
        let row = |name: String, m: &Measured, versus: Option<&Measured>, target: &str| {
            let t = &m.throughput;
            let ratio = versus.map_or(String::new(), |v| {
                format!("{:.2} × SQL", t.per_second / v.throughput.per_second)
            });
            let errors = match t.errors {
                0 => String::new(),
                n => format!(" ({n} errors)"),
            };
            println!(
                "| {name}{errors} | {:.0} | {:.2} | {:.2} | {ratio} | {target} |",
                t.per_second, t.p50_ms, t.p99_ms
            );
        };
        for (read, sql) in &self.sql {
            row(format!("{}, straight SQL", read.name()), sql, None, "");
            let tally = self.tally.iter().find(|(r, _)| r == read);
            let uncached = self.uncached.iter().find(|(r, _)| r == read);
            let target = match read {
                crate::reads::Read::Menu => "≥ 1.5 × SQL, p99 ≤ SQL's",
                crate::reads::Read::Product => "≥ 1.0 × SQL",
                crate::reads::Read::Me => "≥ 0.5 × SQL",
                crate::reads::Read::Trending | crate::reads::Read::Report => "ratio reported",
            };
            if let Some((_, m)) = tally {
                let how = if read.is_public() {
                    "Tally, answers kept (the default)"
                } else {
                    "Tally"
                };
                row(format!("{}, {how}", read.name()), m, Some(sql), target);
            }
            if let Some((_, m)) = uncached {
                row(
                    format!(
                        "{}, Tally, nothing kept (PUBLIC_CACHE_BYTES=0)",
                        read.name()
                    ),
                    m,
                    Some(sql),
                    "",
                );
            }
        }
        if let Some(u) = &self.menu_under_orders {
            let orders = |t: &Throughput| format!("{:.0} orders/s placed meanwhile", t.per_second);
            row(
                format!(
                    "menu, straight SQL, while orders flow ({:.0}/s asked, {})",
                    u.rate,
                    orders(&u.sql_orders)
                ),
                &u.sql,
                None,
                "",
            );
            row(
                format!(
                    "menu, Tally, while orders flow ({:.0}/s asked, {})",
                    u.rate,
                    orders(&u.tally_orders)
                ),
                &u.tally,
                Some(&u.sql),
                "≥ 1.0 × SQL",
            );
        }
        if let Some((hits, misses)) = self.public_hits {
            println!(
                "public answers of the default server: {hits} served from memory, {misses} computed"
            );
        }

        println!(
            "\n| CPU per read, ms | Tally | PostgreSQL | load generator | cores busy (of {}) |",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!("|---|---:|---:|---:|---:|");
        let kinds = [
            ("straight SQL", &self.sql),
            ("Tally, answers kept", &self.tally),
            ("Tally, nothing kept", &self.uncached),
        ];
        for (kind, measured) in kinds {
            for (read, m) in measured {
                let cpu = &m.cpu;
                println!(
                    "| {}, {kind} | {:.3} | {:.3} | {:.3} | {:.2} |",
                    read.name(),
                    cpu.tally_ms,
                    cpu.postgres_ms,
                    cpu.bench_ms,
                    cpu.cores_busy
                );
            }
        }
    }
}

impl Sustained {
    fn print(&self) {
        println!(
            "\n| sustained, on a cluster of the bench's own (autovacuum on) | orders/s | p50 ms | p99 ms | errors | RSS MiB |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for slice in &self.slices {
            let t = &slice.placed;
            println!(
                "| placeOrder, {} clients, until {:.0} s | {:.0} | {:.2} | {:.2} | {} | {:.0} |",
                crate::sustained::CLIENTS,
                slice.at,
                t.per_second,
                t.p50_ms,
                t.p99_ms,
                t.errors,
                slice.rss_mib
            );
        }
        let placed: f64 = self
            .slices
            .iter()
            .map(|s| s.placed.per_second * s.placed.elapsed.as_secs_f64())
            .sum();
        let seconds = self.slices.last().map_or(0.0, |s| s.at);
        println!(
            "saturation: {placed:.0} orders in {seconds:.0} s ({:.0}/s)",
            placed / seconds.max(f64::EPSILON)
        );
        println!(
            "\n| drain, 1 `tally worker` | orders | finished jobs before | orders/s | ratio | target |"
        );
        println!("|---|---:|---:|---:|---:|---|");
        let exact = |d: &Drain| if d.exact { "" } else { " **NOT EXACT**" };
        println!(
            "| small backlog{} | {} | 0 | {:.0} | | |",
            exact(&self.small),
            self.small.orders,
            self.small.per_second
        );
        println!(
            "| large backlog, after the saturation{} | {} | {} | {:.0} | {:.2} × small | ≥ 0.9 × small |",
            exact(&self.large),
            self.large.orders,
            self.history,
            self.large.per_second,
            self.large.per_second / self.small.per_second
        );
        let rates: Vec<String> = self
            .drain_series
            .iter()
            .map(|(at, rate)| format!("{at:.0} s: {rate:.0}"))
            .collect();
        println!("large drain, orders/s over each 5 s: {}", rates.join(", "));
    }
}
