//! Who may stand between a client and its server (issue 10, decisions D-U10..D-U12): a
//! server refuses a socket directory another user can change, and a client refuses to
//! send its token to a server of another uid. Forks (and switches uid in children), so
//! runs serially on the main thread; needs root for the other-uid cases, as CI has.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caspian_ipc::uds::http::Method;
use caspian_ipc::uds::{serve, Client, ClientConfig, Handler, Request, Response, ServerConfig, SocketDir};
use caspian_ipc::Error;
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, Trial};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::json;

type Outcome = Result<(), Failed>;

/// The uid of `nobody`, the other user of these tests.
const NOBODY: u32 = 65534;

fn main() {
    run_serially(vec![
        Trial::test(
            "serve_refuses_a_socket_directory_others_can_write",
            serve_refuses_a_socket_directory_others_can_write,
        ),
        Trial::test(
            "serve_refuses_a_socket_directory_of_another_user",
            serve_refuses_a_socket_directory_of_another_user,
        ),
        Trial::test(
            "serve_works_in_our_own_private_directory",
            serve_works_in_our_own_private_directory,
        ),
        Trial::test(
            "a_tmpdir_others_can_write_without_the_sticky_bit_is_refused",
            a_tmpdir_others_can_write_without_the_sticky_bit_is_refused,
        ),
    ])
}

/// Answers every request with 200 and the path.
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, request: &Request<'_>) -> Response {
        Response::json(200, &json!({ "path": request.path }))
    }
}

/// A private directory (0700) for one test; everything in it goes when it drops.
struct Sandbox(PathBuf);

