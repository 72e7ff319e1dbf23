//! Transactions as scoped handles (`MikobaseClient::begin`, `in_transaction`): commit,
//! rollback on drop, on error and on panic, nesting, the documents' keep-going commit
//! (`checkpoint`), the typed record proxies inside a handle, forked workers, and a handle
//! whose connection is lost. Runs serially on the main thread (forks).

use std::panic::{catch_unwind, AssertUnwindSafe};

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    ClientError, CreateRequest, InProcess, Mikobase, MikobaseClient, RecordByPkRequest, SelectRequest,
    Transport, UdsTransport, UpdateRequest,
};
use caspian_ipc::uds::{ClientConfig, Response, Router, ServerConfig};
use caspian_ipc::{Error, Record};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

type Outcome = Result<(), Failed>;

fn main() {
    run_serially(vec![
        Trial::test(
            "a_committed_handle_keeps_its_work",
            a_committed_handle_keeps_its_work,
        ),
        Trial::test(
            "a_dropped_handle_rolls_back_its_work",
            a_dropped_handle_rolls_back_its_work,
        ),
        Trial::test(
            "the_closure_commits_ok_and_rolls_back_err_and_panic",
            the_closure_commits_ok_and_rolls_back_err_and_panic,
        ),
        Trial::test(
            "nested_handles_undo_only_their_own",
            nested_handles_undo_only_their_own,
        ),
        Trial::test(
            "a_checkpoint_commits_and_goes_on",
            a_checkpoint_commits_and_goes_on,
        ),
        Trial::test(
            "typed_record_proxies_run_inside_the_handle",
            typed_record_proxies_run_inside_the_handle,
        ),
        Trial::test(
            "forked_workers_increment_in_handles_exactly",
            forked_workers_increment_in_handles_exactly,
        ),
        Trial::test(
            "a_handle_whose_connection_is_lost_refuses_to_go_on",
            a_handle_whose_connection_is_lost_refuses_to_go_on,
        ),
    ])
}

type Local = MikobaseClient<InProcess<Engine>>;

fn local() -> Local {
    MikobaseClient::new(InProcess::new(Engine::memory()))
}

fn note(n: u64) -> CreateRequest {
    CreateRequest {
        bucket: json!({ "n": n }).as_object().cloned().unwrap_or_default(),
        ..Default::default()
    }
}

/// The `n` of every record, in insertion order.
fn ns<T: Transport>(db: &MikobaseClient<T>) -> Result<Vec<u64>, Failed> {
    let records = db.select(&SelectRequest::default())?.results.records;
    Ok(records
        .iter()
        .filter_map(|r| r.bucket.get("n")?.as_u64())
        .collect())
}

fn a_committed_handle_keeps_its_work() -> Outcome {
    let db = local();
    let tx = db.begin()?;
    check(!tx.id().is_empty(), "a transaction id")?;
    tx.create(&note(1))?;
    tx.create(&note(2))?;
    let ended = tx.commit()?;
    check(ended.committed, format!("{ended:?}"))?;
    check(ns(&db)? == [1, 2], format!("{:?}", ns(&db)?))
}

fn a_dropped_handle_rolls_back_its_work() -> Outcome {
    let db = local();
    db.create(&note(0))?;
    {
        let tx = db.begin()?;
        tx.create(&note(1))?;
        check(ns(&tx)? == [0, 1], "the handle sees its own write")?;
    } // dropped without commit
    check(ns(&db)? == [0], format!("after the drop: {:?}", ns(&db)?))?;
    let tx = db.begin()?;
    tx.create(&note(2))?;
    let ended = tx.rollback()?;
    check(!ended.committed, format!("{ended:?}"))?;
    check(ns(&db)? == [0], format!("after the rollback: {:?}", ns(&db)?))
}

#[derive(Debug)]
struct Refused(String);

impl From<ClientError> for Refused {
    fn from(e: ClientError) -> Self {
        Refused(e.to_string())
    }
}

