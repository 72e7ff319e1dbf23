//! Multi-host, simulated on one machine (issue 13 part 4): two servers, each a forked
//! process serving a `MikobaseServer` on its own Unix socket, both on ONE PostgreSQL
//! database, each with two forked workers. The workers increment one shared counter in
//! transactions (running a round again when PostgreSQL refuses it as a retryable
//! conflict, D-P3) and race each other, across servers, on the same unique values (D-P4).
//! Then one server is killed with SIGKILL while its worker holds an open transaction with
//! uncommitted writes: the other server's workers finish with exact totals, the killed
//! server's writes never appear, and its workers get typed errors, not hangs. Skipped,
//! saying so, without PostgreSQL; under `CI=true` a missing PostgreSQL fails.
//!
//! Runs serially on the main thread (it forks).

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use caspian_ipc::mikobase::engine::{Engine, Storage};
use caspian_ipc::mikobase::{ClientError, Db, MikobaseServer};
use caspian_ipc::uds::ServerConfig;
use caspian_ipc_tests::postgres::{Cluster, Postgres};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde_json::{json, Value};

type Outcome = Result<(), Failed>;

/// The class whose `code` is unique: the workers of both servers race on the same codes.
const BADGE: &str = "example.org/crew/badge";

/// How many times a round refused as a retryable conflict is run again.
const RETRIES: usize = 200;

/// How long a worker may take to finish (or to fail, once its server is killed).
const WORKER_DEADLINE: Duration = Duration::from_secs(120);

fn main() {
    run_serially(vec![
        Trial::test(
            "two_servers_on_one_database_lose_no_increment_and_share_unique_values",
            two_servers_on_one_database_lose_no_increment_and_share_unique_values,
        ),
        Trial::test(
            "a_server_killed_mid_run_loses_its_uncommitted_writes_and_the_other_finishes",
            a_server_killed_mid_run_loses_its_uncommitted_writes_and_the_other_finishes,
        ),
    ])
}

/// A running cluster, or `None` when PostgreSQL is not installed (reported; an error
/// under `CI=true`, where it must be there).
fn cluster() -> Result<Option<Cluster>, Failed> {
    match Cluster::start().map_err(|e| e.to_string())? {
        Postgres::Running(cluster) => Ok(Some(cluster)),
        Postgres::Skipped(skipped) => {
            check(
                std::env::var("CI").as_deref() != Ok("true"),
                format!("{skipped}: on CI it must be there"),
            )?;
            skipped.report();
            Ok(None)
        }
    }
}

/// A forked server on the database `config`: it opens its own connection, after the fork.
fn server(config: &str) -> Result<ForkedServer, Failed> {
    let config = config.to_owned();
    Ok(ForkedServer::start(ServerConfig::default(), move || {
        let engine = Engine::open(Storage::Postgres(config), "rw")
            .map_err(|p| format!("open the database: {} {}", p.id, p.details))?;
        MikobaseServer::new(engine)
            .into_router()
            .map_err(|e| e.to_string())
    })?)
}

fn client(server: &ForkedServer) -> Db {
    caspian_ipc::mikobase::connect(server.dir.socket_path(), Some(server.token.as_str()))
}

/// Defines the badge class and creates the counter (through `server`); the counter's pk.
fn set_up(server: &ForkedServer) -> Result<String, Failed> {
    let db = client(server);
    db.q0(&json!({"action": "create", "class": "puck.uno/class", "bucket": {
        "name": BADGE,
        "fields": {"code": {"class": "string", "unique": true}},
    }}))
    .map_err(|e| format!("define {BADGE}: {e}"))?;
    let created = db
        .q0(&json!({"action": "create", "bucket": {"n": 0}}))
        .map_err(|e| format!("create the counter: {e}"))?;
    Ok(created["results"]["pk"]
        .as_str()
        .ok_or_else(|| format!("no pk in {created}"))?
        .to_owned())
}

/// Whether `error` is a conflict to run again (`storage-failed`, `retryable: true`).
fn retryable(error: &ClientError) -> bool {
    matches!(error, ClientError::Failed(f)
        if f.errors.first().is_some_and(|p| p.details["retryable"] == true))
}

