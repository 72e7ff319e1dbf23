//! The shared Mikobase across forked workers. Runs serially on the main thread (forks).

use std::time::{Duration, Instant};

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    mikobase, ClassFilter, ClientError, CommitRequest, CreateRequest, Mikobase, MikobaseServer,
    RollbackRequest, SelectRequest, SetFieldsRequest, TransactionRequest,
};
use caspian_ipc::uds::ServerConfig;
use caspian_ipc::Record;
use caspian_ipc::{Error, Supervision, WorkerEnd};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

type Outcome = Result<(), Failed>;

const SHIP: &str = "example.org/fleet/ship";

fn schema() -> Value {
    json!({"classes": [{
        "name": SHIP,
        "fields": {
            "name": {"class": "string", "required": true},
            "serial": {"class": "string", "unique": true}
        }
    }]})
}

fn bucket(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

fn ship(name: &str, serial: &str) -> CreateRequest {
    CreateRequest {
        class: Some(SHIP.into()),
        bucket: bucket(json!({"name": name, "serial": serial})),
        ..Default::default()
    }
}

/// Opens a transaction: the calling worker holds the store until it ends.
fn begin(db: &caspian_ipc::mikobase::Db) -> Result<String, String> {
    db.transaction(&TransactionRequest::default())
        .map(|answer| answer.results.transaction)
        .map_err(|e| e.to_string())
}

fn ships(worldlet: &Value) -> Vec<&Value> {
    worldlet["records"]
        .as_object()
        .map(|r| r.values().filter(|r| r["stack"]["a"]["class"] == SHIP).collect())
        .unwrap_or_default()
}

fn main() {
    run_serially(vec![
        Trial::test(
            "a_holder_past_the_maximum_hold_is_rolled_back_and_told",
            a_holder_past_the_maximum_hold_is_rolled_back_and_told,
        ),
        Trial::test(
            "a_waiter_told_busy_learns_who_holds_the_store",
            a_waiter_told_busy_learns_who_holds_the_store,
        ),
        Trial::test(
            "the_plain_function_returns_the_worldlet",
            the_plain_function_returns_the_worldlet,
        ),
        Trial::test("n_workers_times_k_creates", n_workers_times_k_creates),
        Trial::test(
            "a_store_on_postgresql_serves_the_workers",
            a_store_on_postgresql_serves_the_workers,
        ),
        Trial::test(
            "concurrent_unique_creates_have_one_winner",
            concurrent_unique_creates_have_one_winner,
        ),
        Trial::test(
            "uncommitted_writes_are_never_seen",
            uncommitted_writes_are_never_seen,
        ),
        Trial::test(
            "field_writes_from_many_workers_are_never_lost",
            field_writes_from_many_workers_are_never_lost,
        ),
        Trial::test(
            "derived_proxies_work_across_workers",
            derived_proxies_work_across_workers,
        ),
        Trial::test(
            "derived_field_writes_are_never_lost",
            derived_field_writes_are_never_lost,
        ),
        Trial::test("a_killed_holder_is_rolled_back", a_killed_holder_is_rolled_back),
        Trial::test(
            "a_killed_server_gives_typed_errors",
            a_killed_server_gives_typed_errors,
        ),
        Trial::test("listeners_run_in_the_server", listeners_run_in_the_server),
        Trial::test(
            "a_bad_schema_fails_before_any_worker",
            a_bad_schema_fails_before_any_worker,
        ),
        Trial::test("raw_q0_and_curl_with_the_token", raw_q0_and_curl_with_the_token).with_ignored_flag(
            std::process::Command::new("curl")
                .arg("--version")
                .output()
                .is_err(),
        ),
    ])
}

fn n_workers_times_k_creates() -> Outcome {
    let (workers, per) = (4, 25);
    let worldlet = Mikobase::new(workers)
        .schema(schema())
        .run(|worker, db| {
            for i in 0..per {
                db.create(&ship(
                    &format!("w{}-{i}", worker.index()),
                    &format!("{}-{i}", worker.index()),
                ))
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })?
        .worldlet;
    check(
        worldlet["format"] == "worldlet/1.0",
        format!("{}", worldlet["format"]),
    )?;
    check(
        ships(&worldlet).len() == workers * per,
        format!("{} ships", ships(&worldlet).len()),
    )?;
    check_nothing_left()
}

fn concurrent_unique_creates_have_one_winner() -> Outcome {
    let worldlet = Mikobase::new(4)
        .schema(schema())
        .run(
            |worker, db| match db.create(&ship(&format!("claimant {}", worker.index()), "NCC-1701")) {
                Ok(_) => Ok(()),
                Err(e) if e.id() == Some("unique-violation") => Ok(()),
                Err(e) => Err(format!("unexpected: {e}")),
            },
        )?
        .worldlet;
    check(
        ships(&worldlet).len() == 1,
        format!("{} winners", ships(&worldlet).len()),
    )
}

fn uncommitted_writes_are_never_seen() -> Outcome {
    let worldlet = Mikobase::new(2)
        .schema(schema())
        .run(|worker, db| {
            if worker.index() == 0 {
                let t = begin(&db)?;
                db.create(&CreateRequest {
                    transaction: Some(t.clone()),
                    ..ship("ghost", "G-1")
                })
                .map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(400));
                db.rollback(&RollbackRequest { transaction: t })
                    .map_err(|e| e.to_string())?;
                let t = begin(&db)?;
                db.create(&CreateRequest {
                    transaction: Some(t.clone()),
                    ..ship("real", "R-1")
                })
                .map_err(|e| e.to_string())?;
                db.commit(&CommitRequest { transaction: t })
                    .map_err(|e| e.to_string())?;
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(100));
                let started = Instant::now();
                // Parked behind worker 0's transaction: answered only after its rollback.
                let seen = db
                    .select(&SelectRequest {
                        class: Some(ClassFilter::One(SHIP.into())),
                        ..Default::default()
                    })
                    .map_err(|e| e.to_string())?;
                let waited = started.elapsed();
                let names: Vec<String> = seen
                    .results
                    .records
                    .iter()
                    .map(|r| r.bucket["name"].to_string())
                    .collect();
                if names.iter().any(|n| n.contains("ghost")) {
                    return Err(format!("saw an uncommitted write: {names:?}"));
                }
                if waited < Duration::from_millis(150) {
                    return Err(format!(
                        "was not held back by the open transaction (waited {waited:?})"
                    ));
                }
                Ok(())
            }
        })?
        .worldlet;
    let names: Vec<&Value> = ships(&worldlet).iter().map(|r| &r["bucket"]["name"]).collect();
    check(names == vec![&json!("real")], format!("{names:?}"))
}

