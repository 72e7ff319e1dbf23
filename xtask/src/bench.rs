//! `cargo xtask bench [--quick] [--rounds N]`: builds the benchmarks in release, runs each
//! (share, mikobase, engine) through its driver, which alternates rounds pinned to CPU 0
//! and unpinned (see `runtime/benches/common/driver.rs`), and rewrites each bench's tables
//! in docs/BENCHMARKS.md between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->`,
//! headed by the date, the machine and the exact command.

use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use crate::check_spec::workspace_root;

/// The benches, in the order they run and appear.
const BENCHES: [&str; 4] = ["share", "mikobase", "engine", "fork"];
/// The page the tables go to, relative to the workspace root.
const PAGE: &str = "docs/BENCHMARKS.md";
/// How long one bench (all its rounds) may take before it is killed.
const DEADLINE: Duration = Duration::from_secs(45 * 60);

pub fn run(args: &[String]) -> ExitCode {
    let mut forwarded = Vec::new();
    let mut options = args.iter();
    while let Some(arg) = options.next() {
        match arg.as_str() {
            "--quick" => forwarded.push(arg.clone()),
            "--rounds" => match options.next() {
                Some(n) if n.parse::<usize>().is_ok_and(|n| n > 0) => {
                    forwarded.extend(["--rounds".to_owned(), n.clone()])
                }
                _ => return usage("--rounds needs a positive number"),
            },
            other => return usage(&format!("unknown option `{other}`")),
        }
    }
    let root = workspace_root();
    let page = root.join(PAGE);
    let Ok(mut text) = std::fs::read_to_string(&page) else {
        eprintln!("cannot read {}", page.display());
        return ExitCode::FAILURE;
    };
    for name in BENCHES {
        if marker_span(&text, name).is_none() {
            eprintln!(
                "{PAGE} has no `{}` … `{}` pair for the {name} bench: add it where the tables go",
                marker(name, "begin"),
                marker(name, "end")
            );
            return ExitCode::FAILURE;
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = Command::new(&cargo)
        .args(["bench", "-p", "caspian-ipc", "--no-run"])
        .current_dir(&root)
        .status();
    if !built.is_ok_and(|s| s.success()) {
        eprintln!("the benchmarks did not build");
        return ExitCode::FAILURE;
    }
    let command = std::iter::once("cargo xtask bench".to_owned())
        .chain(forwarded.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load.split_whitespace().next().unwrap_or("?");
    let heading = format!(
        "_{} · {} · load average {load} at the start · `{command}`_",
        utc_now(),
        machine()
    );
    let mut failed = false;
    for name in BENCHES {
        let tables = match run_bench(&cargo, &root, name, &forwarded) {
            Ok(tables) => tables,
            Err(e) => {
                eprintln!("{name}: {e}");
                return ExitCode::FAILURE;
            }
        };
        print!("## {name}\n\n{tables}\n");
        failed |= tables.contains("Floor check failed");
        if let Some((start, end)) = marker_span(&text, name) {
            text.replace_range(start..end, &format!("\n{heading}\n\n{tables}"));
        }
        // Written after each bench: a later failure keeps the tables already measured.
        if let Err(e) = std::fs::write(&page, &text) {
            eprintln!("cannot write {}: {e}", page.display());
            return ExitCode::FAILURE;
        }
    }
    eprintln!("updated {PAGE}");
    if failed {
        eprintln!("a figure is below its mode's floor: the method is wrong, see the tables");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("{problem}\nusage: cargo xtask bench [--quick] [--rounds N]");
    ExitCode::from(2)
}

fn marker(name: &str, end: &str) -> String {
    format!("<!-- bench:{name}:{end} -->")
}

/// The byte range strictly between a bench's begin and end markers.
fn marker_span(text: &str, name: &str) -> Option<(usize, usize)> {
    let begin = marker(name, "begin");
    let start = text.find(&begin)? + begin.len();
    let end = start + text[start..].find(&marker(name, "end"))?;
    Some((start, end))
}

/// Runs one bench's driver; its stdout (the tables) goes to a file under target/, read
/// when it ends; it is killed after [`DEADLINE`].
fn run_bench(cargo: &str, root: &Path, name: &str, forwarded: &[String]) -> Result<String, String> {
    let out = root.join(format!("target/bench-{name}.md"));
    let file = std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut child = Command::new(cargo)
        .args(["bench", "--quiet", "-p", "caspian-ipc", "--bench", name, "--"])
        .args(forwarded)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(file)
        .spawn()
        .map_err(|e| format!("cannot start cargo bench: {e}"))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > DEADLINE => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("still running after {DEADLINE:?}; killed"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(200)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if !status.success() {
        return Err(format!("cargo bench failed: {status}"));
    }
    std::fs::read_to_string(&out).map_err(|e| format!("{}: {e}", out.display()))
}

/// `2 vCPU, AMD EPYC` from /proc/cpuinfo.
fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = info.lines().filter(|l| l.starts_with("processor")).count();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    format!("{cpus} vCPU, {model}")
}

/// The current UTC time as `YYYY-MM-DD HH:MM UTC`, from `date(1)` (the engine owns the
/// project's one calendar computation; a developer tool need not repeat it).
fn utc_now() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|| "date unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_read_from_the_clock() {
        let now = utc_now();
        assert!(
            now.ends_with(" UTC") && now.len() == "2026-12-03 09:46 UTC".len(),
            "{now}"
        );
    }

    #[test]
    fn markers_delimit_the_tables() {
        let page = "a\n<!-- bench:share:begin -->\nold\n<!-- bench:share:end -->\nb";
        let (start, end) = marker_span(page, "share").unwrap();
        assert_eq!(&page[start..end], "\nold\n");
        assert_eq!(marker_span(page, "engine"), None);
    }
}
