//! CPU time by program, read from `/proc` (Linux): Tally's processes (every
//! `tally` the bench spawned), PostgreSQL's (its server processes, every
//! backend included) and the bench's own (the load generator), to price a
//! measurement's orders in CPU beside its throughput.

use std::time::Instant;

/// CPU seconds spent so far by each program, and when they were read.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    at: Instant,
    tally: f64,
    postgres: f64,
    bench: f64,
}

/// CPU milliseconds per order of each program over a measurement, and how
/// many of the machine's cores they kept busy together.
#[derive(Clone, Copy, Debug, Default)]
pub struct PerOrder {
    pub tally_ms: f64,
    pub postgres_ms: f64,
    pub bench_ms: f64,
    pub cores_busy: f64,
}

impl Sample {
    pub fn now() -> Self {
        let (mut tally, mut postgres) = (0.0, 0.0);
        for stat in processes() {
            // a backend that exited is in its postmaster's children's time
            let seconds = stat.own + stat.children;
            match stat.name.as_str() {
                "tally" => tally += seconds,
                "postgres" => postgres += seconds,
                _ => {}
            }
        }
        // its own only: the tally processes it stopped are its children
        let bench = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|stat| parse(&stat))
            .map_or(0.0, |stat| stat.own);
        Self {
            at: Instant::now(),
            tally,
            postgres,
            bench,
        }
    }

    /// What went into `orders` orders (or reads) since `self`.
    pub fn per_order(&self, orders: f64) -> PerOrder {
        let now = Self::now();
        let ms = |before: f64, after: f64| (after - before).max(0.0) * 1000.0 / orders.max(1.0);
        let busy =
            (now.tally - self.tally) + (now.postgres - self.postgres) + (now.bench - self.bench);
        PerOrder {
            tally_ms: ms(self.tally, now.tally),
            postgres_ms: ms(self.postgres, now.postgres),
            bench_ms: ms(self.bench, now.bench),
            cores_busy: busy / now.at.duration_since(self.at).as_secs_f64(),
        }
    }
}

/// A process's CPU seconds: its own, and those of its children that
/// exited and were waited for.
#[derive(Debug, PartialEq)]
struct Stat {
    name: String,
    own: f64,
    children: f64,
}

/// Every process whose stat is readable.
fn processes() -> Vec<Stat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
        .filter_map(|stat| parse(&stat))
        .collect()
}

/// `/proc/<pid>/stat`: `pid (comm) state …`; user and system time the 14th
/// and 15th fields, the waited-for children's the 16th and 17th, in clock
/// ticks (100 per second on Linux).
fn parse(stat: &str) -> Option<Stat> {
    const TICKS_PER_SECOND: f64 = 100.0;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    // `rest` starts at the 3rd field (state)
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |n: usize| -> Option<f64> { fields.get(n)?.parse::<f64>().ok() };
    Some(Stat {
        name,
        own: (ticks(11)? + ticks(12)?) / TICKS_PER_SECOND,
        children: (ticks(13)? + ticks(14)?) / TICKS_PER_SECOND,
    })
}

#[cfg(test)]
mod tests {
    use super::{Stat, parse};

    #[test]
    fn a_stat_line_gives_its_program_and_cpu_seconds() {
        let stat =
            "4242 (postgres) S 1 4242 4242 0 -1 4194560 918 0 0 0 150 25 300 7 20 0 1 0 100 0 0";
        let expected = Stat {
            name: "postgres".to_owned(),
            own: 1.75,
            children: 3.07,
        };
        assert_eq!(parse(stat), Some(expected));
        // a name with a space or a parenthesis in it
        let stat = "7 (my (odd) prog) R 1 7 7 0 -1 0 0 0 0 0 3 1 0 0 20 0 1 0 100 0 0";
        let parsed = parse(stat).unwrap();
        assert_eq!((parsed.name.as_str(), parsed.own), ("my (odd) prog", 0.04));
    }
}
