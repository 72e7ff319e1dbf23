//! Starting a server in its own forked process and knowing when it listens.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

use super::http::Handler;
use super::server::{serve_with, ServerConfig};
use super::socket::SocketDir;
use super::stop_signals::block_stop_signals;
use super::tcp::TcpListen;
use super::token::Token;
use crate::error::{Error, Result};
use crate::fork::{
    bounded, describe_exit, die_with_parent, fork_child, panic_message, Tracked, WorkerEnd, EXIT_ERROR,
    EXIT_PANIC,
};

/// Byte the server writes once it listens; anything else on the pipe is an error text.
const READY: u8 = b'R';

/// Forks a server process serving `make()` on the socket in `dir` and returns its pid once
/// it is listening. The handler is built in the child, after the fork, so the parent never
/// holds server state. An `Err` from `make`, an error from `serve`, or a panic in either
/// (as `the server panicked: <message>`) is the [`Error::ServerStartup`] text the caller
/// gets. The server stops on SIGTERM (and gets SIGTERM if the parent dies); when it stops
/// it removes its socket and the directory, so even a parent killed with SIGKILL leaves
/// nothing behind.
pub fn spawn_server<H: Handler>(
    dir: &SocketDir,
    token: Option<Token>,
    config: ServerConfig,
    make: impl FnOnce() -> std::result::Result<H, String>,
    startup_deadline: Duration,
) -> Result<Pid> {
    spawn_server_with(dir, None, token, config, make, startup_deadline)
}

/// [`spawn_server`], serving on `tcp` too (see [`super::serve_with`]): the listener was
/// bound by the caller, so its address is known before the fork, and the server process
/// serves its copy.
pub fn spawn_server_with<H: Handler>(
    dir: &SocketDir,
    tcp: Option<&TcpListen>,
    token: Option<Token>,
    config: ServerConfig,
    make: impl FnOnce() -> std::result::Result<H, String>,
    startup_deadline: Duration,
) -> Result<Pid> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::os("pipe", e))?;
    let parent = getpid();
    // The child starts with SIGTERM and SIGINT blocked, so one sent before `serve` reads
    // them from its signalfd stays pending instead of being lost (D-F8).
    let previous = block_stop_signals()?;
    let forked = fork_child(move || {
        if !die_with_parent(Signal::SIGTERM, parent) {
            let _ = std::fs::remove_dir(dir.dir());
            return EXIT_ERROR;
        }
        let write = std::fs::File::from(write);
        // A panic while building the handler or starting the server is caught here, so
        // its message reaches the caller's `ServerStartup` instead of only stderr (D-F9).
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let handler = make()?;
            let mut ready_pipe = write.try_clone().ok();
            let ready = move || {
                if let Some(pipe) = ready_pipe.as_mut() {
                    let _ = pipe.write_all(&[READY]);
                }
            };
            serve_with(dir.socket_path(), tcp, token, config, handler, ready).map_err(|e| e.to_string())
        }));
        let _ = std::fs::remove_dir(dir.dir());
        let (message, code) = match outcome {
            Ok(Ok(())) => return 0,
            Ok(Err(message)) => (message, EXIT_ERROR),
            Err(payload) => (
                format!("the server panicked: {}", panic_message(payload.as_ref())),
                EXIT_PANIC,
            ),
        };
        let _ = (&write).write_all(bounded(message).as_bytes());
        code
    });
    let _ = previous.thread_set_mask();
    let pid = forked?;
    let mut read = std::fs::File::from(read);
    let started = Instant::now();
    loop {
        let left = startup_deadline.saturating_sub(started.elapsed());
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(millis)) {
            Ok(0) => {
                if started.elapsed() >= startup_deadline {
                    Tracked::new(pid, Duration::ZERO).kill();
                    return Err(Error::ServerStartup(format!(
                        "the server did not start listening within {startup_deadline:?}"
                    )));
                }
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                Tracked::new(pid, Duration::ZERO).kill();
                return Err(Error::os("waiting for the server", e));
            }
        }
    }
    let mut first = [0u8; 1];
    match read.read(&mut first) {
        Ok(1) if first[0] == READY => Ok(pid),
        outcome => {
            let mut text = Vec::new();
            if let Ok(1) = outcome {
                text.push(first[0]);
            }
            let _ = read.take(MAX_STARTUP_MESSAGE).read_to_end(&mut text);
            // It reported and is leaving: give it a moment, then SIGKILL; always reaped.
            let mut server = Tracked::new(pid, REAP_BUDGET);
            let status = server.reap_within(REAP_BUDGET).unwrap_or_else(|| server.kill());
            let text = String::from_utf8_lossy(&text).into_owned();
            Err(Error::ServerStartup(if text.is_empty() {
                let how = match status.and_then(describe_exit) {
                    Some(WorkerEnd::Exit { code }) => format!(" (exit status {code})"),
                    Some(WorkerEnd::Signal { signal }) => format!(" (killed by {signal})"),
                    _ => String::new(),
                };
                format!("the server process exited before it was listening{how}")
            } else if text.contains("Cannot start a runtime from within a runtime") {
                format!(
                    "{text} (the run was started on a thread that drives a tokio runtime, and \
                     the forked server inherits that state: start the run from a thread outside \
                     the runtime, e.g. inside `tokio::task::spawn_blocking`)"
                )
            } else {
                text
            }))
        }
    }
}

/// Longest start-up error read from the server (its messages are bounded below this).
const MAX_STARTUP_MESSAGE: u64 = 8192;
/// How long a server that reported a start-up error gets to exit before SIGKILL.
const REAP_BUDGET: Duration = Duration::from_secs(2);
