//! The fork manager: one child ([`Manager::spawn`]), N workers ([`Manager::multiple`]) or
//! a queue of work items ([`Manager::map`]) with at most [`Manager::max`] running at once,
//! every worker's value harvested in order. The design's extended manager, in Rust terms.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::getpid;

use super::child::{Child, Ended, Setup};
use super::tracked::{stop_together, wait_for_exits, Tracked};
use super::{ensure_single_threaded, Worker, WorkerEnd, WorkerFailure, WorkerResult, PARENT_DEATH_SIGNAL};
use crate::error::{Error, Result};
use crate::run::Supervision;

/// Forks workers and harvests what they return.
///
/// Every child is tracked: stopped (SIGTERM, then SIGKILL after [`Manager::grace`]) and
/// reaped when its handle drops, when the run it belongs to ends early, and killed when
/// this process dies. A worker's closure returns `()` or `Result<T, E>` (see
/// [`WorkerResult`]); `T` comes back to the parent as JSON, any size.
///
/// ```no_run
/// use std::time::Duration;
/// use caspian_ipc::fork::Manager;
///
/// // One child, like `multiprocessing.Process`: its value, status and output.
/// let mut child = Manager::new()
///     .capture_output(true)
///     .spawn(|| {
///         println!("working");
///         Ok::<_, String>(42u32)
///     })?;
/// let ended = child.wait(Duration::from_secs(10))?;
/// assert_eq!(ended.value, Ok(42));
/// assert_eq!(ended.stdout.as_deref(), Some(&b"working\n"[..]));
///
/// // A queue of work items, at most 4 processes at once, results in item order.
/// let lengths = Manager::new()
///     .max(4)
///     .timeout(Duration::from_secs(60))
///     .map(["a", "bb", "ccc"], |_worker, word| Ok::<_, String>(word.len()))?
///     .values()?;
/// assert_eq!(lengths, [1, 2, 3]);
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Manager {
    setup: Setup,
    max: Option<usize>,
    timeout: Option<Duration>,
    allow_threads: bool,
}

impl Default for Manager {
    fn default() -> Self {
        Manager::new()
    }
}

impl Manager {
    /// No cap on concurrent workers, no timeout, 2 s grace, output not captured, children
    /// killed if this process dies.
    pub fn new() -> Self {
        Manager {
            setup: Setup {
                grace: Duration::from_secs(2),
                capture: false,
                parent_death: Some(PARENT_DEATH_SIGNAL),
            },
            max: None,
            timeout: None,
            allow_threads: false,
        }
    }

    /// At most `max` workers of [`Manager::multiple`] / [`Manager::map`] run at once; the
    /// others wait their turn and start as slots free up (`max(0)` counts as 1).
    pub fn max(mut self, max: usize) -> Self {
        self.max = Some(max.max(1));
        self
    }

