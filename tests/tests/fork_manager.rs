//! The public fork manager (`caspian_ipc::fork::Manager`): one child, N workers, a queue of
//! work items under a cap; values harvested in order; failures typed; every tracked child
//! reaped on every path. Runs serially on the main thread because every scenario forks.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caspian_ipc::fork::{Child, Cut, ExitStatus, Manager, Signal};
use caspian_ipc::{Error, Share, WorkerEnd};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, Trial};

type Outcome = Result<(), Failed>;

fn main() {
    run_serially(vec![
        Trial::test(
            "a_child_returns_its_value_and_output",
            a_child_returns_its_value_and_output,
        ),
        Trial::test("a_large_value_comes_back_whole", a_large_value_comes_back_whole),
        Trial::test(
            "map_keeps_order_and_respects_max",
            map_keeps_order_and_respects_max,
        ),
        Trial::test("failures_are_typed_and_named", failures_are_typed_and_named),
        Trial::test(
            "a_value_that_does_not_serialise_is_typed",
            a_value_that_does_not_serialise_is_typed,
        ),
        Trial::test(
            "wait_has_a_deadline_and_term_kill_stops",
            wait_has_a_deadline_and_term_kill_stops,
        ),
        Trial::test("zombie_then_reaped", zombie_then_reaped),
        Trial::test("kill_sends_the_signal", kill_sends_the_signal),
        Trial::test(
            "dropping_a_child_stops_and_reaps_it",
            dropping_a_child_stops_and_reaps_it,
        ),
        Trial::test("a_parent_panic_leaves_no_child", a_parent_panic_leaves_no_child),
        Trial::test("a_detached_child_lives_on", a_detached_child_lives_on),
        Trial::test(
            "timeout_stops_running_and_skips_queued",
            timeout_stops_running_and_skips_queued,
        ),
        Trial::test("harvest_can_stop_the_rest", harvest_can_stop_the_rest),
        Trial::test("children_die_with_their_parent", children_die_with_their_parent),
        Trial::test("forking_with_threads_is_refused", forking_with_threads_is_refused),
        Trial::test(
            "share_and_mikobase_harvest_worker_values",
            share_and_mikobase_harvest_worker_values,
        ),
    ])
}