fn the_closure_commits_ok_and_rolls_back_err_and_panic() -> Outcome {
    let db = local();
    let pk = db.in_transaction(|tx| tx.create(&note(1)).map(|a| a.results.pk))?;
    check(!pk.is_empty(), "the closure's value comes back")?;
    let refused: Result<(), Refused> = db.in_transaction(|tx| {
        tx.create(&note(2))?;
        Err(Refused("changed my mind".into()))
    });
    check(
        matches!(&refused, Err(Refused(why)) if why == "changed my mind"),
        format!("{refused:?}"),
    )?;
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {})); // the planned panic need not print
    let panicked = catch_unwind(AssertUnwindSafe(|| {
        db.in_transaction(|tx| -> Result<(), ClientError> {
            tx.create(&note(3))?;
            panic!("a bug in the middle of a transaction");
        })
    }));
    std::panic::set_hook(quiet);
    check(panicked.is_err(), "the panic goes on")?;
    check(
        ns(&db)? == [1],
        format!("only the committed write stays: {:?}", ns(&db)?),
    )?;
    // The store is usable after the panic: no transaction was left open.
    db.in_transaction(|tx| tx.create(&note(4)).map(drop))?;
    check(ns(&db)? == [1, 4], format!("{:?}", ns(&db)?))
}

fn nested_handles_undo_only_their_own() -> Outcome {
    let db = local();
    let outer = db.begin()?;
    outer.create(&note(1))?;
    {
        let inner = outer.begin()?;
        check(inner.id() != outer.id(), "a nested transaction has its own id")?;
        inner.create(&note(2))?;
        // dropped: rolled back
    }
    let inner = outer.begin()?;
    inner.create(&note(3))?;
    inner.commit()?;
    outer.commit()?;
    check(ns(&db)? == [1, 3], format!("{:?}", ns(&db)?))?;

    // An inner commit is undone with its outer transaction.
    let outer = db.begin()?;
    let inner = outer.begin()?;
    inner.create(&note(4))?;
    inner.commit()?;
    drop(outer);
    check(ns(&db)? == [1, 3], format!("{:?}", ns(&db)?))
}

