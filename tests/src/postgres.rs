//! A throwaway PostgreSQL cluster for tests: `initdb` in a fresh temporary directory, a
//! server listening only on a Unix socket in that directory (no TCP port), `fsync` off,
//! started by `pg_ctl` within a deadline, and stopped (`pg_ctl stop -m immediate`) and
//! removed when the [`Cluster`] drops.
//!
//! PostgreSQL refuses to run as root, so when this process is root (as CI is) the
//! cluster belongs to `nobody`: the directory is handed to it and `initdb` and `pg_ctl`
//! run with its uid and gid; as any other user they run as that user. Connections use
//! `trust` authentication as the superuser `postgres`: only processes that can reach the
//! 0700 directory can connect.
//!
//! When the binaries are not installed, [`Cluster::start`] answers [`Postgres::Skipped`]
//! rather than an error, so a test can say `skipped: PostgreSQL not installed (apt-get
//! install postgresql)` and pass; `.ci/run` installs them, so CI always runs the tests.
//!
//! ```no_run
//! use caspian_ipc_tests::postgres::{Cluster, Postgres};
//!
//! let cluster = match Cluster::start().expect("a cluster") {
//!     Postgres::Running(cluster) => cluster,
//!     Postgres::Skipped(skipped) => return skipped.report(),
//! };
//! println!("connect with {}", cluster.config());
//! ```

use std::fmt;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::unistd::{Gid, Uid, User};

/// What a test says when the binaries are missing.
pub const NOT_INSTALLED: &str = "PostgreSQL not installed (apt-get install postgresql)";

/// The superuser every cluster has (`initdb -U`).
pub const SUPERUSER: &str = "postgres";

/// The port the socket is named after (`.s.PGSQL.5432`): no TCP port is opened, and the
/// socket is in the cluster's own directory, so clusters never collide.
pub const PORT: u16 = 5432;

/// How long `pg_ctl start` may take before the start counts as failed.
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// The user a cluster belongs to when this process is root.
const UNPRIVILEGED: &str = "nobody";

/// Unix socket paths are at most 107 bytes; the socket's name takes 15 of them.
const SOCKET_DIR_MAX: usize = 92;

/// [`Cluster::start`]'s answer: a running cluster, or why the test cannot have one.
#[derive(Debug)]
pub enum Postgres {
    /// A running cluster.
    Running(Cluster),
    /// PostgreSQL is not installed: the test should [`Skipped::report`] and pass.
    Skipped(Skipped),
}

/// Why no cluster was started (the binaries are missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// What is missing and how to install it ([`NOT_INSTALLED`]).
    pub reason: String,
}

impl Skipped {
    /// Prints `skipped: <reason>` on stderr, past the test harness's capture (a passing
    /// test's captured output is not shown), so the skip is seen.
    pub fn report(&self) {
        let _ = writeln!(std::io::stderr(), "{self}");
    }
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "skipped: {}", self.reason)
    }
}

/// A cluster could not be started: which step failed, what it said, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterError {
    /// The step: `temp dir`, `user`, `initdb`, `configure`, `pg_ctl start`.
    pub step: &'static str,
    /// What failed (the command's output, or the OS error).
    pub detail: String,
    /// What to change.
    pub fix: String,
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "test PostgreSQL cluster: {} failed: {}; {}",
            self.step,
            self.detail.trim(),
            self.fix
        )
    }
}

impl std::error::Error for ClusterError {}

fn error(step: &'static str, detail: impl fmt::Display, fix: impl Into<String>) -> ClusterError {
    ClusterError {
        step,
        detail: detail.to_string(),
        fix: fix.into(),
    }
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the first directory of
/// `PATH` that has all three, else the newest `/usr/lib/postgresql/*/bin` (Debian's
/// layout, not on `PATH`); `None` when PostgreSQL is not installed.
pub fn find_binaries() -> Option<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect())
        .unwrap_or_default();
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    find_binaries_in(on_path.into_iter().chain(debian.into_iter().map(|(_, dir)| dir)))
}

/// The first of `dirs` that holds `initdb`, `pg_ctl` and `postgres`.
pub fn find_binaries_in(dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.into_iter().find(|dir| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|tool| dir.join(tool).is_file())
    })
}

/// A running throwaway cluster; stopped and removed on drop.
#[derive(Debug)]
pub struct Cluster {
    /// The temporary directory: the socket, the log, and `data/`.
    root: PathBuf,
    bin: PathBuf,
    /// The uid and gid the cluster's commands run with (when this process is root).
    run_as: Option<(Uid, Gid)>,
    /// Whether `pg_ctl start` was run (so a stop is due).
    started: bool,
}

impl Cluster {
    /// Starts a cluster with the installed binaries ([`find_binaries`]), or answers
    /// [`Postgres::Skipped`] when there are none.
    pub fn start() -> Result<Postgres, ClusterError> {
        Cluster::start_with(find_binaries(), START_DEADLINE)
    }