/// The error's id (`transport`, `decode`, `encode` for errors that are not refusals).
fn error_id(error: &ClientError) -> String {
    match error {
        ClientError::Failed(f) => f.errors.first().map(|p| p.id.clone()).unwrap_or_default(),
        ClientError::Transport(_) => "transport".into(),
        ClientError::Decode(_) => "decode".into(),
        ClientError::Encode(_) => "encode".into(),
    }
}

/// The counter's value as `db` reads it (inside `tx` when given).
fn read_counter(db: &Db, pk: &str, tx: Option<&str>) -> Result<i64, ClientError> {
    let mut request = json!({"action": "select", "pk": pk});
    if let Some(tx) = tx {
        request["transaction"] = json!(tx);
    }
    let read = db.q0(&request)?;
    read["results"]["records"][0]["bucket"]["n"]
        .as_i64()
        .ok_or_else(|| ClientError::Decode(format!("no counter in {read}")))
}

/// One worker's run on its server: `rounds` times, one increment of the counter in a
/// transaction (a retryable conflict runs the round again, at most [`RETRIES`] times),
/// then one create of the badge `c<round>` that every worker races for. Stops at the
/// first other error. Its report: `increments` committed, `in_doubt` (a commit whose
/// answer never came), `won` and `lost` codes (with the loser's error id), `retries`,
/// and `error` (`{id, text}`) when it stopped early.
fn work(db: &Db, counter: &str, rounds: usize) -> Value {
    let mut tally = Tally::default();
    for round in 0..rounds {
        let mut done = false;
        for _ in 0..RETRIES {
            let mut committing = false;
            let result = db.in_transaction(|tx| {
                let n = read_counter(tx, counter, Some(tx.id()))?;
                tx.q0(&json!({"action": "update", "pk": counter, "bucket": {"n": n + 1},
                    "transaction": tx.id()}))?;
                committing = true;
                Ok::<_, ClientError>(())
            });
            match result {
                Ok(()) => {
                    tally.increments += 1;
                    done = true;
                    break;
                }
                Err(e) if retryable(&e) => tally.retries += 1,
                Err(e) => {
                    if committing && matches!(e, ClientError::Transport(_)) {
                        tally.in_doubt += 1;
                    }
                    return tally.stopped(error_id(&e), e.to_string());
                }
            }
        }
        if !done {
            return tally.stopped(
                "too-many-conflicts".into(),
                format!("round {round}: still conflicting after {RETRIES} tries"),
            );
        }
        let code = format!("c{round}");
        let mut decided = false;
        for _ in 0..RETRIES {
            match db.q0(&json!({"action": "create", "class": BADGE, "bucket": {"code": code}})) {
                Ok(_) => tally.won.push(json!(code)),
                Err(e) if retryable(&e) => {
                    tally.retries += 1;
                    continue;
                }
                Err(e) if error_id(&e) == "unique-violation" => {
                    tally.lost.push(json!([code, "unique-violation"]))
                }
                Err(e) => return tally.stopped(error_id(&e), e.to_string()),
            }
            decided = true;
            break;
        }
        if !decided {
            return tally.stopped(
                "too-many-conflicts".into(),
                format!("badge {code}: still conflicting after {RETRIES} tries"),
            );
        }
    }
    tally.report()
}

/// What a worker did so far (see [`work`]).
#[derive(Default)]
struct Tally {
    increments: u64,
    in_doubt: u64,
    retries: u64,
    won: Vec<Value>,
    lost: Vec<Value>,
}

impl Tally {
    fn report(&self) -> Value {
        json!({"increments": self.increments, "in_doubt": self.in_doubt, "won": self.won,
            "lost": self.lost, "retries": self.retries})
    }

    fn stopped(&self, id: String, text: String) -> Value {
        let mut report = self.report();
        report["error"] = json!({"id": id, "text": text});
        report
    }
}

/// A forked worker: `body` runs in the child (which connects after the fork), its report
/// goes up a pipe as one JSON line, and the child leaves with `_exit`.
struct Worker {
    name: String,
    pid: Option<Pid>,
    report: OwnedFd,
    /// How it ended, once reaped.
    status: Option<WaitStatus>,
}