const WAIT: Duration = Duration::from_secs(20);

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Whether `pid` is gone (or a zombie no longer ours to reap), polling up to `within`.
fn gone_within(pid: u32, within: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| stat.rsplit(')').next().map(|rest| rest.trim().chars().next()));
        if matches!(state, None | Some(Some('Z' | 'X'))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A child that sleeps far longer than any test waits.
fn sleeper(manager: &Manager) -> caspian_ipc::Result<Child<()>> {
    manager.spawn(|| {
        std::thread::sleep(Duration::from_secs(30));
        Ok::<_, String>(())
    })
}

fn a_child_returns_its_value_and_output() -> Outcome {
    let mut child = Manager::new().capture_output(true).spawn(|| {
        println!("to stdout");
        eprintln!("to stderr");
        Ok::<_, String>(vec!["a".to_owned(), "b".to_owned()])
    })?;
    check(child.pid() > 0, "the child has a pid")?;
    let ended = child.wait(WAIT)?.clone();
    check(
        ended.value == Ok(vec!["a".into(), "b".into()]),
        format!("value {:?}", ended.value),
    )?;
    check(
        ended.status == ExitStatus::Exited(0),
        format!("status {:?}", ended.status),
    )?;
    check(
        ended.stdout.as_deref() == Some(&b"to stdout\n"[..]),
        format!("stdout {:?}", ended.stdout),
    )?;
    check(
        ended.stderr.as_deref() == Some(&b"to stderr\n"[..]),
        format!("stderr {:?}", ended.stderr),
    )?;
    check(
        !child.exists() && !child.is_active(),
        "a reaped child no longer exists",
    )?;
    let uncaptured = Manager::new().spawn(|| Ok::<_, String>(7u8))?.join(WAIT);
    check(
        uncaptured.value == Ok(7) && uncaptured.stdout.is_none(),
        format!("{uncaptured:?}"),
    )?;
    check_nothing_left()
}

fn a_large_value_comes_back_whole() -> Outcome {
    // Far over a pipe's 64 KiB buffer: the child must not block writing it.
    let big = "x".repeat(8 << 20);
    let expected = big.len();
    let ended = Manager::new().spawn(move || Ok::<_, String>(big))?.join(WAIT);
    let got = ended.value.as_ref().map(String::len);
    check(got == Ok(expected), format!("length {got:?}"))?;
    check_nothing_left()
}

fn map_keeps_order_and_respects_max() -> Outcome {
    let items: Vec<u64> = (0..8).collect();
    let harvest = Manager::new().max(2).map(items, |worker, item| {
        let start = now_micros();
        std::thread::sleep(Duration::from_millis(60 - 5 * item));
        Ok::<_, String>((worker.index(), item * item, start, now_micros()))
    })?;
    check(
        harvest.cut.is_none() && harvest.not_started.is_empty(),
        "ran to the end",
    )?;
    let values = harvest.values()?;
    let squares: Vec<u64> = values.iter().map(|v| v.1).collect();
    check(
        squares == [0, 1, 4, 9, 16, 25, 36, 49],
        format!("in item order: {squares:?}"),
    )?;
    check(
        values.iter().enumerate().all(|(i, v)| v.0 == i),
        "each worker knows its item index",
    )?;
    // At no instant were more than two running.
    let most = values
        .iter()
        .map(|(_, _, start, _)| {
            values
                .iter()
                .filter(|(_, _, s, e)| s <= start && start < e)
                .count()
        })
        .max()
        .unwrap_or(0);
    check(most <= 2, format!("{most} ran at once under max(2)"))?;
    check(most == 2, "two did run at once")?;
    check_nothing_left()
}

fn failures_are_typed_and_named() -> Outcome {
    let harvest = Manager::new().multiple(5, |worker| match worker.index() {
        0 => Ok(0u32),
        1 => Err("no input".to_owned()),
        2 => panic!("worker 2 broke"),
        3 => std::process::exit(3),
        _ => {
            let _ = nix::sys::signal::raise(Signal::SIGKILL);
            Ok(4)
        }
    })?;
    let ends: Vec<_> = harvest.ended.iter().map(|e| e.value.clone()).collect();
    check(ends[0] == Ok(0), format!("{:?}", ends[0]))?;
    check(
        ends[1]
            == Err(WorkerEnd::Error {
                message: "no input".into(),
            }),
        format!("{:?}", ends[1]),
    )?;
    check(
        matches!(&ends[2], Err(WorkerEnd::Panic { message }) if message == "worker 2 broke"),
        format!("{:?}", ends[2]),
    )?;
    check(
        ends[3] == Err(WorkerEnd::Exit { code: 3 }),
        format!("{:?}", ends[3]),
    )?;
    check(
        ends[4]
            == Err(WorkerEnd::Signal {
                signal: "SIGKILL".into(),
            }),
        format!("{:?}", ends[4]),
    )?;
    check(
        harvest.ended[4].status == ExitStatus::Signaled("SIGKILL".into()),
        "the status names the signal",
    )?;
    let failed: Vec<usize> = harvest.failures().iter().map(|f| f.index).collect();
    check(failed == [1, 2, 3, 4], format!("failures {failed:?}"))?;
    match harvest.values() {
        Err(Error::ChildrenFailed { failures }) => {
            check(failures.len() == 4, "values() names every failed child")?;
            check(
                failures[0].to_string().contains("returned an error: no input"),
                failures[0].to_string(),
            )?;
        }
        other => return Err(format!("expected ChildrenFailed, got {other:?}").into()),
    }
    check_nothing_left()
}

fn a_value_that_does_not_serialise_is_typed() -> Outcome {
    // Maps with non-string keys are not JSON: refused in the child, typed in the parent.
    let unsendable = Manager::new()
        .spawn(|| Ok::<_, String>(HashMap::from([((1, 2), 3)])))?
        .join(WAIT);
    check(
        matches!(&unsendable.value, Err(WorkerEnd::BadValue { message }) if message.contains("could not be sent")),
        format!("{:?}", unsendable.value),
    )?;
    check(unsendable.status == ExitStatus::Exited(1), "the child failed")?;
    // NaN serialises as null, which does not read back as f64: typed in the parent.
    let unreadable = Manager::new().spawn(|| Ok::<_, String>(f64::NAN))?.join(WAIT);
    check(
        matches!(&unreadable.value, Err(WorkerEnd::BadValue { message }) if message.contains("could not be read as f64")),
        format!("{:?}", unreadable.value),
    )?;
    check_nothing_left()
}

fn wait_has_a_deadline_and_term_kill_stops() -> Outcome {
    let mut child = sleeper(&Manager::new())?;
    let asked = Instant::now();
    match child.wait(Duration::from_millis(150)) {
        Err(Error::Timeout { after }) => check(after == Duration::from_millis(150), "names its deadline")?,
        other => return Err(format!("expected a timeout, got {other:?}").into()),
    }
    check(
        asked.elapsed() < Duration::from_secs(5),
        "wait returned at its deadline",
    )?;
    check(
        child.is_active() && child.exists() && !child.is_zombie(),
        "still running",
    )?;
    let ended = child.term_kill(Duration::from_secs(2)).clone();
    check(
        ended.status == ExitStatus::Signaled("SIGTERM".into()),
        format!("{:?}", ended.status),
    )?;
    check(!child.exists(), "reaped")?;
    let sleeper = sleeper(&Manager::new().grace(Duration::from_millis(200)))?;
    let joined = sleeper.join(Duration::from_millis(100));
    check(
        joined.value == Err(WorkerEnd::Stopped),
        format!("join past its deadline stops: {joined:?}"),
    )?;
    check_nothing_left()
}

fn zombie_then_reaped() -> Outcome {
    let mut child = Manager::new().spawn(|| Ok::<_, String>(1u8))?;
    let started = Instant::now();
    while !child.is_zombie() && started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
    check(
        child.is_zombie() && child.exists() && !child.is_active(),
        "exited, not reaped yet",
    )?;
    check(
        child.try_wait().map(|e| e.value.clone()) == Some(Ok(1)),
        "try_wait reaps it",
    )?;
    check(!child.exists() && !child.is_zombie(), "gone once reaped")?;
    check(
        child.kill(Signal::SIGTERM).is_err(),
        "a reaped child's pid is not signalled",
    )?;
    check_nothing_left()
}

fn kill_sends_the_signal() -> Outcome {
    let mut child = sleeper(&Manager::new())?;
    child.kill(Signal::SIGKILL)?;
    let ended = child.wait(WAIT)?;
    check(
        ended.value
            == Err(WorkerEnd::Signal {
                signal: "SIGKILL".into(),
            }),
        format!("{:?}", ended.value),
    )?;
    check_nothing_left()
}

fn dropping_a_child_stops_and_reaps_it() -> Outcome {
    let child = Manager::new().grace(Duration::from_millis(200)).spawn(|| {
        // Ignores SIGTERM: the grace runs out and SIGKILL follows.
        unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
        std::thread::sleep(Duration::from_secs(30));
        Ok::<_, String>(())
    })?;
    let pid = child.pid();
    std::thread::sleep(Duration::from_millis(50));
    let dropped = Instant::now();
    drop(child);
    check(
        dropped.elapsed() < Duration::from_secs(5),
        "drop waited only the grace",
    )?;
    check(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
        "the pid is reaped, not a zombie",
    )?;
    check_nothing_left()
}

fn a_parent_panic_leaves_no_child() -> Outcome {
    let mut pid = 0;
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let child = Manager::new()
            .spawn(|| {
                std::thread::sleep(Duration::from_secs(30));
                Ok::<_, String>(())
            })
            .expect("spawn");
        pid = child.pid();
        panic!("the parent fails while its child runs");
    }));
    check(caught.is_err() && pid > 0, "the parent panicked")?;
    check(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None).is_err(),
        "the child was stopped and reaped during the unwind",
    )?;
    check_nothing_left()
}

