//! Four forked workers share one hash; the parent prints the final state.
//!
//! `cargo run --release --example quickstart`

use caspian_ipc::{share, Error};

fn main() -> Result<(), Error> {
    let state = share(4, |worker, hash| {
        let me = worker.index().to_string();
        // Atomic counters: no lost updates however the workers interleave.
        for _ in 0..1000 {
            hash.incr("increments", 1)?;
        }
        // Deep writes create the missing hashes on the server.
        hash.at("workers").at(&me).set("pid", &std::process::id())?;
        // Adoption: the stored hash comes back as a proxy; writes through it are shared.
        let notes = hash.set_hash(&format!("notes-{me}"), &serde_json::json!({ "started": true }))?;
        notes.set("finished", &true)?;
        // Several operations in one request, applied atomically.
        hash.batch(|b| {
            b.incr("batches", 1).push("log", &format!("worker {me} done"));
        })?;
        Ok::<_, Error>(())
    })?;
    println!("{}", serde_json::to_string_pretty(&state).expect("JSON value"));
    Ok(())
}
