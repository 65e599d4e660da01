//! A PostgreSQL of Tally's own, for when `DATABASE_URL` is unset. Tally
//! needs PostgreSQL (an order and its job commit together in it), and a
//! newcomer's machine has the server package installed but no server that
//! lets Tally in: so Tally runs one from the installed programs, in a data
//! directory of its own, on a Unix socket inside that directory only (no TCP
//! port, no password: nothing else on the machine can reach it).
//!
//! Every Tally process using one data directory (`serve`, `worker`,
//! `migrate`, …) shares the one server: each holds a shared lock on
//! `users.lock` while it runs, and whoever stops last (finding that lock
//! free) stops the server. A killed process leaves it running for the next
//! one; `tally database stop` stops it when no process uses it. Starting and
//! stopping take turns on `start.lock`, so a process starting while the last
//! one stops waits, then starts the server again.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid, User};

use super::programs::{self, Programs};

/// The cluster (PostgreSQL's data directory) inside Tally's.
const CLUSTER: &str = "postgres";
/// What PostgreSQL prints, appended across starts, beside the cluster.
const LOG: &str = "postgres.log";
/// The superuser `initdb` makes; trusted on the socket, the only way in.
pub const USER: &str = "postgres";
/// PostgreSQL's socket file for its default port, in the cluster directory.
const SOCKET: &str = ".s.PGSQL.5432";
/// `sun_path` holds 108 bytes with the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// A start may replay the WAL of a server that was killed.
const START_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum PrivateError {
    #[error(
        "PostgreSQL's server programs (initdb and postgres, version 10 or later) are not \
         installed: looked in {looked}. Install them (Debian, Ubuntu: `sudo apt install \
         postgresql`; Fedora: `sudo dnf install postgresql-server`; macOS: `brew install \
         postgresql@17`), or set DATABASE_URL to a running PostgreSQL"
    )]
    NoPrograms { looked: String },
    #[error(
        "the private database in {cluster} was made by PostgreSQL {made_by}, and this machine \
         has the server programs of PostgreSQL {installed} only. Install PostgreSQL \
         {made_by}'s server to use it, upgrade it with pg_upgrade, or move {data_dir} aside to \
         start with an empty one (nothing was changed)"
    )]
    OtherVersion {
        cluster: String,
        data_dir: String,
        made_by: String,
        installed: String,
    },
    #[error(
        "{cluster} holds files but no PostgreSQL data directory (it has no PG_VERSION): move it \
         aside, or set TALLY_DATA_DIR to another directory (nothing was changed)"
    )]
    NotACluster { cluster: String },
    #[error(
        "the private PostgreSQL's socket would be {socket}, longer than the {MAX_SOCKET_PATH} \
         bytes a Unix socket's path may have: set TALLY_DATA_DIR to a shorter path"
    )]
    SocketPathTooLong { socket: String },
    #[error(
        "PostgreSQL refuses to run as root, so Tally runs it as user {user}, who cannot enter \
         {dir}: set TALLY_DATA_DIR to a directory that user can reach (as root, the default is \
         /var/lib/tally)"
    )]
    Unreachable { user: String, dir: String },
    #[error("{doing} {path}: {source}{}", advice(source))]
    Io {
        doing: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("initdb could not make the private database in {cluster}: {output}")]
    Init { cluster: String, output: String },
    #[error("the private PostgreSQL in {cluster} did not start: {reason} (its log: {log})")]
    Start {
        cluster: String,
        reason: String,
        log: String,
    },
}

fn advice(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::StorageFull => " (the disk is full: free some space and start again)",
        _ => "",
    }
}