fn a_detached_child_lives_on() -> Outcome {
    let child = sleeper(&Manager::new())?;
    let detached = child.detach();
    let pid = nix::unistd::Pid::from_raw(detached.pid() as i32);
    std::thread::sleep(Duration::from_millis(100));
    let alive = nix::sys::signal::kill(pid, None).is_ok();
    // Ours to clean up now, as documented.
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
    check(alive, "a detached child is not stopped when its handle goes")?;
    check_nothing_left()
}

fn timeout_stops_running_and_skips_queued() -> Outcome {
    let started = Instant::now();
    let harvest = Manager::new()
        .max(1)
        .timeout(Duration::from_millis(300))
        .grace(Duration::from_millis(500))
        .map([0u64, 1, 2], |_, item| {
            if item == 0 {
                return Ok(0);
            }
            std::thread::sleep(Duration::from_secs(30));
            Ok::<_, String>(item)
        })?;
    check(
        started.elapsed() < Duration::from_secs(10),
        "the timeout cut the run",
    )?;
    check(
        harvest.cut == Some(Cut::TimedOut(Duration::from_millis(300))),
        format!("{:?}", harvest.cut),
    )?;
    check(harvest.ended.len() == 2, "two were forked")?;
    check(harvest.ended[0].value == Ok(0), "the first finished")?;
    check(
        harvest.ended[1].value == Err(WorkerEnd::Stopped),
        "the second was stopped",
    )?;
    check(
        harvest.not_started == [2],
        format!("not started {:?}", harvest.not_started),
    )?;
    let failures = harvest.failures();
    check(
        failures
            .iter()
            .any(|f| f.index == 2 && f.pid == 0 && f.end == WorkerEnd::NotStarted),
        format!("{failures:?}"),
    )?;
    check_nothing_left()
}

