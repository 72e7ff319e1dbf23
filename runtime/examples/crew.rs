//! Typed records in a shared Mikobase: forked workers enlist officers concurrently (one
//! derived `Officer` class, a unique serial), query their ship's roster, promote through a
//! field accessor, and try to enlist a serial that is already taken; the parent prints a
//! summary of the store it gets back.
//!
//! ```text
//! cargo run --release --example crew -- [--workers N] [--per-worker K]
//! ```
//!
//! Prints the summary as one JSON object on stdout.

use std::collections::BTreeMap;
use std::error::Error;
use std::process::ExitCode;

use caspian_ipc::mikobase::{Mikobase, SelectRequest};
use caspian_ipc::Record;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const CLASS: &str = "example.org/crew/officer";
const SHIPS: [&str; 3] = ["Nostromo", "Sulaco", "Betty"];

/// One officer: a record of class `example.org/crew/officer`.
#[derive(Debug, Serialize, Deserialize, Record)]
#[record(class = "example.org/crew/officer")]
struct Officer {
    /// Unique across the whole fleet, whoever enlists it.
    #[record(unique)]
    serial: String,
    name: String,
    #[record(one_of("ensign", "lieutenant", "captain"), default = "ensign")]
    rank: String,
    ship: String,
    /// Which worker enlisted the officer.
    enlisted_by: usize,
}

fn parse(args: &[String]) -> Result<(usize, usize), String> {
    let (mut workers, mut per_worker) = (4, 25);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = |v: Option<&String>| -> Result<usize, String> {
            v.and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .ok_or(format!("{flag} takes a positive number"))
        };
        match flag.as_str() {
            "--workers" => workers = value(it.next())?,
            "--per-worker" => per_worker = value(it.next())?,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    Ok((workers, per_worker))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (workers, per_worker) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("crew: {message}\nusage: crew [--workers N] [--per-worker K]");
            return ExitCode::from(2);
        }
    };
    let run = Mikobase::new(workers).run(|worker, db| -> Result<(), Box<dyn Error>> {
        let officers = db.records::<Officer>();
        officers.define()?; // every worker may: it replaces the definition by name
        let me = worker.index();
        let ship = SHIPS[me % SHIPS.len()];
        let mut first = None;
        for i in 0..per_worker {
            let officer = officers.create(&Officer {
                serial: format!("{me}-{i}"),
                name: format!("officer {i} of worker {me}"),
                rank: "ensign".into(),
                ship: ship.into(),
                enlisted_by: me,
            })?;
            first.get_or_insert(officer);
        }
        // Everyone on my ship so far, whoever enlisted them: one select.
        let roster = officers.select(&SelectRequest {
            path: Some(vec![json!("ship"), json!(ship)]),
            ..Default::default()
        })?;
        if roster.iter().filter(|(_, o)| o.enlisted_by == me).count() != per_worker {
            return Err(format!("worker {me} misses some of its officers on the {ship}").into());
        }
        // Promote my first officer: one request, atomic in the server.
        if let Some(officer) = first {
            officer.rank().set("lieutenant")?;
        }
        // A serial that is taken: a typed refusal from the server, not a panic.
        match officers.create(&Officer {
            serial: format!("{me}-0"),
            name: "impostor".into(),
            rank: "captain".into(),
            ship: ship.into(),
            enlisted_by: me,
        }) {
            Err(e) if e.id() == Some("unique-violation") => Ok(()),
            Ok(_) => Err("a taken serial was accepted".into()),
            Err(e) => Err(e.into()),
        }
    });
    let finished = match run {
        Ok(finished) => finished,
        Err(error) => {
            eprintln!("crew: {error}");
            return ExitCode::FAILURE;
        }
    };
    let officers: Vec<&Value> = finished.worldlet["records"]
        .as_object()
        .into_iter()
        .flat_map(|records| records.values())
        .filter(|r| r["stack"]["a"]["class"] == CLASS)
        .map(|r| &r["bucket"])
        .collect();
    let mut by_ship = BTreeMap::<String, usize>::new();
    let mut by_rank = BTreeMap::<String, usize>::new();
    for officer in &officers {
        *by_ship
            .entry(officer["ship"].as_str().unwrap_or("?").into())
            .or_default() += 1;
        *by_rank
            .entry(officer["rank"].as_str().unwrap_or("?").into())
            .or_default() += 1;
    }
    let summary = json!({
        "officers": officers.len(),
        "by_ship": by_ship,
        "by_rank": by_rank,
        "workers": finished.workers.iter().map(|w| json!({
            "index": w.index, "pid": w.pid, "ran_for_ms": w.ran_for.as_millis(),
        })).collect::<Vec<_>>(),
    });
    println!("{summary}");
    ExitCode::SUCCESS
}