/// Each worker writes its own field of one shared record, many times: `set_fields` is one
/// atomic request, so no worker's write is lost to another's (a read-modify-write through
/// `record_by_pk` + `update` would lose them).
/// The shared mikobase on a PostgreSQL database (D-P1): the workers' creates (one unique
/// serial raced by all) and field writes all land, and the store outlives the server.
fn a_store_on_postgresql_serves_the_workers() -> Outcome {
    use caspian_ipc::mikobase::engine::Storage;
    use caspian_ipc_tests::postgres::{Cluster, Postgres};
    let cluster = match Cluster::start().map_err(|e| e.to_string())? {
        Postgres::Running(cluster) => cluster,
        Postgres::Skipped(skipped) => {
            check(
                std::env::var("CI").as_deref() != Ok("true"),
                format!("{skipped}: on CI it must be there"),
            )?;
            skipped.report();
            return Ok(());
        }
    };
    let (workers, rounds) = (4, 10);
    let worldlet = Mikobase::new(workers)
        .storage(Storage::Postgres(cluster.config()))
        .schema(schema())
        .run(|worker, db| {
            let mut wins = 0;
            for round in 0..rounds {
                db.create(&ship(
                    &format!("w{}-{round}", worker.index()),
                    &format!("S-{}-{round}", worker.index()),
                ))
                .map_err(|e| e.to_string())?;
                match db.create(&ship("raced", &format!("R-{round}"))) {
                    Ok(_) => wins += 1,
                    Err(ClientError::Failed(f)) if f.errors[0].id == "unique-violation" => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok::<_, String>(wins)
        })?;
    let wins: usize = worldlet.workers.iter().map(|w| w.value).sum();
    check(
        wins == rounds,
        format!("each raced serial has one winner: {wins} wins"),
    )?;
    let ships = ships(&worldlet.worldlet);
    check(
        ships.len() == workers * rounds + rounds,
        format!("{} ships", ships.len()),
    )?;
    // The server is gone; the database keeps the store.
    let mut again =
        Engine::open(Storage::Postgres(cluster.config()), "r").map_err(|p| p.details.to_string())?;
    let count = again.by_class(SHIP)["results"]["count"].clone();
    check(
        count == json!(workers * rounds + rounds),
        format!("after the run: {count}"),
    )?;
    check_nothing_left()
}

fn field_writes_from_many_workers_are_never_lost() -> Outcome {
    let (workers, rounds) = (4, 20);
    let worldlet = Mikobase::new(workers)
        .schema(json!({"format": "worldlet/1.0", "records": {
            "the-ship": {"bucket": {"name": "Nostromo"}, "stack": {"shadow": {}, "a": {"class": "puck.uno/record"}}}
        }}))
        .run(|worker, db| {
            for round in 1..=rounds {
                db.set_fields(&SetFieldsRequest {
                    pk: "the-ship".into(),
                    fields: bucket(json!({ format!("w{}", worker.index()): round })),
                    transaction: None,
                })
                .map_err(|e| e.to_string())?;
            }
            Ok::<_, String>(())
        })?
        .worldlet;
    let ship = &worldlet["records"]["the-ship"]["bucket"];
    check(ship["name"] == "Nostromo", format!("{ship}"))?;
    for w in 0..workers {
        check(
            ship[format!("w{w}")] == rounds,
            format!("worker {w} lost writes: {ship}"),
        )?;
    }
    check_nothing_left()
}

fn a_killed_holder_is_rolled_back() -> Outcome {
    let started = Instant::now();
    let err = Mikobase::new(2)
        .schema(schema())
        .call_deadline(Duration::from_secs(20))
        .run(|worker, db| {
            if worker.index() == 0 {
                let t = begin(&db)?;
                db.create(&CreateRequest {
                    transaction: Some(t),
                    ..ship("doomed", "D-1")
                })
                .map_err(|e| e.to_string())?;
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(150));
                db.create(&ship("survivor", "S-1")).map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            }
        })
        .expect_err("worker 0 was killed");
    check(
        started.elapsed() < Duration::from_secs(10),
        format!("took {:?}", started.elapsed()),
    )?;
    let Error::WorkersFailed { state, failures, .. } = &err else {
        return Err(format!("unexpected {err}").into());
    };
    check(
        failures.len() == 1
            && failures[0].end
                == WorkerEnd::Signal {
                    signal: "SIGKILL".into(),
                },
        format!("{failures:?}"),
    )?;
    let names: Vec<&Value> = ships(state).iter().map(|r| &r["bucket"]["name"]).collect();
    check(names == vec![&json!("survivor")], format!("{names:?}"))?;
    check_nothing_left()
}

fn a_holder_past_the_maximum_hold_is_rolled_back_and_told() -> Outcome {
    let finished = Mikobase::new(2)
        .schema(schema())
        .max_hold(Some(Duration::from_millis(300)))
        .call_deadline(Duration::from_secs(10))
        .run(|worker, db| {
            if worker.index() == 0 {
                let t = begin(&db)?;
                db.create(&CreateRequest {
                    transaction: Some(t.clone()),
                    ..ship("doomed", "D-1")
                })
                .map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(1200));
                // Told on its next request, which is not applied...
                let next = db.create(&ship("late", "L-1"));
                if next.as_ref().err().and_then(|e| e.id()) != Some("transaction-expired") {
                    return Err(format!("the holder's next request after its hold: {next:?}"));
                }
                // ...and its transaction id says why it is gone.
                let commit = db.commit(&CommitRequest { transaction: t });
                if commit.as_ref().err().and_then(|e| e.id()) != Some("transaction-expired") {
                    return Err(format!("committing the expired transaction: {commit:?}"));
                }
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(100));
                // Served once the holder is cut at 300 ms, well within its 10 s deadline.
                db.create(&ship("survivor", "S-1")).map_err(|e| e.to_string())?;
                Ok::<_, String>(())
            }
        })?;
    let names: Vec<&Value> = ships(&finished.worldlet)
        .iter()
        .map(|r| &r["bucket"]["name"])
        .collect();
    check(names == vec![&json!("survivor")], format!("{names:?}"))?;
    check_nothing_left()
}

