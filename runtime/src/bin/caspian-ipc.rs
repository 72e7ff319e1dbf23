//! `caspian-ipc`: attach to a running job from another terminal, as `redis-cli` attaches
//! to Redis. The job exposes itself with `Share::expose(FILE)` / `Mikobase::expose(FILE)`
//! (a 0600 file naming its socket and holding its token, so no token is ever typed or
//! shown in `ps`).
//!
//! ```text
//! caspian-ipc watch FILE [--every MS] [--times N] [--max-chars N]
//!     the live state and request rate, every MS (default 1000) ms
//! caspian-ipc monitor FILE [--count N] [--for SECONDS]
//!     every operation as the server answers it (the `redis-cli MONITOR` of this crate)
//! ```
//!
//! Both stop by themselves when the job ends (its server goes away), after `--times` /
//! `--count` / `--for`, or on Ctrl-C. Exit status: 0, or 2 with a message on stderr.
//! Arguments are parsed by clap (`caspian-ipc --help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use caspian_ipc::uds::{Client, ClientConfig, Exposed};
use caspian_ipc::Error;
use clap::{Parser, Subcommand};
use serde_json::Value;

mod common;

const USAGE: &str = "usage:
  caspian-ipc watch FILE [--every MS] [--times N] [--max-chars N]
  caspian-ipc monitor FILE [--count N] [--for SECONDS]
  caspian-ipc help [COMMAND]";

/// Attach to a running job through its exposure file.
#[derive(Parser)]
#[command(name = "caspian-ipc", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the job's live state and request rate, again every MS milliseconds.
    Watch {
        /// The job's exposure file (`expose(FILE)`, `mikobase serve --expose FILE`).
        file: PathBuf,
        /// Milliseconds between two looks.
        #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
        every: u64,
        /// Stop after this many looks.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        times: Option<u64>,
        /// Show at most this much of the state.
        #[arg(long, value_name = "N", default_value_t = 4000, value_parser = clap::value_parser!(u64).range(1..))]
        max_chars: u64,
    },
    /// Show every operation as the server answers it.
    Monitor {
        /// The job's exposure file.
        file: PathBuf,
        /// Stop after this many operations.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long = "for", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
        for_secs: Option<u64>,
    },
}

fn main() -> ExitCode {
    let cli = match common::parse::<Cli>("caspian-ipc", USAGE) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let outcome = match cli.command {
        Command::Watch {
            file,
            every,
            times,
            max_chars,
        } => watch(&file, every, times, max_chars),
        Command::Monitor {
            file,
            count,
            for_secs,
        } => monitor(&file, count, for_secs),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("caspian-ipc: {message}");
            ExitCode::from(2)
        }
    }
}

fn attach(file: &Path, call_deadline: Duration) -> Result<(Exposed, Client), String> {
    let exposed = Exposed::read(file).map_err(|e| format!("{e} (is the job running with `.expose(..)`?)"))?;
    let config = ClientConfig {
        call_deadline,
        ..ClientConfig::default()
    };
    let client = exposed.client(config);
    Ok((exposed, client))
}

/// The job's server is gone: the normal end of watching.
fn ended(error: &Error) -> bool {
    matches!(
        error,
        Error::ServerGone { .. } | Error::ConnectionRefused { .. } | Error::ConnectionLost { .. }
    )
}

fn watch(file: &Path, every_ms: u64, times: Option<u64>, max_chars: u64) -> Result<(), String> {
    let (exposed, client) = attach(file, Duration::from_secs(10))?;
    let (mut last, mut shown) = (None::<(Instant, u64)>, 0u64);
    loop {
        let read = (|| -> Result<(u64, Value), Error> {
            let requests = client.get("/stats")?.json()?["requests"].as_u64().unwrap_or(0);
            let state = match exposed.flavour.as_str() {
                "shared-mikobase" => {
                    client.post("/export_worldlet", b"{}".to_vec())?.json()?["results"].take()
                }
                _ => client.get("/pk/0")?.json()?,
            };
            Ok((requests, state))
        })();
        let (requests, state) = match read {
            Ok(read) => read,
            Err(e) if ended(&e) => {
                println!("-- the job ended (pid {})", exposed.pid);
                return Ok(());
            }
            Err(e) => return Err(e.to_string()),
        };
        let now = Instant::now();
        let rate = last.map_or(String::new(), |(at, before): (Instant, u64)| {
            let per_s =
                requests.saturating_sub(before) as f64 / now.duration_since(at).as_secs_f64().max(1e-3);
            format!(", {per_s:.0}/s")
        });
        last = Some((now, requests));
        let mut text = serde_json::to_string_pretty(&state).unwrap_or_default();
        if text.len() as u64 > max_chars {
            let mut cut = max_chars as usize;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            let more = text.len() - cut;
            text.truncate(cut);
            text.push_str(&format!("\n… ({more} more bytes)"));
        }
        println!(
            "-- {} pid {}: {requests} requests{rate}\n{text}",
            exposed.flavour, exposed.pid
        );
        shown += 1;
        if times.is_some_and(|t| shown >= t) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(every_ms));
    }
}

fn monitor(file: &Path, count: Option<u64>, for_secs: Option<u64>) -> Result<(), String> {
    // A poll waits up to 2 s for news, then asks again (and checks the time limit).
    let (exposed, client) = attach(file, Duration::from_secs(2))?;
    let until = for_secs.map(|s| Instant::now() + Duration::from_secs(s));
    let poll = |path: &str| -> Result<Value, Error> { client.get(path)?.json() };
    let the_end = || {
        println!("-- the job ended (pid {})", exposed.pid);
        Ok(())
    };
    let mut next = match poll("/monitor") {
        Ok(answer) => answer["next"].as_u64().unwrap_or(0),
        Err(e) if ended(&e) => return the_end(),
        Err(e) => return Err(e.to_string()),
    };
    eprintln!(
        "-- monitoring {} pid {} (Ctrl-C to stop)",
        exposed.flavour, exposed.pid
    );
    let mut seen = 0u64;
    loop {
        if until.is_some_and(|u| Instant::now() >= u) || count.is_some_and(|c| seen >= c) {
            return Ok(());
        }
        let answer = match poll(&format!("/monitor?after={next}")) {
            Ok(answer) => answer,
            Err(e) if ended(&e) => return the_end(),
            Err(Error::Timeout { .. }) => continue,
            Err(e) => return Err(e.to_string()),
        };
        if let Some(missed) = answer["missed"].as_u64().filter(|m| *m > 0) {
            println!("-- {missed} operations went by unseen");
        }
        for op in answer["ops"].as_array().into_iter().flatten() {
            if count.is_some_and(|c| seen >= c) {
                return Ok(());
            }
            let worker = op["worker"]
                .as_u64()
                .map_or("parent".to_owned(), |w| format!("worker {w}"));
            let body = op["body"]
                .as_str()
                .filter(|b| !b.is_empty())
                .map_or(String::new(), |b| format!(" {b}"));
            println!(
                "{:>10.3} [{worker}] {}{body} → {}",
                op["at_ms"].as_f64().unwrap_or(0.0) / 1e3,
                op["request"].as_str().unwrap_or(""),
                op["status"]
            );
            seen += 1;
        }
        next = answer["next"].as_u64().unwrap_or(next);
    }
}