fn fork_worker(name: &str, body: impl FnOnce(&mut std::fs::File) -> Value) -> Result<Worker, Failed> {
    let (read, write) = nix::unistd::pipe()?;
    // SAFETY: the test process is single-threaded (run_serially); the child only runs
    // `body`, writes its pipe and leaves with _exit.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Child => {
            drop(read);
            let mut out = std::fs::File::from(write);
            let report = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&mut out)))
                .unwrap_or_else(|_| json!({"error": {"id": "panic", "text": "the worker panicked"}}));
            let _ = writeln!(out, "{report}");
            let _ = out.flush();
            // SAFETY: leaves the forked child without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => Ok(Worker {
            name: name.to_owned(),
            pid: Some(child),
            report: read,
            status: None,
        }),
    }
}

impl Worker {
    /// Whether it is still running (not yet reaped).
    fn running(&mut self) -> bool {
        let Some(pid) = self.pid else { return false };
        match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => true,
            ended => {
                self.status = ended.ok();
                self.pid = None;
                false
            }
        }
    }

    /// Waits (bounded polling, `deadline`) for it to end and answers its report; killed
    /// and reaped, and an error, when it overruns.
    fn finish(&mut self, deadline: Duration) -> Result<Value, Failed> {
        let started = Instant::now();
        while self.running() {
            if started.elapsed() > deadline {
                self.kill();
                return Err(format!("{}: still running after {deadline:?} (a hang)", self.name).into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut text = String::new();
        std::fs::File::from(self.report.try_clone()?).read_to_string(&mut text)?;
        serde_json::from_str(text.trim())
            .map_err(|e| format!("{} ({:?}): report {text:?}: {e}", self.name, self.status).into())
    }

    fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads one line from `fd` within `deadline` (poll, then read); `None` at end of file.
fn read_line(fd: &OwnedFd, deadline: Duration) -> Result<Option<String>, Failed> {
    let started = Instant::now();
    let mut line = Vec::new();
    let mut file = std::fs::File::from(fd.try_clone()?);
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        check(!left.is_zero(), format!("no line within {deadline:?}"))?;
        let mut poll = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, left.as_millis().min(60_000) as i32) };
        if ready <= 0 {
            continue;
        }
        let mut byte = [0u8];
        match file.read(&mut byte)? {
            0 => return Ok(None),
            _ if byte[0] == b'\n' => return Ok(Some(String::from_utf8_lossy(&line).into_owned())),
            _ => line.push(byte[0]),
        }
    }
}

fn stopped_with(report: &Value) -> Option<&str> {
    report["error"]["id"].as_str()
}

/// The badges stored, as codes, through `db`.
fn stored_codes(db: &Db) -> Result<Vec<String>, Failed> {
    let all = db
        .q0(&json!({"action": "select", "class": BADGE, "limit": 10_000}))
        .map_err(|e| format!("select the badges: {e}"))?;
    Ok(all["results"]["records"]
        .as_array()
        .ok_or_else(|| format!("no records in {all}"))?
        .iter()
        .map(|r| r["bucket"]["code"].as_str().unwrap_or_default().to_owned())
        .collect())
}

/// Every code `c0..c<rounds>` is stored exactly once; no code was won twice; every stored
/// code was won by exactly one worker (give or take one in-doubt create); every loser was
/// told `unique-violation`.
fn check_uniques(stored: &[String], reports: &[Value], rounds: usize) -> Outcome {
    for round in 0..rounds {
        let code = format!("c{round}");
        let copies = stored.iter().filter(|c| **c == code).count();
        check(copies == 1, format!("{code} stored {copies} times"))?;
    }
    check(
        stored.len() == rounds,
        format!("{} badges stored: {stored:?}", stored.len()),
    )?;
    let mut wins = std::collections::BTreeMap::<String, usize>::new();
    for report in reports {
        for code in report["won"].as_array().into_iter().flatten() {
            *wins
                .entry(code.as_str().unwrap_or_default().to_owned())
                .or_default() += 1;
        }
        for lost in report["lost"].as_array().into_iter().flatten() {
            check(
                lost[1] == "unique-violation",
                format!("a loser was told {lost}, not unique-violation"),
            )?;
        }
    }
    for (code, n) in &wins {
        check(*n == 1, format!("{code} won {n} times"))?;
        check(stored.contains(code), format!("{code} won but not stored"))?;
    }
    Ok(())
}

fn sum(reports: &[Value], key: &str) -> i64 {
    reports.iter().map(|r| r[key].as_i64().unwrap_or(0)).sum()
}