fn a_waiter_told_busy_learns_who_holds_the_store() -> Outcome {
    Mikobase::new(2)
        .schema(schema())
        .call_deadline(Duration::from_millis(400))
        .run(|worker, db| {
            if worker.index() == 0 {
                let t = begin(&db)?;
                std::thread::sleep(Duration::from_millis(1000));
                db.commit(&CommitRequest { transaction: t })
                    .map_err(|e| e.to_string())?;
                Ok(())
            } else {
                std::thread::sleep(Duration::from_millis(100));
                match db.create(&ship("waiter", "W-1")) {
                    Err(ClientError::Failed(failure)) if failure.id() == "transaction-busy" => {
                        let holder = &failure.errors[0].details["holder"];
                        if holder["worker"] == 0 && holder["pid"].as_i64().is_some_and(|pid| pid > 0) {
                            Ok(())
                        } else {
                            Err(format!("the busy answer does not name worker 0: {holder}"))
                        }
                    }
                    other => Err(format!("expected transaction-busy, got {other:?}")),
                }
            }
        })?;
    check_nothing_left()
}

fn a_killed_server_gives_typed_errors() -> Outcome {
    let started = Instant::now();
    let mut killed = false;
    let err = Mikobase::new(2)
        .supervise(|progress| {
            if !killed && progress.elapsed > Duration::from_millis(100) {
                let pid = nix::unistd::Pid::from_raw(progress.server_pid as i32);
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                killed = true;
            }
            Supervision::Continue
        })
        .run(|_, db| loop {
            if let Err(e) = db.select(&SelectRequest::default()) {
                return Err::<(), _>(format!("typed: {e:?}"));
            }
        })
        .expect_err("the server died");
    check(
        started.elapsed() < Duration::from_secs(10),
        format!("took {:?}", started.elapsed()),
    )?;
    let Error::ServerDied { failures, .. } = &err else {
        return Err(format!("unexpected {err}").into());
    };
    for f in failures {
        check(
            matches!(&f.end, WorkerEnd::Error { message } if message.contains("ServerGone") || message.contains("ConnectionLost")),
            format!("{f}"),
        )?;
    }
    check_nothing_left()
}