    /// Stops [`Manager::multiple`] / [`Manager::map`] after `timeout`: workers still
    /// running are stopped ([`WorkerEnd::Stopped`]), items not started yet are
    /// [`WorkerEnd::NotStarted`], and the harvest says [`Cut::TimedOut`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// How long a stopped child gets between SIGTERM and SIGKILL (default 2 s).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.setup.grace = grace;
        self
    }

    /// Captures each child's stdout and stderr into [`Ended::stdout`] / [`Ended::stderr`]
    /// (default: children write to this process's stdout and stderr).
    pub fn capture_output(mut self, capture: bool) -> Self {
        self.setup.capture = capture;
        self
    }

    /// The signal children get when this process dies (default SIGKILL; `None`: they
    /// live on, which only a [`Child::detach`]ed child should).
    pub fn parent_death_signal(mut self, signal: Option<Signal>) -> Self {
        self.setup.parent_death = signal;
        self
    }

    /// Forks even if this process has other threads: see [`Error::ForkUnsafe`].
    pub fn allow_threads(mut self, allow: bool) -> Self {
        self.allow_threads = allow;
        self
    }

    /// Forks one child running `body`; the parent goes on at once (the design's
    /// `branch`). The child's handle is its only tracker: keep it until you have waited.
    pub fn spawn<R: WorkerResult>(&self, body: impl FnOnce() -> R) -> Result<Child<R::Value>> {
        self.check_threads()?;
        Child::fork(&self.setup, 0, body)
    }

    /// Runs `body` in `workers` forked processes (at most [`Manager::max`] at once) and
    /// blocks until every one has ended; the harvest holds each one's end, in index order.
    pub fn multiple<R: WorkerResult>(
        &self,
        workers: usize,
        body: impl Fn(Worker) -> R,
    ) -> Result<Harvest<R::Value>> {
        self.map(0..workers, |worker, _| body(worker))
    }

    /// Runs `body` once per work item, each in its own forked process, at most
    /// [`Manager::max`] at once (a process per item: one item's crash or leak cannot touch
    /// another's), and blocks until every item is done.
    pub fn map<I, R: WorkerResult>(
        &self,
        items: impl IntoIterator<Item = I>,
        body: impl Fn(Worker, I) -> R,
    ) -> Result<Harvest<R::Value>> {
        self.map_harvesting(items, body, |_| Supervision::Continue)
    }

    /// [`Manager::map`], calling `harvest` in the parent as each child is reaped (the
    /// design's `harvest`); it may stop the rest with [`Supervision::Stop`] (the harvest
    /// then says [`Cut::Stopped`]).
    pub fn map_harvesting<I, R: WorkerResult>(
        &self,
        items: impl IntoIterator<Item = I>,
        body: impl Fn(Worker, I) -> R,
        harvest: impl FnMut(&Ended<R::Value>) -> Supervision,
    ) -> Result<Harvest<R::Value>> {
        drive(self, items, body, |_| Supervision::Continue, harvest)
    }

    fn check_threads(&self) -> Result<()> {
        if self.allow_threads {
            Ok(())
        } else {
            ensure_single_threaded()
        }
    }
}

/// Why a run of workers ended before every item was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The manager's timeout expired.
    TimedOut(Duration),
    /// A harvest callback or a supervisor said [`Supervision::Stop`].
    Stopped,
}

/// What [`Manager::multiple`] and [`Manager::map`] return: every worker's end, in index
/// order, whether it succeeded or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Harvest<T> {
    /// Each forked worker's end, in index order.
    pub ended: Vec<Ended<T>>,
    /// Indices of the work items never started (the run was cut short first).
    pub not_started: Vec<usize>,
    /// Why the run ended early, if it did.
    pub cut: Option<Cut>,
}

impl<T> Harvest<T> {
    /// Every worker that did not return a value, with the items never started (pid 0).
    pub fn failures(&self) -> Vec<WorkerFailure> {
        let mut failures: Vec<WorkerFailure> = self
            .ended
            .iter()
            .filter_map(|ended| {
                ended.value.as_ref().err().map(|end| WorkerFailure {
                    index: ended.index,
                    pid: ended.pid,
                    end: end.clone(),
                })
            })
            .chain(self.not_started.iter().map(|index| WorkerFailure {
                index: *index,
                pid: 0,
                end: WorkerEnd::NotStarted,
            }))
            .collect();
        failures.sort_by_key(|f| f.index);
        failures
    }

    /// Every worker's value in index order, or [`Error::ChildrenFailed`] naming each one
    /// that failed (the values of the others are in the harvest: match on it instead).
    pub fn values(self) -> Result<Vec<T>> {
        let failures = self.failures();
        if !failures.is_empty() {
            return Err(Error::ChildrenFailed { failures });
        }
        Ok(self
            .ended
            .into_iter()
            .filter_map(|ended| ended.value.ok())
            .collect())
    }
}

/// What a run's supervisor sees on each turn of [`drive`]'s loop.
#[derive(Debug)]
pub(crate) struct Tick {
    pub running: Vec<usize>,
    pub failed: Vec<usize>,
    pub elapsed: Duration,
}