/// Two servers, two workers each, on one database: the counter's total is exact (no
/// increment lost), each unique code is stored once, each loser is told `unique-violation`.
fn two_servers_on_one_database_lose_no_increment_and_share_unique_values() -> Outcome {
    let Some(cluster) = cluster()? else {
        return Ok(());
    };
    let rounds = 25;
    let (a, b) = (server(&cluster.config())?, server(&cluster.config())?);
    let counter = set_up(&a)?;
    let mut workers = Vec::new();
    for (name, server) in [("a0", &a), ("a1", &a), ("b0", &b), ("b1", &b)] {
        let (path, token) = (server.dir.socket_path(), server.token.clone());
        let counter = counter.clone();
        workers.push(fork_worker(name, move |_| {
            let db = caspian_ipc::mikobase::connect(path, Some(token.as_str()));
            work(&db, &counter, rounds)
        })?);
    }
    let mut reports = Vec::new();
    for worker in &mut workers {
        let report = worker.finish(WORKER_DEADLINE)?;
        check(
            stopped_with(&report).is_none(),
            format!("{} stopped: {report}", worker.name),
        )?;
        reports.push(report);
    }
    eprintln!(
        "retryable conflicts run again per worker: {:?}",
        reports.iter().map(|r| &r["retries"]).collect::<Vec<_>>()
    );
    let total = (4 * rounds) as i64;
    check(
        sum(&reports, "increments") == total,
        format!("reports: {reports:?}"),
    )?;
    for server in [&a, &b] {
        let n = read_counter(&client(server), &counter, None).map_err(|e| e.to_string())?;
        check(
            n == total,
            format!("the counter is {n}, not {total}: updates were lost"),
        )?;
        check_uniques(&stored_codes(&client(server))?, &reports, rounds)?;
    }
    for report in &reports {
        let (won, lost) = (report["won"].as_array(), report["lost"].as_array());
        let decided = won.map_or(0, Vec::len) + lost.map_or(0, Vec::len);
        check(decided == rounds, format!("every race decided: {report}"))?;
    }
    drop((workers, a, b));
    drop(cluster);
    check_nothing_left()
}