fn listeners_run_in_the_server() -> Outcome {
    let log = std::env::temp_dir().join(format!("mikobase-after-save-{}", std::process::id()));
    let log_path = log.clone();
    let worldlet = Mikobase::new(2)
        .schema(schema())
        .before_save(
            |change| match change.bucket.as_ref().and_then(|b| b.get("name")) {
                Some(name) if name == "forbidden" => Err("that name is not allowed".into()),
                _ => Ok(()),
            },
        )
        .after_save(move |change| {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
            {
                let _ = writeln!(f, "{} {}", change.action, change.pk.clone().unwrap_or_default());
            }
        })
        .run(|worker, db| {
            let vetoed = db
                .create(&ship("forbidden", &format!("F{}", worker.index())))
                .unwrap_err();
            if vetoed.id() != Some("rejected-by-listener") {
                return Err(format!("not vetoed: {vetoed}"));
            }
            db.create(&ship("fine", &format!("OK{}", worker.index())))
                .map_err(|e| e.to_string())?;
            Ok(())
        })?
        .worldlet;
    let lines = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    check(ships(&worldlet).len() == 2, "two allowed creates")?;
    check(
        lines.lines().filter(|l| l.starts_with("create ")).count() == 2,
        format!("after_save log: {lines:?}"),
    )
}

fn a_bad_schema_fails_before_any_worker() -> Outcome {
    let err = Mikobase::new(2)
        .schema(json!({"classes": [{"name": "no-dot-here"}]}))
        .run(|_, _| -> Result<(), String> { Err("a worker ran".into()) })
        .expect_err("refused");
    check(
        matches!(&err, Error::ServerStartup(m) if m.contains("schema")),
        format!("{err}"),
    )?;
    check_nothing_left()
}