/// The one loop that runs workers: forks up to the cap, reaps what ended (calling
/// `harvest`), asks `on_tick` whether to go on, honours the timeout, and on a cut stops
/// every running child at once. `share` and `mikobase` runs use it with their supervisor.
pub(crate) fn drive<I, R: WorkerResult>(
    manager: &Manager,
    items: impl IntoIterator<Item = I>,
    body: impl Fn(Worker, I) -> R,
    mut on_tick: impl FnMut(&Tick) -> Supervision,
    mut harvest: impl FnMut(&Ended<R::Value>) -> Supervision,
) -> Result<Harvest<R::Value>> {
    manager.check_threads()?;
    let items: Vec<I> = items.into_iter().collect();
    let count = items.len();
    let parent = getpid().as_raw() as u32;
    let cap = manager.max.unwrap_or(usize::MAX);
    let mut queue = items.into_iter().enumerate().peekable();
    let mut running: BTreeMap<usize, Child<R::Value>> = BTreeMap::new();
    let mut ended = Vec::with_capacity(count);
    let mut failed = Vec::new();
    let started = Instant::now();
    let mut cut = None;
    let mut pause = Duration::from_micros(100);
    loop {
        while running.len() < cap {
            let Some((index, item)) = queue.next() else { break };
            let worker = Worker::new(index, count, parent);
            let body = &body;
            match Child::fork(&manager.setup, index, move || body(worker, item)) {
                Ok(child) => {
                    running.insert(index, child);
                }
                Err(error) => {
                    stop_all(&mut running, manager.setup.grace);
                    return Err(error);
                }
            }
        }
        let done: Vec<usize> = running
            .iter_mut()
            .filter_map(|(index, child)| child.try_wait().map(|_| *index))
            .collect();
        for index in &done {
            let Some(child) = running.remove(index) else {
                continue;
            };
            let end = child.into_ended();
            if end.value.is_err() {
                failed.push(end.index);
            }
            if harvest(&end) == Supervision::Stop {
                cut = Some(Cut::Stopped);
            }
            ended.push(end);
        }
        if running.is_empty() && queue.peek().is_none() {
            break;
        }
        if cut.is_none() {
            if let Some(timeout) = manager.timeout.filter(|t| started.elapsed() >= *t) {
                cut = Some(Cut::TimedOut(timeout));
            }
        }
        if cut.is_none() {
            let tick = Tick {
                running: running.keys().copied().collect(),
                failed: failed.clone(),
                elapsed: started.elapsed(),
            };
            if on_tick(&tick) == Supervision::Stop {
                cut = Some(Cut::Stopped);
            }
        }
        if cut.is_some() {
            break;
        }
        if done.is_empty() {
            // Woken by the first exit (pidfds); the pause bounds the wait, so the tick, the
            // timeout and a child without a pidfd are looked at again soon.
            let exits: Vec<_> = running
                .values()
                .filter_map(|child| child.tracked().exit_fd())
                .collect();
            if exits.len() == running.len() {
                wait_for_exits(&exits, Duration::from_millis(5));
            } else {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
        } else {
            pause = Duration::from_micros(100);
        }
    }
    stop_all(&mut running, manager.setup.grace);
    for (_, child) in running {
        let mut end = child.into_ended();
        // One that returned its value just before the cut keeps it.
        if end.value.is_err() {
            end.value = Err(WorkerEnd::Stopped);
        }
        ended.push(end);
    }
    ended.sort_by_key(|end| end.index);
    Ok(Harvest {
        ended,
        not_started: queue.map(|(index, _)| index).collect(),
        cut,
    })
}

/// Stops every running child together (one grace for all of them, not one each).
fn stop_all<T: serde::de::DeserializeOwned>(running: &mut BTreeMap<usize, Child<T>>, grace: Duration) {
    let mut tracked: Vec<&mut Tracked> = running.values_mut().map(Child::tracked_mut).collect();
    stop_together(&mut tracked, grace);
    for child in running.values_mut() {
        child.settle();
    }
}