fn io(doing: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PrivateError {
    let path = path.display().to_string();
    move |source| PrivateError::Io {
        doing,
        path,
        source,
    }
}

/// The URL of `database` on the private server kept in `data_dir`: the
/// socket's directory as the host, which sqlx and libpq (psql) both read.
pub fn url(data_dir: &Path, database: &str) -> String {
    let socket_dir = data_dir.join(CLUSTER).to_string_lossy().into_owned();
    let host =
        percent_encoding::utf8_percent_encode(&socket_dir, percent_encoding::NON_ALPHANUMERIC);
    format!("postgres://{USER}@{host}/{database}")
}

/// A share of the private server: it runs at least as long as this does.
pub struct PrivateServer {
    data_dir: PathBuf,
    cluster: PathBuf,
    turns: File,
    share: File,
}

/// What `tally database stop` found.
#[derive(Debug, PartialEq, Eq)]
pub enum Stopped {
    Stopped,
    NotRunning,
    /// Tally processes still use it: it was left running.
    InUse,
}

impl PrivateServer {
    /// Makes the server the first time, starts it unless it runs, and takes
    /// a share in it. `settings` are PostgreSQL settings for a start
    /// (`-c name=value`); a running server keeps its own.
    pub fn open(data_dir: &Path, settings: &[(&str, &str)]) -> Result<Self, PrivateError> {
        let runner = Runner::for_this_process();
        let data_dir = make_data_dir(data_dir, &runner)?;
        let cluster = data_dir.join(CLUSTER);
        let socket = cluster.join(SOCKET);
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(PrivateError::SocketPathTooLong {
                socket: socket.display().to_string(),
            });
        }
        let turns = lock_file(&data_dir.join("start.lock"))?;
        let share = lock_file(&data_dir.join("users.lock"))?;
        turns.lock().map_err(io("locking", &data_dir))?;
        share.lock_shared().map_err(io("locking", &data_dir))?;
        let started = start_unless_running(&data_dir, &cluster, &runner, settings);
        let _ = turns.unlock();
        started?;
        Ok(Self {
            data_dir,
            cluster,
            turns,
            share,
        })
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn url(&self, database: &str) -> String {
        url(&self.data_dir, database)
    }

    /// Stops the server kept in `data_dir` unless a Tally process uses it.
    pub fn stop_unused(data_dir: &Path) -> Result<Stopped, PrivateError> {
        let cluster = data_dir.join(CLUSTER);
        if !cluster.exists() {
            return Ok(Stopped::NotRunning);
        }
        let turns = lock_file(&data_dir.join("start.lock"))?;
        let share = lock_file(&data_dir.join("users.lock"))?;
        turns.lock().map_err(io("locking", data_dir))?;
        if share.try_lock().is_err() {
            return Ok(Stopped::InUse);
        }
        Ok(match stop(&cluster)? {
            true => Stopped::Stopped,
            false => Stopped::NotRunning,
        })
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.share.unlock();
        if self.turns.lock().is_err() {
            return;
        }
        // free for the taking: no other process holds a share
        if self.share.try_lock().is_ok() {
            match stop(&self.cluster) {
                Ok(true) => tracing::info!(
                    cluster = %self.cluster.display(),
                    "stopped the private PostgreSQL: no Tally process uses it"
                ),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not stop the private PostgreSQL"),
            }
            let _ = self.share.unlock();
        }
        let _ = self.turns.unlock();
    }
}

/// Who runs PostgreSQL: this process's user, or, as root (containers, CI),
/// an unprivileged account, since PostgreSQL refuses root.
struct Runner {
    account: Option<User>,
}

impl Runner {
    fn for_this_process() -> Self {
        let account = Uid::effective().is_root().then(|| {
            ["postgres", "nobody"]
                .into_iter()
                .find_map(|name| User::from_name(name).ok().flatten())
        });
        Self {
            account: account.flatten(),
        }
    }

    fn name(&self) -> String {
        self.account
            .as_ref()
            .map_or_else(|| "this process's user".to_owned(), |a| a.name.clone())
    }

    /// `program` with none of Tally's environment (its secrets: JWT_SECRET,
    /// ADMIN_PASSWORD, …) but the search path and the time zone, which
    /// `initdb` writes into the server's settings.
    fn command(&self, program: &Path, cluster: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(
                ["PATH", "TZ"]
                    .into_iter()
                    .filter_map(|var| Some((var, std::env::var_os(var)?))),
            )
            .current_dir(cluster);
        if let Some(account) = &self.account {
            command.uid(account.uid.as_raw()).gid(account.gid.as_raw());
        }
        command
    }

    /// Hands `path` to the account (a no-op unless running as root).
    fn own(&self, path: &Path) -> Result<(), PrivateError> {
        match &self.account {
            Some(a) => std::os::unix::fs::chown(path, Some(a.uid.as_raw()), Some(a.gid.as_raw()))
                .map_err(io("handing over", path)),
            None => Ok(()),
        }
    }

    /// Whether the account may enter `dir` (checked on every ancestor).
    fn can_enter(&self, dir: &Path) -> bool {
        let Some(a) = &self.account else {
            return true;
        };
        dir.ancestors().all(|d| match d.metadata() {
            Ok(m) if Uid::from_raw(m.uid()) == a.uid => m.mode() & 0o100 != 0,
            Ok(m) if Gid::from_raw(m.gid()) == a.gid => m.mode() & 0o010 != 0,
            Ok(m) => m.mode() & 0o001 != 0,
            Err(_) => false,
        })
    }
}

/// Creates Tally's data directory when missing (only its owner may list it;
/// as root, the account running PostgreSQL may pass through it) and
/// returns it absolute.
fn make_data_dir(dir: &Path, runner: &Runner) -> Result<PathBuf, PrivateError> {
    if !dir.exists() {
        let mode = if runner.account.is_some() {
            0o711
        } else {
            0o700
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(dir)
            .map_err(io("creating", dir))?;
    }
    let dir = dir.canonicalize().map_err(io("opening", dir))?;
    if !runner.can_enter(&dir) {
        return Err(PrivateError::Unreachable {
            user: runner.name(),
            dir: dir.display().to_string(),
        });
    }
    Ok(dir)
}

fn lock_file(path: &Path) -> Result<File, PrivateError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("opening", path))
}