fn raw_q0_and_curl_with_the_token() -> Outcome {
    let mut server = ForkedServer::start(ServerConfig::default(), || {
        MikobaseServer::new(Engine::memory())
            .into_router()
            .map_err(|e| e.to_string())
    })?;
    let (dir, token) = (&server.dir, server.token.clone());
    let db = caspian_ipc::mikobase::connect(dir.socket_path(), Some(token.as_str()));
    let created = db
        .q0(&json!({"action": "create", "bucket": {"via": "raw q0"}}))
        .map_err(|e| e.to_string())?;
    let socket = dir.socket_path().to_str().ok_or("path")?.to_owned();
    let curl = |auth: bool| -> Result<String, Failed> {
        let mut c = std::process::Command::new("curl");
        c.args([
            "-s",
            "-i",
            "--unix-socket",
            &socket,
            "-X",
            "POST",
            "-d",
            r#"{"action": "select"}"#,
            "http://localhost/q0",
        ]);
        if auth {
            c.args(["-H", &format!("Authorization: Bearer {}", token.as_str())]);
        }
        Ok(String::from_utf8_lossy(&c.output()?.stdout).into_owned())
    };
    let with = curl(true)?;
    let without = curl(false)?;
    // Not POST: the 405 is a Mikobase envelope, like every refusal of this server.
    let client = caspian_ipc::uds::Client::new(dir.socket_path(), Some(token.clone()), Default::default());
    let get = client.send(caspian_ipc::uds::http::Method::GET, "/q0", None)?;
    let unknown = client.send(
        caspian_ipc::uds::http::Method::POST,
        "/no_such_operation",
        Some(b"{}".to_vec()),
    )?;
    server.stop(nix::sys::signal::Signal::SIGTERM);
    check(created["success"] == true, created.to_string())?;
    check(
        with.starts_with("HTTP/1.1 200") && with.contains("raw q0"),
        with.clone(),
    )?;
    check(without.starts_with("HTTP/1.1 401"), without.clone())?;
    let body = get.json()?;
    check(
        get.status == 405 && get.header("allow") == Some("POST") && body["success"] == false,
        format!("GET: {} {body}", get.status),
    )?;
    let body = unknown.json()?;
    check(
        unknown.status == 404 && body["success"] == false,
        format!("unknown operation: {} {body}", unknown.status),
    )
}

