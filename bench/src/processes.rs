//! The real `tally` binary, run the way an operator runs it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::setup::{Bench, JWT_SECRET};

pub struct Tally {
    child: Child,
    pub addr: String,
}

pub fn binary(explicit: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match explicit {
        Some(path) => path,
        // beside this binary: target/<profile>/tally
        None => std::env::current_exe()?.with_file_name("tally"),
    };
    if !path.exists() {
        bail!(
            "no tally binary at {}: build it (cargo build --release -p tally) or pass --tally-bin",
            path.display()
        );
    }
    Ok(path)
}

impl Tally {
    /// `tally serve` on a free port; `workers` in-process workers (0: none);
    /// `env`, settings of its own.
    pub async fn serve(
        bin: &PathBuf,
        bench: &Bench,
        workers: usize,
        batch: u32,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let port = free_port()?;
        let child = command(bin, bench, workers, batch)
            .envs(env.iter().copied())
            .arg("serve")
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .spawn()
            .context("starting tally serve")?;
        let tally = Self {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        tally.wait_ready().await?;
        Ok(tally)
    }

    /// `tally worker` with `concurrency` jobs at once and `batch` orders per run.
    pub fn worker(
        bin: &PathBuf,
        bench: &Bench,
        concurrency: usize,
        batch: u32,
    ) -> anyhow::Result<Self> {
        let child = command(bin, bench, concurrency, batch)
            .arg("worker")
            .spawn()
            .context("starting tally worker")?;
        Ok(Self {
            child,
            addr: String::new(),
        })
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = format!("http://{}/readyz", self.addr);
        while Instant::now() < deadline {
            if let Ok(response) = reqwest::get(&url).await
                && response.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("tally serve did not become ready at {url}")
    }

    /// How many placement statements wrote how many orders, from the
    /// server's `/metrics` (`tally_order_batch_size`): (orders at most,
    /// statements), as Prometheus's cumulative buckets.
    pub async fn order_batch_sizes(&self) -> anyhow::Result<Vec<(String, u64)>> {
        self.metrics("tally_order_batch_size_bucket{le=\"")
            .await?
            .into_iter()
            .map(|(labels, count)| {
                let le = labels.strip_suffix("\"}").unwrap_or(&labels).to_owned();
                Ok((le, count.parse()?))
            })
            .collect()
    }

    /// (hits, misses) of the public answers, from `/metrics`.
    pub async fn public_answers(&self) -> anyhow::Result<(u64, u64)> {
        let counts = self.metrics("tally_public_answers_total{result=\"").await?;
        let count = |result: &str| -> anyhow::Result<u64> {
            let (_, n) = counts
                .iter()
                .find(|(labels, _)| labels.starts_with(result))
                .ok_or_else(|| anyhow::anyhow!("no {result} count in /metrics"))?;
            Ok(n.parse::<f64>()? as u64)
        };
        Ok((count("hit")?, count("miss")?))
    }

    /// The lines of `/metrics` starting with `prefix`: (the rest up to the
    /// space, the value).
    async fn metrics(&self, prefix: &str) -> anyhow::Result<Vec<(String, String)>> {
        let metrics = reqwest::get(format!("http://{}/metrics", self.addr))
            .await?
            .error_for_status()?
            .text()
            .await?;
        metrics
            .lines()
            .filter_map(|line| line.strip_prefix(prefix))
            .map(|rest| {
                let (labels, value) = rest
                    .rsplit_once(' ')
                    .ok_or_else(|| anyhow::anyhow!("unreadable metric {rest:?}"))?;
                Ok((labels.to_owned(), value.trim().to_owned()))
            })
            .collect()
    }

    /// The most memory the process has held (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.memory_mib("VmHWM:")
    }

    /// The memory the process holds now (VmRSS), in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        self.memory_mib("VmRSS:")
    }

    fn memory_mib(&self, field: &str) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 = status
            .lines()
            .find(|l| l.starts_with(field))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let status = self.child.wait()?;
        if !status.success() {
            bail!("tally exited with {status}");
        }
        Ok(())
    }
}

/// Tally's own defaults for everything else (its pool size, say), unless the
/// bench's environment sets them: `DATABASE_POOL_SIZE=8 tally-bench` tries one.
fn command(bin: &PathBuf, bench: &Bench, workers: usize, batch: u32) -> Command {
    let mut command = Command::new(bin);
    command
        .env("DATABASE_URL", &bench.database_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("WORKER_CONCURRENCY", workers.to_string())
        .env("ANALYTICS_BATCH_SIZE", batch.to_string())
        .env("RUST_LOG", "warn")
        // the bench's clients are many, from one address
        .env("MAX_CONNECTIONS_PER_ADDRESS", "4096")
        .env_remove("BOARD_USERNAME")
        .env_remove("BOARD_PASSWORD")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    command
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
