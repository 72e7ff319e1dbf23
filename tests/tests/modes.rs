//! Hot and cold records on the typed-record layer (D-M14): a cold connection answers
//! local copies written back by `save`, a hot one live proxies; a query overrides the
//! connection's mode; a run's workers get the mode the run was given. Runs serially on
//! the main thread (forks).

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{Fetched, InProcess, Mikobase, MikobaseClient, Mode, SelectRequest};
use caspian_ipc::Record;
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, Trial};
use serde::{Deserialize, Serialize};

type Outcome = Result<(), Failed>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Record)]
#[record(class = "example.org/modes/counter")]
struct Counter {
    name: String,
    value: u64,
}

fn main() {
    run_serially(vec![
        Trial::test(
            "a_cold_copy_changes_nothing_until_saved",
            a_cold_copy_changes_nothing_until_saved,
        ),
        Trial::test(
            "a_hot_connection_answers_live_proxies",
            a_hot_connection_answers_live_proxies,
        ),
        Trial::test(
            "a_query_overrides_the_connection_mode",
            a_query_overrides_the_connection_mode,
        ),
        Trial::test(
            "a_run_gives_its_workers_its_mode",
            a_run_gives_its_workers_its_mode,
        ),
    ])
}

fn store(mode: Mode) -> Result<MikobaseClient<InProcess<Engine>>, Failed> {
    let db = MikobaseClient::new(InProcess::new(Engine::memory()).with_mode(mode));
    db.records::<Counter>().define()?;
    Ok(db)
}

fn a_cold_copy_changes_nothing_until_saved() -> Outcome {
    let db = store(Mode::default())?;
    check(db.mode() == Mode::Cold, "cold is the default")?;
    let counters = db.records::<Counter>();
    let pk = counters
        .create(&Counter {
            name: "a".into(),
            value: 1,
        })?
        .pk()
        .to_owned();
    let Some(mut local) = counters.fetch(pk.clone())?.cold() else {
        return Err("a cold connection answers a local copy".into());
    };
    local.value = 7;
    check(counters.get(&pk)?.value == 1, "nothing sent before save")?;
    local.save()?;
    check(counters.get(&pk)?.value == 7, "saved")?;
    counters.at(pk.clone()).value().set(9u64)?;
    check(local.value == 7, "a local copy does not follow the store")?;
    local.refresh()?;
    check(local.value == 9, "until refreshed")
}

fn a_hot_connection_answers_live_proxies() -> Outcome {
    let db = store(Mode::Hot)?;
    let counters = db.records::<Counter>();
    counters.create(&Counter {
        name: "b".into(),
        value: 2,
    })?;
    let found = counters.query(&SelectRequest::default())?;
    check(found.len() == 1, format!("{} records", found.len()))?;
    let Some(Fetched::Hot(proxy)) = found.into_iter().next() else {
        return Err("a hot connection answers live proxies".into());
    };
    proxy.value().set(5u64)?; // one round trip, at once
    check(counters.get(proxy.pk())?.value == 5, "written at once")?;
    counters.update(
        proxy.pk(),
        &Counter {
            name: "b".into(),
            value: 6,
        },
    )?;
    check(proxy.value().get()? == 6, "and read live")
}

fn a_query_overrides_the_connection_mode() -> Outcome {
    let cold = store(Mode::Cold)?;
    cold.records::<Counter>().create(&Counter {
        name: "c".into(),
        value: 3,
    })?;
    let hot = cold
        .records::<Counter>()
        .in_mode(Mode::Hot)
        .query(&SelectRequest::default())?;
    check(matches!(hot.first(), Some(Fetched::Hot(_))), "hot for this query")?;
    let again = cold.records::<Counter>().query(&SelectRequest::default())?;
    check(
        matches!(again.first(), Some(Fetched::Cold(_))),
        "the connection stays cold",
    )?;
    let hot_db = store(Mode::Hot)?;
    let pk = hot_db
        .records::<Counter>()
        .create(&Counter {
            name: "d".into(),
            value: 4,
        })?
        .pk()
        .to_owned();
    let local = hot_db.records::<Counter>().in_mode(Mode::Cold).fetch(pk)?;
    check(matches!(local, Fetched::Cold(_)), "cold for this query")
}

fn a_run_gives_its_workers_its_mode() -> Outcome {
    let finished = Mikobase::new(2)
        .mode(Mode::Hot)
        .run(|_, db| -> Result<Mode, String> { Ok(db.mode()) })?;
    check(
        finished.values().all(|mode| *mode == Mode::Hot),
        format!("{:?}", finished.values().collect::<Vec<_>>()),
    )?;
    let default = Mikobase::new(1).run(|_, db| -> Result<Mode, String> { Ok(db.mode()) })?;
    check(
        default.values().all(|mode| *mode == Mode::Cold),
        "cold by default",
    )?;
    check_nothing_left()
}
