//! Starting a server in its own forked process and knowing when it listens.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::unistd::{getpid, Pid};

use super::http::Handler;
use super::server::{block_stop_signals, serve, ServerConfig};
use super::socket::SocketDir;
use super::token::Token;
use crate::error::{Error, Result};
use crate::fork::{die_with_parent, fork_child, EXIT_ERROR};

/// Byte the server writes once it listens; anything else on the pipe is an error text.
const READY: u8 = b'R';

/// Forks a server process serving `make()` on the socket in `dir` and returns its pid once
/// it is listening. The handler is built in the child, after the fork, so the parent never
/// holds server state (an `Err` from `make` is the startup error the caller gets). The server stops on SIGTERM (and gets SIGTERM if the parent dies);
/// when it stops it removes its socket and the directory, so even a parent killed with
/// SIGKILL leaves nothing behind.
pub fn spawn_server<H: Handler>(
    dir: &SocketDir,
    token: Option<Token>,
    config: ServerConfig,
    make: impl FnOnce() -> std::result::Result<H, String>,
    startup_deadline: Duration,
) -> Result<Pid> {
    let (read, write) = nix::unistd::pipe().map_err(|e| Error::os("pipe", e))?;
    let parent = getpid();
    // The child starts with SIGTERM and SIGINT blocked, so one sent before `serve` reads
    // them from its signalfd stays pending instead of being lost (D-F8).
    let previous = block_stop_signals()?;
    let forked = fork_child(move || {
        if !die_with_parent(Signal::SIGTERM, parent) {
            let _ = std::fs::remove_dir(dir.dir());
            return EXIT_ERROR;
        }
        let mut write = std::fs::File::from(write);
        let handler = match make() {
            Ok(handler) => handler,
            Err(message) => {
                let _ = write.write_all(message.as_bytes());
                let _ = std::fs::remove_dir(dir.dir());
                return EXIT_ERROR;
            }
        };
        let mut ready_pipe = write.try_clone().ok();
        let ready = move || {
            if let Some(pipe) = ready_pipe.as_mut() {
                let _ = pipe.write_all(&[READY]);
            }
        };
        let served = serve(dir.socket_path(), token, config, handler, ready);
        let _ = std::fs::remove_dir(dir.dir());
        match served {
            Ok(()) => 0,
            Err(e) => {
                let _ = write.write_all(e.to_string().as_bytes());
                EXIT_ERROR
            }
        }
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
                    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                    return Err(Error::ServerStartup(format!(
                        "the server did not start listening within {startup_deadline:?}"
                    )));
                }
            }
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(Error::os("waiting for the server", e)),
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
            let _ = read.take(4096).read_to_end(&mut text);
            let _ = nix::sys::wait::waitpid(pid, None);
            let text = String::from_utf8_lossy(&text).into_owned();
            Err(Error::ServerStartup(if text.is_empty() {
                "the server process exited before it was listening".to_owned()
            } else {
                text
            }))
        }
    }
}
