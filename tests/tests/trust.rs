//! Who may stand between a client and its server (issue 10, decisions D-U13..D-U15): a
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
        Trial::test(
            "the_client_never_sends_its_token_to_a_server_of_another_uid",
            the_client_never_sends_its_token_to_a_server_of_another_uid,
        ),
        Trial::test(
            "the_async_client_never_sends_its_token_to_a_server_of_another_uid",
            the_async_client_never_sends_its_token_to_a_server_of_another_uid,
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

/// Most bytes the impostor keeps of what arrives.
const CAPTURE_LIMIT: usize = 64 * 1024;

/// The impostor: as `uid`, listens on `socket`, signals `ready`, takes one connection
/// (within 5 s) and reports on `report`: `C` if a connection came, then every byte that
/// arrived (until EOF, a blank line ending the headers, 1 s of silence or the limit).
fn impostor(uid: u32, socket: &Path, ready: std::fs::File, report: std::fs::File) -> i32 {
    use std::os::unix::net::UnixListener;
    let run = || -> Result<(), String> {
        let id = nix::unistd::Gid::from_raw(uid);
        nix::unistd::setgroups(&[id]).map_err(|e| format!("setgroups: {e}"))?;
        nix::unistd::setgid(id).map_err(|e| format!("setgid: {e}"))?;
        nix::unistd::setuid(nix::unistd::Uid::from_raw(uid)).map_err(|e| format!("setuid: {e}"))?;
        let listener = UnixListener::bind(socket).map_err(|e| format!("bind: {e}"))?;
        (&ready).write_all(b"R").map_err(|e| format!("ready: {e}"))?;
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let mut report = report;
        if poll(&mut fds, PollTimeout::from(5000u16)).map_err(|e| format!("poll: {e}"))? == 0 {
            return Ok(()); // nobody came: an empty report
        }
        let (mut stream, _) = listener.accept().map_err(|e| format!("accept: {e}"))?;
        report.write_all(b"C").map_err(|e| format!("report: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(1)))
            .map_err(|e| format!("timeout: {e}"))?;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while got.len() < CAPTURE_LIMIT && !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        report.write_all(&got).map_err(|e| format!("report: {e}"))
    };
    i32::from(run().is_err())
}

fn the_client_never_sends_its_token_to_a_server_of_another_uid() -> Outcome {
    a_client_never_sends_its_token_to_a_server_of_another_uid(|socket, token| {
        Client::new(socket, Some(token), impostor_client_config()).call(Method::GET, "/x", None)
    })
}

/// The same for the async client (feature `tokio`), on a runtime built after the fork.
fn the_async_client_never_sends_its_token_to_a_server_of_another_uid() -> Outcome {
    a_client_never_sends_its_token_to_a_server_of_another_uid(|socket, token| {
        let client = caspian_ipc::uds::AsyncClient::new(socket, Some(token), impostor_client_config());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Protocol(e.to_string()))?
            .block_on(client.call(Method::GET, "/x", None))
    })
}

fn impostor_client_config() -> ClientConfig {
    ClientConfig {
        connect_budget: Duration::from_millis(500),
        call_deadline: Duration::from_secs(5),
    }
}

/// A client (`call` makes one call with it) connects to a listener of another uid: it
/// refuses with `UntrustedServer`, and not one byte reaches the listener.
fn a_client_never_sends_its_token_to_a_server_of_another_uid(
    call: impl FnOnce(&Path, caspian_ipc::uds::Token) -> Result<caspian_ipc::uds::RawResponse, Error>,
) -> Outcome {
    needs_root()?;
    let sandbox = Sandbox::new("impostor")?;
    // nobody must reach its own directory inside the sandbox.
    std::fs::set_permissions(&sandbox.0, std::fs::Permissions::from_mode(0o711))?;
    let theirs = mkdir(&sandbox.join("theirs"), 0o700, Some(NOBODY))?;
    let socket = theirs.join("s.sock");
    let token = caspian_ipc::uds::Token::generate()?;
    let (ready_read, ready_write) = nix::unistd::pipe()?;
    let (report_read, report_write) = nix::unistd::pipe()?;
    // SAFETY: single-threaded test process; the child switches uid, listens and _exits.
    let child = match unsafe { fork() }? {
        ForkResult::Child => {
            drop((ready_read, report_read));
            // SAFETY: plain prctl; the impostor must not outlive a failed test.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            let code = impostor(NOBODY, &socket, ready_write.into(), report_write.into());
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop((ready_write, report_write));
    let mut ready = std::fs::File::from(ready_read);
    let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
    let listening = poll(&mut fds, PollTimeout::from(5000u16))? == 1 && {
        let mut byte = [0u8; 1];
        ready.read(&mut byte)? == 1
    };
    let outcome = if listening {
        Some(call(&socket, token.clone()))
    } else {
        None
    };
    let status = reap(child, Duration::from_secs(10))?;
    let mut report = Vec::new();
    std::fs::File::from(report_read).read_to_end(&mut report)?;
    check(listening, format!("the impostor did not listen: {status:?}"))?;
    check(
        status == WaitStatus::Exited(child, 0),
        format!("impostor {status:?}"),
    )?;
    let got = report.get(1..).unwrap_or_default();
    let text = String::from_utf8_lossy(got);
    check(
        !text.contains(token.as_str()),
        format!("the token reached the impostor: {text}"),
    )?;
    check(got.is_empty(), format!("bytes reached the impostor: {text}"))?;
    check(
        report.first() == Some(&b'C'),
        "the client never connected to the impostor",
    )?;
    match outcome {
        Some(Err(e @ Error::UntrustedServer { .. })) => {
            let message = e.to_string();
            let Error::UntrustedServer {
                path,
                server_uid,
                our_uid,
            } = e
            else {
                unreachable!()
            };
            check(path == socket, format!("path: {message}"))?;
            check(server_uid == NOBODY && our_uid == 0, format!("uids: {message}"))?;
            check(
                message.contains("token was not sent") && message.contains("fix:"),
                format!("says what happened and what to fix: {message}"),
            )?;
        }
        other => return Err(format!("expected UntrustedServer, got {other:?}").into()),
    }
    drop(sandbox);
    check_nothing_left()
}