/// Server B is killed (SIGKILL) while its worker holds an open transaction with an
/// uncommitted create and counter update; server A's workers, mid-run, finish with exact
/// totals; B's uncommitted writes never appear; B's workers get typed errors in time.
fn a_server_killed_mid_run_loses_its_uncommitted_writes_and_the_other_finishes() -> Outcome {
    let Some(cluster) = cluster()? else {
        return Ok(());
    };
    let rounds = 40;
    let (a, mut b) = (server(&cluster.config())?, server(&cluster.config())?);
    let counter = set_up(&a)?;
    let mut workers = Vec::new();
    for (name, server) in [("a0", &a), ("a1", &a), ("b1", &b)] {
        let (path, token) = (server.dir.socket_path(), server.token.clone());
        let counter = counter.clone();
        workers.push(fork_worker(name, move |_| {
            let db = caspian_ipc::mikobase::connect(path, Some(token.as_str()));
            work(&db, &counter, rounds)
        })?);
    }
    // B's holder: one increment, then a transaction it never gets to commit.
    let (go_read, go_write) = nix::unistd::pipe()?;
    let (path, token) = (b.dir.socket_path(), b.token.clone());
    let held_counter = counter.clone();
    let (go_read_fd, go_write_fd) = (go_read.as_raw_fd(), go_write.as_raw_fd());
    let mut holder = fork_worker("b0 (holder)", move |out| {
        // SAFETY: in the child: its copies of the pipe's ends, owned here alone.
        let go_read = unsafe { OwnedFd::from_raw_fd(go_read_fd) };
        drop(unsafe { OwnedFd::from_raw_fd(go_write_fd) });
        let db = caspian_ipc::mikobase::connect(path, Some(token.as_str()));
        let warm_up = work(&db, &held_counter, 1);
        if stopped_with(&warm_up).is_some() {
            return warm_up;
        }
        // A conflict before the writes are in rolls back and runs again (bounded).
        let mut hold = || {
            let tx = db.begin()?;
            let n = read_counter(&tx, &held_counter, Some(tx.id()))?;
            tx.q0(
                &json!({"action": "update", "pk": held_counter, "bucket": {"n": n + 1000},
                "transaction": tx.id()}),
            )?;
            let doomed = tx.q0(&json!({"action": "create", "bucket": {"doomed": true},
                "transaction": tx.id()}))?;
            // Tell the parent the writes are in, uncommitted; wait for its go.
            let _ = writeln!(
                out,
                "held {}",
                doomed["results"]["pk"].as_str().unwrap_or_default()
            );
            let _ = out.flush();
            let _ = read_line(&go_read, WORKER_DEADLINE);
            let started = Instant::now();
            let committed = tx.commit();
            Ok::<_, ClientError>((committed, started.elapsed()))
        };
        let mut held = hold();
        for _ in 0..RETRIES {
            match &held {
                Err(e) if retryable(e) => held = hold(),
                _ => break,
            }
        }
        let mut report = warm_up;
        match held {
            Ok((Ok(_), _)) => report["error"] = json!({"id": "committed", "text": "the commit succeeded"}),
            Ok((Err(e), took)) => {
                report["commit_error"] = json!({"id": error_id(&e), "text": e.to_string(),
                    "ms": took.as_millis() as u64})
            }
            Err(e) => report["error"] = json!({"id": error_id(&e), "text": e.to_string()}),
        }
        report
    })?;
    drop(go_read);
    let line = read_line(&holder.report, WORKER_DEADLINE)?
        .ok_or("the holder ended before its transaction was open")?;
    let doomed = line
        .strip_prefix("held ")
        .filter(|pk| !pk.is_empty())
        .ok_or_else(|| format!("the holder did not open its transaction: {line}"))?
        .to_owned();
    let a_running = workers[..2]
        .iter_mut()
        .map(|w| w.running())
        .filter(|r| *r)
        .count();
    let killed = b.stop(Signal::SIGKILL);
    check(
        matches!(killed, Some(WaitStatus::Signaled(_, Signal::SIGKILL, _))),
        format!("server B: {killed:?}"),
    )?;
    check(
        a_running > 0,
        "server A's workers had finished before the kill: not mid-run",
    )?;
    let killed_at = Instant::now();
    drop(go_write); // the holder goes on: its commit meets a dead server
    let holder_report = holder.finish(Duration::from_secs(30))?;
    check(
        holder_report["commit_error"]["id"] == "transport",
        format!("the holder's commit on the killed server: {holder_report}"),
    )?;
    let b1 = workers[2].finish(Duration::from_secs(30))?;
    check(
        stopped_with(&b1) == Some("transport"),
        format!("B's other worker on the killed server: {b1}"),
    )?;
    check(
        killed_at.elapsed() < Duration::from_secs(30),
        format!("B's workers took {:?} to be told", killed_at.elapsed()),
    )?;
    let mut reports = vec![holder_report, b1];
    for worker in &mut workers[..2] {
        let report = worker.finish(WORKER_DEADLINE)?;
        check(
            stopped_with(&report).is_none(),
            format!("{} (server A) stopped: {report}", worker.name),
        )?;
        check(
            report["increments"] == rounds,
            format!("{} (server A) did not finish: {report}", worker.name),
        )?;
        reports.push(report);
    }
    eprintln!(
        "at the kill {a_running} of A's workers were running; increments per worker \
         (holder, b1, a0, a1): {:?}",
        reports.iter().map(|r| &r["increments"]).collect::<Vec<_>>()
    );
    let db = client(&a);
    let n = read_counter(&db, &counter, None).map_err(|e| e.to_string())?;
    let (sure, doubt) = (sum(&reports, "increments"), sum(&reports, "in_doubt"));
    check(
        (sure..=sure + doubt).contains(&n),
        format!("the counter is {n}, committed increments {sure} (+{doubt} in doubt): {reports:?}"),
    )?;
    let seen = db
        .q0(&json!({"action": "select", "pk": doomed}))
        .map_err(|e| e.to_string())?;
    check(
        seen["results"]["count"] == 0,
        format!("the killed server's uncommitted create is visible: {seen}"),
    )?;
    // A's workers raced every code to the end, so each is stored exactly once.
    check_uniques(&stored_codes(&db)?, &reports, rounds)?;
    drop((db, workers, a, b));
    drop(cluster);
    check_nothing_left()
}