impl Sandbox {
    fn new(name: &str) -> Result<Sandbox, Failed> {
        let path = std::env::temp_dir().join(format!("caspian-trust-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let sandbox = Sandbox(path);
        mkdir(&sandbox.0, 0o700, None)?;
        Ok(sandbox)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A directory of exactly `mode` (past the umask), owned by `owner` if given.
fn mkdir(path: &Path, mode: u32, owner: Option<u32>) -> Result<PathBuf, Failed> {
    std::fs::create_dir(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    if let Some(uid) = owner {
        std::os::unix::fs::chown(path, Some(uid), None)?;
    }
    Ok(path.to_owned())
}

fn needs_root() -> Outcome {
    check(
        nix::unistd::geteuid().is_root(),
        "needs root to make files and processes of another uid (CI runs as root)",
    )
}

/// `serve` on `socket` in this process: it must refuse before listening, with
/// `UnsafeSocketDir` naming `culprit`, and leave no socket behind.
fn refused_to_serve(socket: &Path, culprit: &Path, problem: &str) -> Outcome {
    let mut listened = false;
    let outcome = serve(socket, None, ServerConfig::default(), Echo, || {
        listened = true;
        // Without the check it would serve forever: stop it at once (it stops on SIGTERM).
        let _ = kill(nix::unistd::getpid(), Signal::SIGTERM);
    });
    check(!listened, "the server listened")?;
    check(!socket.exists(), "a socket file was left behind")?;
    match outcome {
        Err(e @ Error::UnsafeSocketDir { .. }) => {
            let text = e.to_string();
            let Error::UnsafeSocketDir { dir, path, .. } = e else {
                unreachable!()
            };
            check(
                dir == culprit,
                format!("named {} not {}: {text}", dir.display(), culprit.display()),
            )?;
            check(path == socket, format!("names the socket: {text}"))?;
            check(text.contains(problem), format!("says `{problem}`: {text}"))?;
            check(text.contains("fix: "), format!("says what to fix: {text}"))
        }
        other => Err(format!("expected UnsafeSocketDir, got {other:?}").into()),
    }
}

fn serve_refuses_a_socket_directory_others_can_write() -> Outcome {
    let sandbox = Sandbox::new("world")?;
    let world = mkdir(&sandbox.join("world"), 0o777, None)?;
    refused_to_serve(
        &world.join("s.sock"),
        &world,
        "writable by other users (mode 0777)",
    )?;
    // Our own private directory inside it does not help: they can rename it away.
    let mine = mkdir(&world.join("mine"), 0o700, None)?;
    refused_to_serve(&mine.join("s.sock"), &world, "without the sticky bit")?;
    // A sticky one (like /tmp) holding the socket itself is refused too.
    let sticky = mkdir(&sandbox.join("sticky"), 0o1777, None)?;
    refused_to_serve(
        &sticky.join("s.sock"),
        &sticky,
        "writable by other users (mode 1777)",
    )?;
    drop(sandbox);
    check_nothing_left()
}

fn serve_refuses_a_socket_directory_of_another_user() -> Outcome {
    needs_root()?;
    let sandbox = Sandbox::new("theirs")?;
    let theirs = mkdir(&sandbox.join("theirs"), 0o755, Some(NOBODY))?;
    refused_to_serve(&theirs.join("s.sock"), &theirs, "owned by uid 65534")?;
    // A link of theirs to our own directory: they can point it elsewhere at any time.
    let ours = mkdir(&sandbox.join("ours"), 0o700, None)?;
    let link = sandbox.join("their-link");
    std::os::unix::fs::symlink(&ours, &link)?;
    std::os::unix::fs::lchown(&link, Some(NOBODY), None)?;
    refused_to_serve(&link.join("s.sock"), &link, "symbolic link owned by uid 65534")?;
    drop(sandbox);
    check_nothing_left()
}

/// Forks a server on `socket` (serving Echo, no token) and returns once it listens.
fn fork_server(socket: &Path) -> Result<Pid, Failed> {
    let (read, write) = nix::unistd::pipe()?;
    // SAFETY: single-threaded test process; the child serves and _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(read);
            // SAFETY: plain prctl; the server must not outlive a failed test.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let mut write = std::fs::File::from(write);
            let served = serve(socket, None, ServerConfig::default(), Echo, || {
                let _ = write.write_all(b"R");
            });
            unsafe { libc::_exit(if served.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(write);
            let mut read = std::fs::File::from(read);
            let mut fds = [PollFd::new(read.as_fd(), PollFlags::POLLIN)];
            let ready = poll(&mut fds, PollTimeout::from(5000u16))? == 1;
            let mut byte = [0u8; 1];
            if ready && read.read(&mut byte)? == 1 {
                return Ok(child);
            }
            let _ = kill(child, Signal::SIGKILL);
            let _ = waitpid(child, None);
            Err("the server did not start listening".into())
        }
    }
}

/// Waits (bounded) for `pid` to end; kills it if it does not.
fn reap(pid: Pid, within: Duration) -> Result<WaitStatus, Failed> {
    let started = Instant::now();
    loop {
        match waitpid(pid, Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::StillAlive if started.elapsed() < within => {
                std::thread::sleep(Duration::from_millis(10))
            }
            WaitStatus::StillAlive => {
                let _ = kill(pid, Signal::SIGKILL);
                waitpid(pid, None)?;
                return Err(format!("process {pid} did not end within {within:?}").into());
            }
            status => return Ok(status),
        }
    }
}

fn serve_works_in_our_own_private_directory() -> Outcome {
    let sandbox = Sandbox::new("private")?;
    let ours = mkdir(&sandbox.join("ours"), 0o700, None)?;
    let socket = ours.join("s.sock");
    let server = fork_server(&socket)?;
    let client = Client::new(&socket, None, ClientConfig::default());
    let answer = client.call(Method::GET, "/hello", None);
    kill(server, Signal::SIGTERM)?;
    let status = reap(server, Duration::from_secs(5))?;
    let answer = answer?.json()?;
    check(answer["path"] == "/hello", format!("{answer}"))?;
    check(
        status == WaitStatus::Exited(server, 0),
        format!("server {status:?}"),
    )?;
    drop(sandbox);
    check_nothing_left()
}

/// Runs `body` in a forked child (so what it changes, like the environment, stays there)
/// and fails with the child's message unless it returns `Ok`. Bounded by `within`.
fn in_child(within: Duration, body: impl FnOnce() -> Result<(), String>) -> Outcome {
    let (read, write) = nix::unistd::pipe()?;
    // SAFETY: single-threaded test process; the child runs `body` and _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(read);
            let outcome = body();
            if let Err(message) = &outcome {
                let _ = std::fs::File::from(write).write_all(message.as_bytes());
            }
            unsafe { libc::_exit(if outcome.is_ok() { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(write);
            let status = reap(child, within)?;
            // The child has ended, so its end of the pipe is closed: this read returns.
            let mut message = String::new();
            std::fs::File::from(read).read_to_string(&mut message)?;
            check(
                status == WaitStatus::Exited(child, 0),
                format!("child {status:?}: {message}"),
            )
        }
    }
}

/// `outcome` must be `UnsafeSocketDir` naming `culprit` and saying how to fix TMPDIR.
fn refused_base<T: std::fmt::Debug>(
    what: &str,
    outcome: Result<T, Error>,
    culprit: &Path,
) -> Result<(), String> {
    match outcome {
        Err(e @ Error::UnsafeSocketDir { .. }) => {
            let text = e.to_string();
            match e {
                Error::UnsafeSocketDir { dir, .. } if dir == culprit && text.contains("TMPDIR") => Ok(()),
                _ => Err(format!("{what}: wrong refusal: {text}")),
            }
        }
        other => Err(format!("{what}: expected UnsafeSocketDir, got {other:?}")),
    }
}

fn a_tmpdir_others_can_write_without_the_sticky_bit_is_refused() -> Outcome {
    let sandbox = Sandbox::new("tmpdir")?;
    let world = mkdir(&sandbox.join("world"), 0o777, None)?;
    let sticky = mkdir(&sandbox.join("sticky"), 0o1777, None)?;
    in_child(Duration::from_secs(20), || {
        // Only this child's environment changes.
        std::env::set_var("TMPDIR", &world);
        refused_base("SocketDir::create", SocketDir::create(), &world)?;
        refused_base(
            "share",
            caspian_ipc::share(1, |_, _| -> Result<(), String> { Err("a worker ran".into()) }),
            &world,
        )?;
        let left = std::fs::read_dir(&world).map_err(|e| e.to_string())?.count();
        if left != 0 {
            return Err(format!("{left} entries made in the refused TMPDIR"));
        }
        // A sticky TMPDIR (like /tmp) is fine, and a whole run works there.
        std::env::set_var("TMPDIR", &sticky);
        let state = caspian_ipc::share(2, |worker, hash| {
            hash.incr("n", worker.index() as i64 + 1).map(drop)
        })
        .map_err(|e| format!("share in a sticky TMPDIR: {e}"))?;
        if state != json!({"n": 3}) {
            return Err(format!("state {state}"));
        }
        Ok(())
    })?;
    check(
        std::fs::read_dir(&sticky)?.count() == 0,
        "the run in the sticky TMPDIR left its directory behind",
    )?;
    drop(sandbox);
    check_nothing_left()
}
