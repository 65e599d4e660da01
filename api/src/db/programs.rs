//! The installed PostgreSQL server programs (`initdb` and `postgres`) that a
//! private server runs on: where packages put them, and which major version
//! each install is.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// One install's programs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Programs {
    pub dir: PathBuf,
    /// PostgreSQL's major version, as its data directories name it in
    /// `PG_VERSION` (`15`).
    pub major: u32,
}

impl Programs {
    pub fn initdb(&self) -> PathBuf {
        self.dir.join("initdb")
    }

    pub fn postgres(&self) -> PathBuf {
        self.dir.join("postgres")
    }
}

/// Where packages put the server programs, after `PATH` and
/// `pg_config --bindir`: Debian's and Ubuntu's versioned directories, the
/// PGDG packages' (Fedora, RHEL), Fedora's own, Homebrew's and Postgres.app's.
const PLACES: &[&str] = &[
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/usr/bin",
    "/usr/local/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/opt/homebrew/bin",
    "/usr/local/opt/postgresql@*/bin",
    "/Applications/Postgres.app/Contents/Versions/*/bin",
];

/// Every install found, in the order looked at, each once.
pub fn installed() -> Vec<Programs> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(pg_config_bindir(&path));
    dirs.extend(PLACES.iter().flat_map(|place| expand(place)));
    found_in(dirs)
}

/// Where `installed` looks, for the error that says nothing was found.
pub fn places_looked() -> String {
    format!("PATH, `pg_config --bindir`, {}", PLACES.join(", "))
}

fn found_in(dirs: Vec<PathBuf>) -> Vec<Programs> {
    let mut seen = Vec::new();
    let mut found = Vec::new();
    for dir in dirs {
        let postgres = dir.join("postgres");
        if !dir.join("initdb").is_file() {
            continue;
        }
        // /usr/local/bin/postgres may be a link to /usr/lib/postgresql/15/bin's
        let Ok(real) = postgres.canonicalize() else {
            continue;
        };
        if seen.contains(&real) {
            continue;
        }
        seen.push(real);
        if let Some(major) = major_version(&postgres) {
            found.push(Programs { dir, major });
        }
    }
    found
}

/// The install for a data directory made by `made_by` (its `PG_VERSION`),
/// or for a new one the newest found.
pub fn choose(found: &[Programs], made_by: Option<&str>) -> Option<Programs> {
    match made_by {
        Some(version) => found
            .iter()
            .find(|p| p.major.to_string() == version.trim())
            .cloned(),
        // the first of the newest: max_by_key would keep the last
        None => found
            .iter()
            .fold(None::<&Programs>, |best, p| match best {
                Some(b) if b.major >= p.major => Some(b),
                _ => Some(p),
            })
            .cloned(),
    }
}

/// `postgres --version` says `postgres (PostgreSQL) 15.19 (Debian …)`.
/// Releases before 10 (two-part majors, no readiness in their lock file)
/// are not used.
fn major_version(postgres: &Path) -> Option<u32> {
    let out = Command::new(postgres).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split("(PostgreSQL)")
        .nth(1)?
        .split_whitespace()
        .next()?;
    let major: u32 = version.split(['.', 'b', 'r']).next()?.parse().ok()?;
    (major >= 10).then_some(major)
}

fn pg_config_bindir(path: &OsString) -> Option<PathBuf> {
    let pg_config = std::env::split_paths(path)
        .map(|dir| dir.join("pg_config"))
        .find(|file| file.is_file())?;
    let out = Command::new(pg_config).arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    out.status.success().then(|| PathBuf::from(dir.trim_end()))
}

/// The directories a pattern with one `*` component names, newest version
/// first (`postgresql/17` before `postgresql/15`), so an unversioned choice
/// takes the newest of equal rank.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let Some((parent, rest)) = pattern.split_once('*') else {
        return vec![PathBuf::from(pattern)];
    };
    let (parent, prefix) = parent.rsplit_once('/').unwrap_or(("", parent));
    let (suffix, below) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(entries) = std::fs::read_dir(if parent.is_empty() { "/" } else { parent }) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.len() > prefix.len() + suffix.len())
        .filter(|name| name.starts_with(prefix) && name.ends_with(suffix))
        .collect();
    names.sort_by_key(|name| {
        let version = &name[prefix.len()..name.len() - suffix.len()];
        std::cmp::Reverse(
            version
                .split('.')
                .next()
                .and_then(|v| v.parse::<u32>().ok()),
        )
    });
    names
        .into_iter()
        .map(|name| Path::new(parent).join(name).join(below))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn programs(dir: &str, major: u32) -> Programs {
        Programs {
            dir: PathBuf::from(dir),
            major,
        }
    }

    #[test]
    fn a_data_directory_gets_its_own_version_and_a_new_one_the_newest() {
        let found = [
            programs("/usr/bin", 15),
            programs("/usr/lib/postgresql/17/bin", 17),
            programs("/usr/lib/postgresql/15/bin", 15),
            programs("/opt/17", 17),
        ];
        assert_eq!(choose(&found, None), Some(found[1].clone()));
        assert_eq!(choose(&found, Some("15\n")), Some(found[0].clone()));
        assert_eq!(choose(&found, Some("16")), None);
        assert_eq!(choose(&found, Some("9.6")), None);
        assert_eq!(choose(&[], None), None);
    }

    #[test]
    fn nothing_is_found_where_no_install_is() {
        let empty = std::env::temp_dir().join(format!("tally-no-pg-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        assert_eq!(found_in(vec![empty.clone(), empty.join("missing")]), []);
        std::fs::remove_dir_all(&empty).unwrap();
    }

    #[test]
    fn a_versioned_place_lists_its_versions_newest_first() {
        let root = std::env::temp_dir().join(format!("tally-pg-places-{}", std::process::id()));
        for version in ["9.6", "15", "17", "x"] {
            std::fs::create_dir_all(root.join(format!("postgresql@{version}/bin"))).unwrap();
        }
        let pattern = format!("{}/postgresql@*/bin", root.display());
        let expanded: Vec<String> = expand(&pattern)
            .iter()
            .map(|dir| dir.strip_prefix(&root).unwrap().display().to_string())
            .collect();
        assert_eq!(
            expanded[..3],
            [
                "postgresql@17/bin",
                "postgresql@15/bin",
                "postgresql@9.6/bin"
            ]
        );
        assert_eq!(expanded.len(), 4);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