    /// Starts a cluster with the binaries in `bin` (`None`: skipped), `pg_ctl` waiting at
    /// most `deadline` for the server to accept connections.
    pub fn start_with(bin: Option<PathBuf>, deadline: Duration) -> Result<Postgres, ClusterError> {
        let Some(bin) = bin else {
            return Ok(Postgres::Skipped(Skipped {
                reason: NOT_INSTALLED.to_owned(),
            }));
        };
        let run_as = if Uid::effective().is_root() {
            let user = User::from_name(UNPRIVILEGED)
                .ok()
                .flatten()
                .ok_or_else(|| {
                    error(
                        "user",
                        format!("this process is root and there is no user `{UNPRIVILEGED}`"),
                        format!("PostgreSQL refuses to run as root: add the user `{UNPRIVILEGED}`, or run the tests as another user"),
                    )
                })?;
            Some((user.uid, user.gid))
        } else {
            None
        };
        let root = fresh_dir()?;
        // From here on, dropping `cluster` removes the directory (and stops the server).
        let mut cluster = Cluster {
            root,
            bin,
            run_as,
            started: false,
        };
        if let Some((uid, gid)) = run_as {
            nix::unistd::chown(&cluster.root, Some(uid), Some(gid)).map_err(|e| {
                error(
                    "temp dir",
                    format!("cannot give {} to `{UNPRIVILEGED}`: {e}", cluster.root.display()),
                    "run the tests where the temp dir allows chown (TMPDIR)",
                )
            })?;
        }
        cluster.initdb()?;
        cluster.configure()?;
        cluster.started = true;
        let secs = deadline.as_secs().max(1).to_string();
        let log = cluster.root.join("postgres.log");
        let started = cluster.run("pg_ctl", |c| {
            c.arg("start").arg("-D").arg(cluster.data()).arg("-l").arg(&log);
            c.args(["-w", "-t", &secs, "-s"]);
        });
        if let Err(mut e) = started {
            e.step = "pg_ctl start";
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            e.detail = format!("{} (server log: {})", e.detail.trim(), log.trim());
            e.fix = format!(
                "see the server log above; the server must accept connections within {}s",
                deadline.as_secs()
            );
            return Err(e);
        }
        Ok(Postgres::Running(cluster))
    }

    /// The directory the server's socket is in (libpq's `host`).
    pub fn socket_dir(&self) -> &Path {
        &self.root
    }

    /// The socket's port number (libpq's `port`; no TCP port is open).
    pub fn port(&self) -> u16 {
        PORT
    }

    /// The superuser to connect as (libpq's `user`; `trust` authentication, no password).
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The connection parameters in libpq's `key=value` form, for database `postgres`
    /// (the `postgres` crate's `Client::connect` takes it as is).
    pub fn config(&self) -> String {
        format!(
            "host={} port={PORT} user={SUPERUSER} dbname=postgres",
            self.root.display()
        )
    }

    /// The directory of the binaries this cluster runs.
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The cluster's data directory.
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn initdb(&self) -> Result<(), ClusterError> {
        self.run("initdb", |c| {
            c.arg("-D").arg(self.data());
            c.args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ]);
        })
    }

    /// Appends the test settings to `postgresql.conf` (later lines win): the socket in
    /// the cluster's directory and no TCP, no durability, a small footprint.
    fn configure(&self) -> Result<(), ClusterError> {
        let socket_dir = self.root.to_string_lossy().replace('\'', "''");
        let settings = format!(
            "\n# caspian-ipc-tests: a throwaway cluster\n\
             listen_addresses = ''\n\
             unix_socket_directories = '{socket_dir}'\n\
             port = {PORT}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 20\n\
             shared_buffers = 16MB\n"
        );
        let conf = self.data().join("postgresql.conf");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(|e| {
                error(
                    "configure",
                    format!("{}: {e}", conf.display()),
                    "initdb should have written it: see initdb's output",
                )
            })
    }

    /// Runs `tool` from the binaries' directory as the cluster's user, in its directory,
    /// with no input; its output becomes the error when it fails.
    fn run(&self, tool: &'static str, args: impl FnOnce(&mut Command)) -> Result<(), ClusterError> {
        let mut command = Command::new(self.bin.join(tool));
        args(&mut command);
        command
            .current_dir(&self.root)
            .env_remove("PGDATA")
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            // Dropping from root, std also clears the supplementary groups.
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        let output = command.output().map_err(|e| {
            error(
                tool,
                format!("cannot run {}: {e}", self.bin.join(tool).display()),
                "check the PostgreSQL installation (apt-get install postgresql)",
            )
        })?;
        if output.status.success() {
            return Ok(());
        }
        Err(error(
            tool,
            format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
            "see its output",
        ))
    }

    /// Stops the server at once (`-m immediate`); if `pg_ctl` cannot, kills the
    /// postmaster named in `postmaster.pid`.
    fn stop(&mut self) {
        if !std::mem::take(&mut self.started) {
            return;
        }
        let data = self.data();
        let stopped = self.run("pg_ctl", |c| {
            c.arg("stop").arg("-D").arg(&data);
            c.args(["-m", "immediate", "-w", "-t", "30", "-s"]);
        });
        if stopped.is_err() {
            let pid = std::fs::read_to_string(data.join("postmaster.pid"))
                .ok()
                .and_then(|text| text.lines().next()?.trim().parse::<i32>().ok());
            if let Some(pid) = pid.filter(|pid| *pid > 1) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A fresh 0700 directory under the temp dir, short enough for the socket's path.
fn fresh_dir() -> Result<PathBuf, ClusterError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let base = std::env::temp_dir();
    for _ in 0..100 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("caspian-pg-{}-{n}", std::process::id()));
        if dir.as_os_str().len() > SOCKET_DIR_MAX {
            return Err(error(
                "temp dir",
                format!("{} is too long for a Unix socket path", dir.display()),
                "set TMPDIR to a shorter directory (such as /tmp)",
            ));
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(error(
                    "temp dir",
                    format!("cannot create {}: {e}", dir.display()),
                    "make the temp dir (TMPDIR) writable",
                ))
            }
        }
    }
    Err(error(
        "temp dir",
        format!("100 names taken under {}", base.display()),
        "remove the leftover caspian-pg-* directories",
    ))
}