fn harvest_can_stop_the_rest() -> Outcome {
    let mut seen = Vec::new();
    let harvest = Manager::new().max(2).map_harvesting(
        0..6u32,
        |_, item| {
            if item == 0 {
                return Err("first item is bad".to_owned());
            }
            std::thread::sleep(Duration::from_secs(30));
            Ok(item)
        },
        |ended| {
            seen.push(ended.index);
            if ended.value.is_err() {
                caspian_ipc::Supervision::Stop
            } else {
                caspian_ipc::Supervision::Continue
            }
        },
    )?;
    check(seen == [0], format!("harvested {seen:?}"))?;
    check(harvest.cut == Some(Cut::Stopped), format!("{:?}", harvest.cut))?;
    check(
        harvest.not_started == [2, 3, 4, 5],
        format!("{:?}", harvest.not_started),
    )?;
    check(
        harvest.ended[1].value == Err(WorkerEnd::Stopped),
        "the running one was stopped",
    )?;
    check_nothing_left()
}

fn children_die_with_their_parent() -> Outcome {
    // A middle process starts a tracked child, says its pid, then is killed outright (no
    // destructor runs): the kernel's parent-death signal must take the child too.
    let (read, write) = nix::unistd::pipe()?;
    let middle = Manager::new().spawn(move || {
        let child = sleeper(&Manager::new());
        let pid = child.as_ref().map_or(0, |c| c.pid());
        let _ = nix::unistd::write(&write, &pid.to_le_bytes());
        std::thread::sleep(Duration::from_secs(30));
        drop(child);
        Ok::<_, String>(())
    })?;
    let mut bytes = [0u8; 4];
    let mut file = std::fs::File::from(read);
    std::io::Read::read_exact(&mut file, &mut bytes)?;
    let grandchild = u32::from_le_bytes(bytes);
    check(grandchild > 0, "the middle process started its child")?;
    middle.kill(Signal::SIGKILL)?;
    drop(middle);
    check(
        gone_within(grandchild, WAIT),
        "the grandchild died with its parent",
    )?;
    check_nothing_left()
}

fn forking_with_threads_is_refused() -> Outcome {
    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = wait.recv_timeout(WAIT);
    });
    let refused = Manager::new().spawn(|| Ok::<_, String>(()));
    let _ = stop.send(());
    let _ = thread.join();
    check(
        matches!(refused, Err(Error::ForkUnsafe { threads }) if threads >= 2),
        format!("{refused:?}"),
    )?;
    check_nothing_left()
}

fn share_and_mikobase_harvest_worker_values() -> Outcome {
    let finished = Share::new(3).run_with_values(|worker, hash| {
        let total = hash.incr("n", 1)?;
        Ok::<_, Error>(format!("worker {} saw {total}", worker.index()))
    })?;
    check(finished.state["n"] == 3, format!("{}", finished.state))?;
    let values: Vec<&String> = finished.values().collect();
    check(values.len() == 3, "one value per worker")?;
    check(
        values
            .iter()
            .enumerate()
            .all(|(i, v)| v.starts_with(&format!("worker {i} saw "))),
        format!("{values:?}"),
    )?;
    // A failed run keeps the values of the workers that finished.
    let failed = Share::new(2).run(|worker, _hash| match worker.index() {
        0 => Ok(41u32 + 1),
        _ => Err("no".to_owned()),
    });
    match failed {
        Err(Error::WorkersFailed { finished, .. }) => check(
            finished.len() == 1 && finished[0].index == 0 && finished[0].value == 42,
            format!("{finished:?}"),
        )?,
        other => return Err(format!("expected WorkersFailed, got {other:?}").into()),
    }
    let db = caspian_ipc::mikobase(2, |worker, _db| Ok::<_, String>(worker.index() * 10))?;
    let got: Vec<usize> = db.values().copied().collect();
    check(got == [0, 10], format!("{got:?}"))?;
    check_nothing_left()
}
