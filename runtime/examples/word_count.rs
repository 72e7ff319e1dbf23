//! Counts words in files with N forked workers sharing one hash.
//!
//! `cargo run --release --example word_count -- --workers N [--expose FILE] FILE...`
//!
//! A word is a maximal run of Unicode alphanumeric characters, lowercased. Prints the
//! counts as one JSON object on stdout and nothing else there. On a terminal, stderr shows
//! how far the run is (workers done, requests, time); elsewhere it stays quiet. With
//! `--expose FILE`, `caspian-ipc watch FILE` / `caspian-ipc monitor FILE` can follow the
//! run from another terminal.
//!
//! The efficient pattern: every file is cut into N byte ranges (cuts fall just after an
//! ASCII non-alphanumeric byte, which can never be inside a word or a UTF-8 sequence);
//! each worker counts its ranges locally, then merges its counts with batched increments:
//! a few requests per worker instead of one per word.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::{Duration, Instant};

use caspian_ipc::{Share, Supervision};

/// Increments per batch request (each one is ~30 bytes of JSON).
const BATCH: usize = 20_000;

fn main() -> ExitCode {
    let (workers, files, expose) = match parse_args(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("word_count: {message}\nusage: word_count --workers N [--expose FILE] FILE...");
            return ExitCode::from(2);
        }
    };
    let mut run = Share::new(workers);
    if let Some(file) = expose {
        run = run.expose(file);
    }
    if std::io::stderr().is_terminal() {
        let mut last = Instant::now();
        run = run.supervise(move |progress| {
            if last.elapsed() >= Duration::from_millis(200) {
                last = Instant::now();
                let requests = progress.operations().unwrap_or(0);
                let done = workers - progress.running.len();
                eprint!(
                    "\rword_count: {done}/{workers} workers done, {requests} requests, {:.1} s ",
                    progress.elapsed.as_secs_f64()
                );
                let _ = std::io::stderr().flush();
            }
            Supervision::Continue
        });
    }
    let outcome = run.run(|worker, hash| -> Result<(), String> {
        let mut counts: HashMap<String, i64> = HashMap::new();
        for file in &files {
            let text = read_range(file, worker.index(), worker.count())
                .map_err(|e| format!("{}: {e}", file.display()))?;
            count_words(&String::from_utf8_lossy(&text), &mut counts);
        }
        let counts: Vec<(String, i64)> = counts.into_iter().collect();
        for chunk in counts.chunks(BATCH) {
            hash.batch(|b| {
                for (word, n) in chunk {
                    b.incr(word, *n);
                }
            })
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    match outcome {
        Ok(counts) => {
            println!("{counts}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("word_count: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args(
    mut args: impl Iterator<Item = String>,
) -> Result<(usize, Vec<PathBuf>, Option<PathBuf>), String> {
    let mut workers = None;
    let mut files = Vec::new();
    let mut expose = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" | "-n" => {
                let n = args.next().ok_or("--workers needs a number")?;
                workers = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("--workers: `{n}` is not a number"))?,
                );
            }
            "--expose" => expose = Some(PathBuf::from(args.next().ok_or("--expose needs a file name")?)),
            flag if flag.starts_with("--") => return Err(format!("unknown option `{flag}`")),
            file => files.push(PathBuf::from(file)),
        }
    }
    let workers = workers.unwrap_or(4);
    if workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    if files.is_empty() {
        return Err("no input files".into());
    }
    for file in &files {
        if !file.is_file() {
            return Err(format!("{}: not a readable file", file.display()));
        }
    }
    Ok((workers, files, expose))
}

/// Adds the lowercased words of `text` to `counts`.
fn count_words(text: &str, counts: &mut HashMap<String, i64>) {
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        *counts.entry(word).or_insert(0) += 1;
    }
}

/// Whether a cut may fall right after `byte`: an ASCII byte that is not alphanumeric is
/// never part of a word nor of a multi-byte UTF-8 sequence.
fn is_cut(byte: u8) -> bool {
    byte.is_ascii() && !byte.is_ascii_alphanumeric()
}

/// The bytes of range `index` of `count` of the file.
fn read_range(path: &Path, index: usize, count: usize) -> std::io::Result<Vec<u8>> {
    let len = std::fs::metadata(path)?.len();
    let start = cut_at(path, len * index as u64 / count as u64, len)?;
    let end = cut_at(path, len * (index as u64 + 1) / count as u64, len)?;
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity(end.saturating_sub(start) as usize);
    file.take(end.saturating_sub(start)).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// The first offset at or after `nominal` that follows a cut byte (0 and `len` are cuts).
fn cut_at(path: &Path, nominal: u64, len: u64) -> std::io::Result<u64> {
    if nominal == 0 || nominal >= len {
        return Ok(nominal.min(len));
    }
    let mut reader = BufReader::new(File::open(path)?);
    reader.seek(SeekFrom::Start(nominal - 1))?;
    let mut offset = nominal - 1;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(len);
        }
        if let Some(i) = buffer.iter().position(|b| is_cut(*b)) {
            return Ok(offset + i as u64 + 1);
        }
        let consumed = buffer.len();
        offset += consumed as u64;
        reader.consume(consumed);
    }
}