fn start_unless_running(
    data_dir: &Path,
    cluster: &Path,
    runner: &Runner,
    settings: &[(&str, &str)],
) -> Result<(), PrivateError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match state(cluster) {
            State::Ready => return Ok(()),
            // started or stopped by hand (`pg_ctl`) beside Tally
            State::Busy if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            State::Busy | State::Down => break,
        }
    }
    let programs = made_or_making(data_dir, cluster, runner)?;
    launch(data_dir, cluster, runner, &programs, settings)
}

/// The programs for the cluster, made by `initdb` the first time.
fn made_or_making(
    data_dir: &Path,
    cluster: &Path,
    runner: &Runner,
) -> Result<Programs, PrivateError> {
    let made_by = match std::fs::read_to_string(cluster.join("PG_VERSION")) {
        Ok(version) => Some(version.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io("reading", &cluster.join("PG_VERSION"))(e)),
    };
    let installed = programs::installed();
    let Some(programs) = programs::choose(&installed, made_by.as_deref()) else {
        return Err(match made_by {
            Some(made_by) if !installed.is_empty() => PrivateError::OtherVersion {
                cluster: cluster.display().to_string(),
                data_dir: data_dir.display().to_string(),
                made_by,
                installed: installed
                    .iter()
                    .map(|p| p.major.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            _ => PrivateError::NoPrograms {
                looked: programs::places_looked(),
            },
        });
    };
    if made_by.is_none() {
        init(cluster, runner, &programs)?;
    }
    Ok(programs)
}

fn init(cluster: &Path, runner: &Runner, programs: &Programs) -> Result<(), PrivateError> {
    match std::fs::read_dir(cluster).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            return Err(PrivateError::NotACluster {
                cluster: cluster.display().to_string(),
            });
        }
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(cluster)
                .map_err(io("creating", cluster))?;
        }
        Err(e) => return Err(io("opening", cluster)(e)),
    }
    runner.own(cluster)?;
    let began = Instant::now();
    let out = runner
        .command(&programs.initdb(), cluster)
        .arg("-D")
        .arg(cluster)
        .args(["-U", USER, "--auth=trust", "--encoding=UTF8", "--no-locale"])
        .stdin(Stdio::null())
        .output()
        .map_err(io("running", &programs.initdb()))?;
    if !out.status.success() {
        let output = String::from_utf8_lossy(&out.stderr);
        return Err(PrivateError::Init {
            cluster: cluster.display().to_string(),
            output: output.trim().replace('\n', " / "),
        });
    }
    tracing::info!(
        cluster = %cluster.display(),
        version = programs.major,
        took_ms = began.elapsed().as_millis() as u64,
        "made the private PostgreSQL's data directory"
    );
    Ok(())
}

