//! The anchors: programs measuring what users would otherwise pick, kept in
//! `runtime/benches/anchors/` so anyone can reproduce every table, run inside each round
//! so they share the round's pinning and load. Each anchor group missing its tool is recorded as skipped,
//! with the reason, instead of failing the benchmark.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Round;

/// The (clients, pipeline depth) pairs Redis and the std-only HTTP anchor run with.
pub const SHAPES: [(usize, usize); 4] = [(1, 1), (4, 1), (1, 16), (4, 16)];

/// The anchors' directory: `$CASPIAN_ANCHORS` (to try other versions of them), or the
/// copies in `runtime/benches/anchors/`.
pub fn dir() -> Result<PathBuf, String> {
    let dir = match std::env::var_os("CASPIAN_ANCHORS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/anchors"),
    };
    match dir.is_dir() {
        true => Ok(dir),
        false => Err(format!("the anchors' directory {} is missing", dir.display())),
    }
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
}

/// Runs `command` in its own process group with a deadline (the whole group is killed
/// when it passes); its stdout and stderr together on success.
fn run(what: &str, command: &mut Command, deadline: Duration) -> Result<String, String> {
    let out = std::env::temp_dir().join(format!("caspian-anchor-{}.out", std::process::id()));
    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let err = file.try_clone().map_err(|e| e.to_string())?;
    let started = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > deadline => {
                // SAFETY: signals the child's own process group (created above).
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break Err(format!("{what}: no answer within {deadline:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("{what}: {e}")),
        }
    };
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    match status {
        Ok(status) if status.success() => Ok(text),
        Ok(status) => Err(format!("{what}: {status}: {}", text.trim())),
        Err(e) => Err(e),
    }
}

/// The first number that directly follows an occurrence of `marker` in `text` (commas
/// allowed), skipping occurrences followed by something else (redis-benchmark prints
/// progress lines like `INCR: rps=...` before the final `INCR: 52631.58 requests ...`).
pub fn number_after(text: &str, marker: &str) -> Option<f64> {
    text.match_indices(marker).find_map(|(at, _)| {
        let digits: String = text[at + marker.len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
            .filter(|c| *c != ',')
            .collect();
        digits.parse().ok()
    })
}

/// Puts `value` under `key`, or says on stderr what was not found in the output.
fn put(round: &mut Round, key: &str, value: Option<f64>, text: &str) {
    match value {
        Some(v) => round.put(key, v),
        None => eprintln!("anchor figure {key} not found in:\n{text}"),
    }
}

/// Runs every anchor once, in this process's pinning, and records their figures.
pub fn measure(round: &mut Round, quick: bool) {
    let dir = match dir() {
        Ok(dir) => dir,
        Err(reason) => {
            for group in ["manager", "redis", "http"] {
                round.skip(group, reason.clone());
            }
            return;
        }
    };
    manager(round, &dir, quick);
    redis(round, &dir, quick);
    http(round, &dir, quick);
}

/// Python's multiprocessing.Manager: one proxy call, 4 workers incrementing under a lock,
/// the increments kept without one, and a server-side `incr` method.
fn manager(round: &mut Round, dir: &Path, quick: bool) {
    if !on_path("python3") {
        return round.skip("manager", "python3 not installed");
    }
    let deadline = Duration::from_secs(120);
    let bench = run(
        "mp_manager_bench.py",
        Command::new("python3")
            .arg(dir.join("mp_manager_bench.py"))
            .env("NW", "4")
            .env("NOPS", if quick { "1000" } else { "5000" }),
        deadline,
    );
    match bench {
        Ok(text) => {
            put(round, "manager.call_us", number_after(&text, "get/s,"), &text);
            let line = |start: &str| text.lines().find(|l| l.starts_with(start)).unwrap_or("");
            put(
                round,
                "manager.lock",
                number_after(line("lock    :"), "->"),
                &text,
            );
            let nolock = line("nolock");
            let kept = number_after(nolock, "final counter=")
                .zip(number_after(nolock, "expected"))
                .map(|(kept, expected)| 100.0 * kept / expected);
            put(round, "manager.kept_pct", kept, &text);
        }
        Err(e) => eprintln!("{e}"),
    }
    match run(
        "mp_manager_atomic.py",
        Command::new("python3").arg(dir.join("mp_manager_atomic.py")),
        deadline,
    ) {
        Ok(text) => put(round, "manager.atomic", number_after(&text, "->"), &text),
        Err(e) => eprintln!("{e}"),
    }
}

/// Redis over a Unix socket (`redis-benchmark`, GET and INCR) in every shape.
fn redis(round: &mut Round, dir: &Path, quick: bool) {
    for tool in ["redis-server", "redis-benchmark"] {
        if !on_path(tool) {
            return round.skip("redis", format!("{tool} not installed"));
        }
    }
    for (clients, pipeline) in SHAPES {
        let requests = match (pipeline, quick) {
            (1, true) => 10_000 * clients,
            (1, false) => 25_000 * clients,
            (_, true) => 100_000,
            (_, false) => 300_000,
        };
        let result = run(
            "redis-uds-bench.sh",
            Command::new("bash")
                .arg(dir.join("redis-uds-bench.sh"))
                .args([clients, pipeline, requests].map(|n| n.to_string()))
                .env_remove("PIN"), // the round's own pinning applies
            Duration::from_secs(120),
        );
        match result {
            Ok(text) => {
                for op in ["GET", "INCR"] {
                    let key = format!("redis.c{clients}.p{pipeline}.{}", op.to_lowercase());
                    put(round, &key, number_after(&text, &format!("{op}:")), &text);
                }
            }
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// `target/anchors/uds_http_bench`, built from the anchor's source with `rustc -O` when
/// missing or older than the source.
fn http_binary(dir: &Path) -> Result<PathBuf, String> {
    let source = dir.join("uds_http_bench.rs");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/release/deps/<bench> → target/anchors/
    let target = exe.ancestors().nth(3).ok_or("cannot find the target directory")?;
    let binary = target.join("anchors/uds_http_bench");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&binary).is_some() && modified(&binary) >= modified(&source) {
        return Ok(binary);
    }
    if !on_path("rustc") {
        return Err("rustc not installed".into());
    }
    std::fs::create_dir_all(target.join("anchors")).map_err(|e| e.to_string())?;
    run(
        "rustc uds_http_bench.rs",
        Command::new("rustc").args(["-O", "-o"]).arg(&binary).arg(&source),
        Duration::from_secs(300),
    )
    .map_err(|e| {
        eprintln!("{e}");
        "rustc failed".to_owned()
    })?;
    Ok(binary)
}

/// The std-only HTTP/1.1-over-UDS counter server with its clients, in every shape.
fn http(round: &mut Round, dir: &Path, quick: bool) {
    let binary = match http_binary(dir) {
        Ok(binary) => binary,
        Err(reason) => return round.skip("http", reason),
    };
    for (clients, pipeline) in SHAPES {
        let per_client = match (pipeline, quick) {
            (1, true) => 5_000,
            (1, false) => 20_000,
            (_, true) => 20_000,
            (_, false) => 80_000,
        } / clients;
        let result = run(
            "uds_http_bench",
            Command::new(&binary).args([clients, per_client, pipeline].map(|n| n.to_string())),
            Duration::from_secs(120),
        );
        match result {
            Ok(text) => put(
                round,
                &format!("http.c{clients}.p{pipeline}"),
                number_after(&text, "s ="),
                &text,
            ),
            Err(e) => eprintln!("{e}"),
        }
    }
}

/// Python's multiprocessing with fork: one `Process` start + join, and `Pool(2).map` per
/// item (chunked as Python chooses, and one item per task): the fork bench's anchor.
pub fn pool(round: &mut Round, items: usize) {
    if !on_path("python3") {
        return round.skip("pool", "python3 not installed");
    }
    let dir = match dir() {
        Ok(dir) => dir,
        Err(reason) => return round.skip("pool", reason),
    };
    let bench = run(
        "mp_pool_bench.py",
        Command::new("python3")
            .arg(dir.join("mp_pool_bench.py"))
            .env("NITEMS", items.to_string()),
        Duration::from_secs(300),
    );
    match bench {
        Ok(text) => {
            for key in ["process_us", "pool_item_us", "pool_chunk1_us"] {
                put(
                    round,
                    &format!("pool.{key}"),
                    number_after(&text, &format!("{key}=")),
                    &text,
                );
            }
        }
        Err(reason) => round.skip("pool", reason),
    }
}