fn a_checkpoint_commits_and_goes_on() -> Outcome {
    let db = local();
    let mut tx = db.begin()?;
    let first = tx.id().to_owned();
    tx.create(&note(1))?;
    let ended = tx.checkpoint()?;
    check(
        ended.committed && ended.transaction == first,
        format!("{ended:?}"),
    )?;
    check(tx.id() != first, "the handle goes on in a new transaction")?;
    tx.create(&note(2))?;
    drop(tx);
    check(
        ns(&db)? == [1],
        format!("the work before the checkpoint stays: {:?}", ns(&db)?),
    )
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/tx/counter")]
struct Counter {
    #[record(required, unique)]
    name: String,
    value: u64,
}

fn typed_record_proxies_run_inside_the_handle() -> Outcome {
    let db = local();
    db.records::<Counter>().define()?;
    {
        let tx = db.begin()?;
        let counters = tx.records::<Counter>();
        let made = counters.create(&Counter {
            name: "a".into(),
            value: 1,
        })?;
        made.value().set(5u64)?;
        check(counters.get(made.pk())?.value == 5, "the handle sees its writes")?;
    }
    check(
        db.records::<Counter>().all()?.is_empty(),
        "rolled back with the handle",
    )?;
    db.in_transaction(|tx| {
        tx.records::<Counter>()
            .create(&Counter {
                name: "b".into(),
                value: 2,
            })
            .map(drop)
    })
    .map_err(|e: caspian_ipc::mikobase::record::RecordError| e.to_string())?;
    let all = db.records::<Counter>().all()?;
    check(all.len() == 1 && all[0].1.name == "b", format!("{all:?}"))
}

/// Reads the counter's value and writes it back plus one, inside `tx`.
fn increment<T: Transport>(db: &MikobaseClient<T>, pk: &str) -> Result<(), ClientError> {
    let record = db.record_by_pk(&RecordByPkRequest { pk: pk.into() })?.results;
    let value = record.bucket.get("value").and_then(Value::as_u64).unwrap_or(0);
    let mut bucket: Map<String, Value> = record.bucket;
    bucket.insert("value".into(), json!(value + 1));
    db.update(&UpdateRequest {
        pk: pk.into(),
        bucket: Some(bucket),
        ..Default::default()
    })?;
    Ok(())
}

fn forked_workers_increment_in_handles_exactly() -> Outcome {
    let (workers, rounds) = (4u64, 25u64);
    let finished = Mikobase::new(workers as usize).run(|worker, db| -> Result<(), String> {
        let text = |e: ClientError| e.to_string();
        // Worker 0 creates the counter; the others find it by selecting until it is there.
        let pk = if worker.index() == 0 {
            db.create(&note(0)).map_err(text)?.results.pk
        } else {
            let mut found = None;
            for _ in 0..2000 {
                if let Some(record) = db
                    .select(&SelectRequest::default())
                    .map_err(text)?
                    .results
                    .records
                    .first()
                {
                    found = Some(record.pk.clone());
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            found.ok_or("the counter never appeared")?
        };
        for round in 0..rounds {
            // Every fifth round fails after its write: the handle must undo it.
            let outcome: Result<(), Refused> = db.in_transaction(|tx| {
                increment(tx, &pk)?;
                if round % 5 == 4 {
                    return Err(Refused("planned failure".into()));
                }
                Ok(())
            });
            match outcome {
                Ok(()) => {}
                Err(Refused(why)) if why == "planned failure" => {}
                Err(Refused(other)) => return Err(other),
            }
        }
        Ok(())
    })?;
    let records: Vec<&Value> = finished.worldlet["records"]
        .as_object()
        .map(|r| r.values().collect())
        .unwrap_or_default();
    let counter = records
        .iter()
        .find_map(|r| r["bucket"]["n"].as_u64().map(|_| &r["bucket"]));
    let value = counter.and_then(|c| c.get("value")).and_then(Value::as_u64);
    let expected = workers * (rounds - rounds / 5);
    check(
        value == Some(expected),
        format!("counter {value:?}, expected {expected} (no lost update, every failed round undone)"),
    )?;
    check_nothing_left()
}

/// A server whose every answer closes the connection: a transaction begun on it loses
/// its connection at once.
fn closing_server() -> Result<ForkedServer, Error> {
    ForkedServer::start(ServerConfig::default(), || {
        Router::builder(())
            .post("/q0", |_: &mut (), _| {
                let begun = json!({"success": true, "results": {"transaction": "tx1"}, "errors": []});
                Ok(Response::json(200, &begun).with_header("connection", "close"))
            })
            .build()
            .map_err(|e| e.to_string())
    })
}

fn a_handle_whose_connection_is_lost_refuses_to_go_on() -> Outcome {
    let server = closing_server()?;
    let db = MikobaseClient::new(UdsTransport::new(server.client(ClientConfig::default())));
    let tx = db.begin()?;
    let refused = tx.create(&note(1));
    check(
        matches!(
            refused,
            Err(ClientError::Transport(Error::TransactionLost { .. }))
        ),
        format!("a call after the connection closed: {refused:?}"),
    )?;
    let again = tx.select(&SelectRequest::default());
    check(
        matches!(again, Err(ClientError::Transport(Error::TransactionLost { .. }))),
        format!("every later call in the handle: {again:?}"),
    )?;
    drop(tx);
    // Released: a new transaction goes out on a new connection.
    let next = db.begin()?;
    check(next.id() == "tx1", "a new handle works after the lost one")?;
    drop(next);
    drop(server);
    check_nothing_left()
}