fn launch(
    data_dir: &Path,
    cluster: &Path,
    runner: &Runner,
    programs: &Programs,
    settings: &[(&str, &str)],
) -> Result<(), PrivateError> {
    let log_path = data_dir.join(LOG);
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io("opening", &log_path))?;
    let logged_before = log.metadata().map_err(io("reading", &log_path))?.len();
    let mut command = runner.command(&programs.postgres(), cluster);
    command
        .arg("-D")
        .arg(cluster)
        .args(["-c", "listen_addresses="])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", list_item(cluster)))
        .args(["-c", "unix_socket_permissions=0700"]);
    for (name, value) in settings {
        command.arg("-c").arg(format!("{name}={value}"));
    }
    let began = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(io("opening", &log_path))?)
        .stderr(log)
        // its own process group: a Ctrl-C in the terminal is for Tally,
        // which stops the server itself when it is the last to go
        .process_group(0)
        .spawn()
        .map_err(io("running", &programs.postgres()))?;
    let failed = |reason: String| PrivateError::Start {
        cluster: cluster.display().to_string(),
        reason,
        log: log_path.display().to_string(),
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let State::Ready = state(cluster) {
            break;
        }
        if let Ok(Some(_)) = child.try_wait() {
            let said = complaints(&log_path, logged_before);
            return Err(failed(explain(&said, cluster)));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(failed(format!(
                "not ready after {} s",
                START_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    reap_when_it_exits(child);
    tracing::info!(
        cluster = %cluster.display(),
        version = programs.major,
        took_ms = began.elapsed().as_millis() as u64,
        "started the private PostgreSQL"
    );
    Ok(())
}

/// The server outlives the process that started it, which may stop it
/// too: its exit is collected, so it leaves no zombie behind meanwhile.
fn reap_when_it_exits(mut child: Child) {
    std::thread::spawn(move || child.wait());
}

/// A path as one item of a PostgreSQL list setting: in double quotes, so
/// commas and spaces in it are its own.
fn list_item(path: &Path) -> String {
    format!("\"{}\"", path.to_string_lossy().replace('"', "\"\""))
}

/// The lines a failed start logged at FATAL or above (else its last lines).
fn complaints(log: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = File::open(log) {
        use std::io::{Seek, SeekFrom};
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.read_to_string(&mut text);
    }
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let serious: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("FATAL:") || l.contains("PANIC:") || l.contains("HINT:"))
        .collect();
    let chosen = if serious.is_empty() { &lines } else { &serious };
    chosen[chosen.len().saturating_sub(3)..].join(" / ")
}

/// What a failed start's log means for whoever reads the error.
fn explain(said: &str, cluster: &Path) -> String {
    let what_to_do = if said.contains("postmaster.pid") && said.contains("already exists") {
        format!(
            ". If no PostgreSQL runs from {}, remove {} and start again",
            cluster.display(),
            cluster.join("postmaster.pid").display()
        )
    } else if said.contains("No space left on device") {
        ". The disk is full: free some space and start again".to_owned()
    } else {
        String::new()
    };
    format!("{said}{what_to_do}")
}

enum State {
    /// Accepting connections on its socket.
    Ready,
    /// Starting or stopping.
    Busy,
    Down,
}

/// Reads the server's lock file (`postmaster.pid`: its PID on line 1, its
/// status on line 8 since PostgreSQL 10) and tries its socket.
fn state(cluster: &Path) -> State {
    let Some((pid, status)) = lock_file_of(cluster) else {
        return State::Down;
    };
    if !alive(pid) {
        // left by a server that was killed: the next start replaces it
        return State::Down;
    }
    match status.as_str() {
        "ready" if UnixStream::connect(cluster.join(SOCKET)).is_ok() => State::Ready,
        "starting" | "stopping" => State::Busy,
        _ => State::Down,
    }
}

fn lock_file_of(cluster: &Path) -> Option<(Pid, String)> {
    let text = std::fs::read_to_string(cluster.join("postmaster.pid")).ok()?;
    let mut lines = text.lines();
    let pid = Pid::from_raw(lines.next()?.trim().parse().ok()?);
    let status = lines.nth(6).unwrap_or_default().trim().to_owned();
    Some((pid, status))
}

fn alive(pid: Pid) -> bool {
    // EPERM: it exists, run by someone else
    !matches!(signal::kill(pid, None), Err(nix::errno::Errno::ESRCH))
}

/// Stops a running server with a fast shutdown (sessions end, a
/// checkpoint); false when none ran. Only a server that answers on its
/// socket is signalled: a lock file's PID may belong to another program by
/// now.
fn stop(cluster: &Path) -> Result<bool, PrivateError> {
    if !matches!(state(cluster), State::Ready) {
        return Ok(false);
    }
    let Some((pid, _)) = lock_file_of(cluster) else {
        return Ok(false);
    };
    signal::kill(pid, Signal::SIGINT)
        .map_err(|e| io("stopping the server in", cluster)(e.into()))?;
    let deadline = Instant::now() + STOP_TIMEOUT;
    while alive(pid) && cluster.join("postmaster.pid").exists() {
        if Instant::now() > deadline {
            return Err(io("stopping the server in", cluster)(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("still running after {} s", STOP_TIMEOUT.as_secs()),
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_url_names_the_socket_directory_for_sqlx_and_psql() {
        let url = url(Path::new("/var/lib/tally, mine"), "tally");
        assert_eq!(
            url,
            "postgres://postgres@%2Fvar%2Flib%2Ftally%2C%20mine%2Fpostgres/tally"
        );
        let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
        assert_eq!(
            options.get_socket(),
            Some(Path::new("/var/lib/tally, mine/postgres").to_path_buf()).as_ref()
        );
        assert_eq!(options.get_database(), Some("tally"));
        assert_eq!(options.get_username(), "postgres");
    }

    #[test]
    fn a_path_is_one_item_of_a_list_setting() {
        assert_eq!(list_item(Path::new("/a, b")), r#""/a, b""#);
        assert_eq!(list_item(Path::new(r#"/a"b"#)), r#""/a""b""#);
    }

    #[test]
    fn a_failed_start_says_what_to_do() {
        let cluster = Path::new("/srv/tally/postgres");
        let held = explain(
            r#"FATAL:  lock file "postmaster.pid" already exists / HINT:  Is another postmaster (PID 7) running in data directory "/srv/tally/postgres"?"#,
            cluster,
        );
        assert!(
            held.ends_with(
                ". If no PostgreSQL runs from /srv/tally/postgres, remove \
                 /srv/tally/postgres/postmaster.pid and start again"
            ),
            "{held}"
        );
        let full = explain(
            "FATAL:  could not write lock file \"postmaster.pid\": No space left on device",
            cluster,
        );
        assert!(full.ends_with(". The disk is full: free some space and start again"));
    }

    #[test]
    fn no_programs_names_the_package_for_each_platform() {
        let message = PrivateError::NoPrograms {
            looked: programs::places_looked(),
        }
        .to_string();
        for install in [
            "sudo apt install postgresql",
            "sudo dnf install postgresql-server",
            "brew install postgresql@17",
            "/usr/lib/postgresql/*/bin",
            "DATABASE_URL",
        ] {
            assert!(message.contains(install), "{install}: {message}");
        }
    }

    #[test]
    fn a_socket_path_past_the_limit_is_refused_before_a_server_is_made() {
        let parent = std::env::temp_dir().join(format!("tally-long-{}", std::process::id()));
        let deep = parent.join("d".repeat(100));
        let Err(e) = PrivateServer::open(&deep, &[]) else {
            panic!("a 100-byte directory name was accepted");
        };
        assert!(matches!(e, PrivateError::SocketPathTooLong { .. }), "{e}");
        assert!(!deep.join(CLUSTER).exists());
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