fn the_plain_function_returns_the_worldlet() -> Outcome {
    let finished = mikobase(3, |worker, db| {
        db.q0(&json!({"action": "create", "bucket": {"worker": worker.index(), "pid": std::process::id()}}))
            .map(drop)
    })?;
    let worldlet = &finished.worldlet;
    let indices: Vec<usize> = finished.workers.iter().map(|w| w.index).collect();
    check(indices == [0, 1, 2], format!("{:?}", finished.workers))?;
    for outcome in &finished.workers {
        let wrote = worldlet["records"]
            .as_object()
            .into_iter()
            .flat_map(|r| r.values())
            .find(|r| r["bucket"]["worker"] == outcome.index);
        check(
            wrote.is_some_and(|r| r["bucket"]["pid"] == outcome.pid),
            format!(
                "worker {} reported pid {}: {worldlet}",
                outcome.index, outcome.pid
            ),
        )?;
    }
    let records = worldlet["records"].as_object().ok_or("records")?;
    check(records.len() == 3, format!("{worldlet}"))?;
    check(
        records
            .values()
            .all(|r| r["stack"]["a"]["class"] == "puck.uno/record"),
        "default class",
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/fleet/officer")]
struct Officer {
    #[record(unique)]
    serial: String,
    rank: String,
    #[record(one_of("alpha", "beta", "gamma"), default = "alpha")]
    watch: String,
}

fn officer(serial: String) -> Officer {
    Officer {
        serial,
        rank: "Ensign".into(),
        watch: "alpha".into(),
    }
}

fn officers(worldlet: &Value) -> Vec<&Value> {
    worldlet["records"]
        .as_object()
        .map(|r| {
            r.values()
                .filter(|r| r["stack"]["a"]["class"] == Officer::CLASS)
                .map(|r| &r["bucket"])
                .collect()
        })
        .unwrap_or_default()
}

/// Every worker defines the class (idempotent), then creates, reads, selects, updates,
/// deletes and writes single fields through derived proxies, all at once.
fn derived_proxies_work_across_workers() -> Outcome {
    let workers = 4;
    let worldlet = Mikobase::new(workers)
        .run(|worker, db| -> Result<(), Box<dyn std::error::Error>> {
            let officers = db.records::<Officer>();
            officers.define()?;
            let serial = |k: usize| format!("w{}-{k}", worker.index());
            let first = officers.create(&officer(serial(0)))?;
            let second = officers.create(&officer(serial(1)))?;
            let third = officers.create(&officer(serial(2)))?;
            first.rank().set("Lieutenant")?;
            officers.update(
                second.pk(),
                &Officer {
                    watch: "gamma".into(),
                    ..officer(serial(1))
                },
            )?;
            third.delete()?;
            let mine: Vec<Officer> = officers
                .all()?
                .into_iter()
                .map(|(_, o)| o)
                .filter(|o| o.serial.starts_with(&format!("w{}-", worker.index())))
                .collect();
            let expected = vec![
                Officer {
                    rank: "Lieutenant".into(),
                    ..officer(serial(0))
                },
                Officer {
                    watch: "gamma".into(),
                    ..officer(serial(1))
                },
            ];
            if mine != expected {
                return Err(format!("worker {} sees {mine:?}", worker.index()).into());
            }
            match first.watch().set("delta") {
                Err(e) if e.id() == Some("validation-failed") => {}
                other => return Err(format!("an off-list watch was not refused: {other:?}").into()),
            }
            match officers.create(&officer(serial(0))) {
                Err(e) if e.id() == Some("unique-violation") => {}
                other => return Err(format!("a duplicate serial was not refused: {other:?}").into()),
            }
            Ok(())
        })?
        .worldlet;
    let stored = officers(&worldlet);
    check(stored.len() == 2 * workers, format!("{} officers", stored.len()))?;
    for w in 0..workers {
        let find = |k: usize| stored.iter().find(|o| o["serial"] == format!("w{w}-{k}"));
        check(
            find(0).is_some_and(|o| o["rank"] == "Lieutenant"),
            format!("w{w}-0: {:?}", find(0)),
        )?;
        check(
            find(1).is_some_and(|o| o["watch"] == "gamma" && o["rank"] == "Ensign"),
            format!("w{w}-1: {:?}", find(1)),
        )?;
        check(find(2).is_none(), format!("w{w}-2 was deleted: {:?}", find(2)))?;
    }
    let definitions = worldlet["records"]
        .as_object()
        .map_or(0, |r| r.values().filter(|r| r["name"] == Officer::CLASS).count());
    check(definitions == 1, format!("{definitions} class definitions"))?;
    check_nothing_left()
}

/// One key per worker, as a struct.
#[derive(Debug, Serialize, Deserialize, Record)]
#[record(class = "example.org/fleet/roster")]
struct Roster {
    w0: u32,
    w1: u32,
    w2: u32,
    w3: u32,
}

/// Each worker writes its own key of one shared record through its field accessor: one
/// `set_fields` per write, so no worker's writes are lost to another's.
fn derived_field_writes_are_never_lost() -> Outcome {
    let rounds = 20;
    let mut definition = Roster::class_definition();
    definition["class"] = json!("puck.uno/class");
    let worldlet = Mikobase::new(4)
        .schema(json!({"format": "worldlet/1.0", "records": {
            "roster-class": definition,
            "the-roster": {"bucket": {"w0": 0, "w1": 0, "w2": 0, "w3": 0},
                "stack": {"shadow": {}, "a": {"class": Roster::CLASS}}}
        }}))
        .run(|worker, db| -> Result<(), Box<dyn std::error::Error>> {
            let roster = db.records::<Roster>().at("the-roster");
            let mine = match worker.index() {
                0 => roster.w0(),
                1 => roster.w1(),
                2 => roster.w2(),
                _ => roster.w3(),
            };
            for round in 1..=rounds {
                mine.set(round)?;
                let read = mine.get()?;
                if read != round {
                    return Err(format!("worker {} wrote {round}, read {read}", worker.index()).into());
                }
            }
            Ok(())
        })?
        .worldlet;
    let roster = &worldlet["records"]["the-roster"]["bucket"];
    check(
        *roster == json!({"w0": rounds, "w1": rounds, "w2": rounds, "w3": rounds}),
        format!("lost writes: {roster}"),
    )?;
    check_nothing_left()
}
