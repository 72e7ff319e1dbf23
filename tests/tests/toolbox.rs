//! The UDS toolbox on its own: auth, peer checks, connect retry, external clients.
//! Runs serially on the main thread because servers are forked.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use caspian_ipc::uds::http::Method;
use caspian_ipc::uds::{
    spawn_server, Client, ClientConfig, Handler, Request, Response, ServerConfig, SocketDir, Token,
};
use caspian_ipc::Error;
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::{json, Value};

type Outcome = Result<(), Failed>;

/// Answers every request with what it saw.
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, request: &Request<'_>) -> Response {
        Response::json(
            200,
            &json!({
                "method": request.method.as_str(),
                "path": request.path,
                "query": request.query,
                "body": String::from_utf8_lossy(request.body),
                "peer_uid": request.peer.uid,
                "peer_pid": request.peer.pid,
            }),
        )
    }
}

/// A forked Echo server; stopped and reaped on drop.
type Server = ForkedServer;

fn start_echo() -> Result<Server, Error> {
    ForkedServer::start(ServerConfig::default(), || Ok(Echo))
}

/// One hand-written HTTP request (to send headers the client never would); returns the
/// raw answer text.
fn raw(server: &Server, authorization: Option<&str>) -> String {
    raw_with_authorizations(server, authorization.as_slice())
}

/// [`raw`] with any number of `Authorization` header lines, in order.
fn raw_with_authorizations(server: &Server, authorizations: &[&str]) -> String {
    let mut stream = UnixStream::connect(server.dir.socket_path()).expect("connect");
    let auth: String = authorizations
        .iter()
        .map(|a| format!("Authorization: {a}\r\n"))
        .collect();
    write!(
        stream,
        "GET /x HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Exclusive access for one connection at a time: `/lock`, `/unlock`, and `/step`, which
/// records the order in which requests were served.
#[derive(Default)]
struct Lock {
    holder: Option<u64>,
    log: Vec<String>,
}

impl Handler for Lock {
    fn ready(&self, request: &Request<'_>) -> bool {
        self.holder.is_none_or(|h| h == request.connection)
    }

    fn handle(&mut self, request: &Request<'_>) -> Response {
        let who = String::from_utf8_lossy(request.body).into_owned();
        match request.path {
            "/lock" => self.holder = Some(request.connection),
            "/unlock" => self.holder = None,
            _ => {}
        }
        self.log.push(format!("{who}{}", request.path));
        Response::json(200, &json!(self.log))
    }

    fn connection_closed(&mut self, connection: u64) {
        if self.holder == Some(connection) {
            self.holder = None;
            self.log.push("released-by-close".into());
        }
    }
}

/// Forks a child that runs `body` with a client of `dir`'s server and exits 0 on `true`.
fn child(
    dir: &SocketDir,
    token: &Token,
    deadline: Duration,
    body: impl FnOnce(&Client) -> bool,
) -> Result<Pid, Failed> {
    let client = Client::new(
        dir.socket_path(),
        Some(token.clone()),
        ClientConfig {
            connect_budget: Duration::from_millis(500),
            call_deadline: deadline,
        },
    );
    // SAFETY: single-threaded test process; the child calls and _exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let ok = body(&client);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => Ok(child),
    }
}

fn lock_server() -> Result<(SocketDir, Token, Pid), Failed> {
    let dir = SocketDir::create()?;
    let token = Token::generate()?;
    let pid = spawn_server(
        &dir,
        Some(token.clone()),
        ServerConfig::default(),
        || Ok(Lock::default()),
        Duration::from_secs(5),
    )?;
    Ok((dir, token, pid))
}

fn stop(pid: Pid) {
    let _ = kill(pid, Signal::SIGTERM);
    let _ = waitpid(pid, None);
}

fn waiting_requests_are_served_after_the_holder_lets_go() -> Outcome {
    let (dir, token, server) = lock_server()?;
    let log = |c: &Client, path: &str, who: &str| -> Option<Vec<String>> {
        serde_json::from_slice(
            &c.call(Method::POST, path, Some(who.as_bytes().to_vec()))
                .ok()?
                .body,
        )
        .ok()
    };
    let holder = child(&dir, &token, Duration::from_secs(10), |c| {
        log(c, "/lock", "a").is_some() && {
            std::thread::sleep(Duration::from_millis(300));
            log(c, "/step", "a").is_some() && log(c, "/unlock", "a").is_some()
        }
    })?;
    std::thread::sleep(Duration::from_millis(100));
    let waiter = child(&dir, &token, Duration::from_secs(10), |c| {
        log(c, "/step", "b")
            == Some(vec![
                "a/lock".into(),
                "a/step".into(),
                "a/unlock".into(),
                "b/step".into(),
            ])
    })?;
    let (h, w) = (waitpid(holder, None)?, waitpid(waiter, None)?);
    stop(server);
    check(h == WaitStatus::Exited(holder, 0), format!("holder {h:?}"))?;
    check(
        w == WaitStatus::Exited(waiter, 0),
        format!("waiter saw the wrong order: {w:?}"),
    )
}

fn a_dead_holder_releases_and_a_long_one_gives_busy() -> Outcome {
    let (dir, token, server) = lock_server()?;
    let holder = child(&dir, &token, Duration::from_secs(10), |c| {
        c.call(Method::POST, "/lock", Some(b"dead".to_vec())).is_ok() && {
            std::thread::sleep(Duration::from_secs(30));
            true
        }
    })?;
    std::thread::sleep(Duration::from_millis(100));
    // Within a short deadline the waiter is told `busy`, fast.
    let impatient = child(&dir, &token, Duration::from_millis(300), |c| {
        let started = Instant::now();
        let answer = c.call(Method::POST, "/step", Some(b"c".to_vec()));
        answer.is_err_and(|e| e.remote_id() == Some("busy")) && started.elapsed() < Duration::from_secs(2)
    })?;
    let i = waitpid(impatient, None)?;
    // A patient waiter is served as soon as the holder dies.
    let patient = child(&dir, &token, Duration::from_secs(20), |c| {
        let started = Instant::now();
        let answer = c.call(Method::POST, "/step", Some(b"b".to_vec()));
        answer.is_ok_and(|r| String::from_utf8_lossy(&r.body).contains("released-by-close"))
            && started.elapsed() < Duration::from_secs(5)
    })?;
    std::thread::sleep(Duration::from_millis(200));
    kill(holder, Signal::SIGKILL)?;
    waitpid(holder, None)?;
    let p = waitpid(patient, None)?;
    stop(server);
    check(i == WaitStatus::Exited(impatient, 0), format!("impatient {i:?}"))?;
    check(p == WaitStatus::Exited(patient, 0), format!("patient {p:?}"))
}

fn main() {
    run_serially(vec![
        Trial::test(
            "waiting_requests_are_served_after_the_holder_lets_go",
            waiting_requests_are_served_after_the_holder_lets_go,
        ),
        Trial::test(
            "a_dead_holder_releases_and_a_long_one_gives_busy",
            a_dead_holder_releases_and_a_long_one_gives_busy,
        ),
        Trial::test(
            "auth_refuses_missing_wrong_and_malformed_tokens_alike",
            auth_refuses_alike,
        ),
        Trial::test(
            "clients_reconnect_after_an_idle_close",
            clients_reconnect_after_an_idle_close,
        ),
        Trial::test("right_token_reaches_the_handler", right_token_reaches_the_handler),
        Trial::test(
            "a_call_from_inside_an_async_runtime_is_answered",
            a_call_from_inside_an_async_runtime_is_answered,
        ),
        Trial::test(
            "two_authorization_headers_are_refused_in_either_order",
            two_authorization_headers_are_refused,
        ),
        Trial::test(
            "the_bearer_scheme_is_case_insensitive",
            the_bearer_scheme_is_case_insensitive,
        ),
        Trial::test(
            "peer_with_another_uid_is_refused",
            peer_with_another_uid_is_refused,
        ),
        Trial::test(
            "only_a_reused_connection_closed_unanswered_is_resent",
            only_a_reused_connection_closed_unanswered_is_resent,
        ),
        Trial::test(
            "connect_budget_ends_in_connection_refused",
            connect_budget_ends_in_connection_refused,
        ),
        Trial::test(
            "workers_may_call_before_the_server_listens",
            workers_may_call_before_the_server_listens,
        ),
        Trial::test(
            "server_stops_on_sigterm_and_removes_its_socket",
            server_stops_on_sigterm,
        ),
        Trial::test(
            "server_dies_with_its_parent_and_cleans_up",
            server_dies_with_its_parent,
        ),
        Trial::test("curl_can_talk_to_the_server", curl_can_talk_to_the_server)
            .with_ignored_flag(!curl_present()),
        Trial::test(
            "a_panic_in_the_server_child_is_the_start_up_error",
            a_panic_in_the_server_child_is_the_start_up_error,
        ),
        Trial::test(
            "pipelined_requests_are_answered_in_order",
            pipelined_requests_are_answered_in_order,
        ),
        Trial::test(
            "a_chunked_body_sent_in_pieces_reaches_the_handler",
            a_chunked_body_sent_in_pieces_reaches_the_handler,
        ),
        Trial::test(
            "malformed_heads_get_400_or_431_with_a_json_body",
            malformed_heads_get_400_or_431_with_a_json_body,
        ),
        Trial::test(
            "expect_100_continue_gets_an_interim_answer",
            expect_100_continue_gets_an_interim_answer,
        ),
        Trial::test(
            "http_1_0_is_answered_in_http_1_0",
            http_1_0_is_answered_in_http_1_0,
        ),
    ])
}

fn auth_refuses_alike() -> Outcome {
    let server = start_echo()?;
    let wrong_token = format!("Bearer {}", "0".repeat(64));
    let answers: Vec<String> = [
        None,
        Some(wrong_token.as_str()),
        Some("Basic abc"),
        Some("Bearer"),
        Some(""),
    ]
    .into_iter()
    .map(|auth| raw(&server, auth))
    .collect();
    for answer in &answers {
        check(answer.starts_with("HTTP/1.1 401"), format!("answer: {answer}"))?;
        check(
            answer
                .to_ascii_lowercase()
                .contains("www-authenticate: bearer realm=\"caspian-ipc\""),
            format!("challenge missing: {answer}"),
        )?;
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("");
        check(
            body == answers[0].split("\r\n\r\n").nth(1).unwrap_or(""),
            "identical bodies",
        )?;
    }
    // Through the client: a typed error.
    let client = Client::new(
        server.dir.socket_path(),
        Some(Token::from_string("nope")),
        ClientConfig::default(),
    );
    let err = client.call(Method::GET, "/x", None).expect_err("401");
    check(matches!(err, Error::Unauthorized), format!("{err}"))?;
    let anonymous = Client::new(server.dir.socket_path(), None, ClientConfig::default());
    check(
        anonymous.send(Method::GET, "/x", None)?.status == 401,
        "no token: 401",
    )?;
    drop(server);
    check_nothing_left()
}

fn two_authorization_headers_are_refused() -> Outcome {
    let server = start_echo()?;
    let right = format!("Bearer {}", server.token.as_str());
    let wrong = format!("Bearer {}", "0".repeat(64));
    for pair in [[&right, &wrong], [&wrong, &right], [&right, &right]] {
        let answer = raw_with_authorizations(&server, &[pair[0].as_str(), pair[1].as_str()]);
        check(answer.starts_with("HTTP/1.1 401"), format!("answer: {answer}"))?;
        check(
            answer.contains("exactly one header"),
            format!("fix missing: {answer}"),
        )?;
    }
    let alone = raw(&server, Some(&right));
    check(
        alone.starts_with("HTTP/1.1 200"),
        format!("one right header: {alone}"),
    )?;
    drop(server);
    check_nothing_left()
}

fn the_bearer_scheme_is_case_insensitive() -> Outcome {
    let server = start_echo()?;
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let header = format!("{scheme} {}", server.token.as_str());
        let answer = raw(&server, Some(&header));
        check(answer.starts_with("HTTP/1.1 200"), format!("{scheme}: {answer}"))?;
    }
    drop(server);
    check_nothing_left()
}

/// The client is a plain blocking socket: called from inside an async runtime (an async
/// program's worker, a `#[tokio::main]` process talking to a server) it answers instead
/// of panicking with "Cannot start a runtime from within a runtime", as a client that
/// ran its own runtime did.
fn a_call_from_inside_an_async_runtime_is_answered() -> Outcome {
    let server = start_echo()?;
    let client = Client::connect(server.dir.socket_path(), server.token.as_str());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(async { client.call(Method::POST, "/inside", Some(b"async".to_vec())) })?;
    check(
        answer.json()?["body"] == "async",
        "the call made inside the runtime",
    )
}

fn right_token_reaches_the_handler() -> Outcome {
    let server = start_echo()?;
    let client = Client::connect(server.dir.socket_path(), server.token.as_str());
    let answer = client
        .call(Method::POST, "/some/path?q=1", Some(b"hello".to_vec()))?
        .json()?;
    check(
        answer["path"] == "/some/path" && answer["query"] == "q=1",
        format!("{answer}"),
    )?;
    check(answer["body"] == "hello", format!("{answer}"))?;
    check(
        answer["peer_uid"] == json!(nix::unistd::geteuid().as_raw()),
        "peer uid",
    )?;
    check(
        answer["peer_pid"] == json!(std::process::id()),
        "peer pid from SO_PEERCRED",
    )?;
    // keep-alive: the next call reuses the connection and works
    check(
        client.call(Method::GET, "/again", None)?.status == 200,
        "second call",
    )?;
    let mode = std::fs::metadata(server.dir.socket_path())?.permissions().mode();
    check(mode & 0o777 == 0o600, format!("socket mode {mode:o}"))?;
    let dir_mode = std::fs::metadata(server.dir.dir())?.permissions().mode();
    check(dir_mode & 0o777 == 0o700, format!("dir mode {dir_mode:o}"))
}

fn peer_with_another_uid_is_refused() -> Outcome {
    if !nix::unistd::geteuid().is_root() {
        return Err("needs root to switch to another uid (CI runs as root)".into());
    }
    let server = start_echo()?;
    // Let another user reach the socket at all, so the peer check is what refuses it.
    std::fs::set_permissions(server.dir.dir(), std::fs::Permissions::from_mode(0o711))?;
    std::fs::set_permissions(server.dir.socket_path(), std::fs::Permissions::from_mode(0o666))?;
    let path = server.dir.socket_path().to_owned();
    let token = server.token.clone();
    // SAFETY: single-threaded test process; the child only calls and exits.
    match unsafe { fork() }? {
        ForkResult::Child => {
            let code = (|| {
                nix::unistd::setuid(nix::unistd::Uid::from_raw(65534)).ok()?;
                // By hand, token and all (our client would not send it, see below).
                let mut stream = UnixStream::connect(&path).ok()?;
                stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                write!(
                    stream,
                    "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                    token.as_str()
                )
                .ok()?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer).ok()?;
                if !(answer.starts_with("HTTP/1.1 403") && answer.contains("forbidden_peer")) {
                    return Some(1);
                }
                // Our own client refuses a server of another uid, root included (D-U15).
                let client = Client::new(&path, Some(token), ClientConfig::default());
                match client.call(Method::GET, "/x", None) {
                    Err(Error::UntrustedServer {
                        server_uid: 0,
                        our_uid: 65534,
                        ..
                    }) => Some(0),
                    _ => Some(3),
                }
            })()
            .unwrap_or(2);
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None)?;
            check(
                status == WaitStatus::Exited(child, 0),
                format!(
                    "child saw {status:?} (0: the server answered 403 and the client refused the root server; \
                     1: no 403; 3: the client did not refuse)"
                ),
            )
        }
    }
}

/// Reads one request head (our client sends no body on GET) from `stream`.
fn read_head(stream: &mut UnixStream) -> bool {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => return false,
        }
    }
    true
}

/// D-U5: a *reused* connection that closes before one byte of an answer is resent once
/// on a fresh connection (our server closes only between requests); a *fresh* one that
/// does the same is `ConnectionLost`, never resent.
fn only_a_reused_connection_closed_unanswered_is_resent() -> Outcome {
    let dir = SocketDir::create()?;
    let listener = std::os::unix::net::UnixListener::bind(dir.socket_path())?;
    // SAFETY: single-threaded test process; the child serves by hand and _exits.
    let child = match unsafe { fork() }? {
        ForkResult::Child => {
            let code = (|| {
                let (mut first, _) = listener.accept().ok()?;
                read_head(&mut first).then_some(())?;
                first
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
                    .ok()?;
                // The second request on the kept-alive connection: read, then closed
                // unanswered, as an idle close that crossed it would look.
                read_head(&mut first).then_some(())?;
                drop(first);
                let (mut again, _) = listener.accept().ok()?;
                read_head(&mut again).then_some(())?;
                again
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecond")
                    .ok()?;
                drop(again);
                // A fresh connection closed unanswered: the client must not come back.
                let (mut fresh, _) = listener.accept().ok()?;
                read_head(&mut fresh).then_some(())?;
                drop(fresh);
                // (It may connect once without a word, to see whether we are alive.)
                listener.set_nonblocking(true).ok()?;
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until {
                    if let Ok((mut probe, _)) = listener.accept() {
                        probe.set_nonblocking(false).ok()?;
                        probe.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
                        let mut byte = [0u8; 1];
                        if matches!(probe.read(&mut byte), Ok(1)) {
                            return Some(3);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                Some(0)
            })()
            .unwrap_or(2);
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(listener);
    let client = Client::new(dir.socket_path(), None, ClientConfig::default());
    let first = client.call(Method::GET, "/one", None);
    let second = client.call(Method::GET, "/two", None);
    let third = client.call(Method::GET, "/three", None);
    let status = waitpid(child, None)?;
    check(first.is_ok_and(|r| &r.body[..] == b"first"), "the first answer")?;
    check(
        second.as_ref().is_ok_and(|r| &r.body[..] == b"second"),
        format!("the request on the reused connection was not resent: {second:?}"),
    )?;
    check(
        matches!(third, Err(Error::ConnectionLost { .. })),
        format!("a fresh connection closed unanswered: {third:?}"),
    )?;
    check(
        status == WaitStatus::Exited(child, 0),
        format!("the hand-written server saw {status:?} (3: the fresh request was resent)"),
    )
}

fn connect_budget_ends_in_connection_refused() -> Outcome {
    let dir = SocketDir::create()?;
    let config = ClientConfig {
        connect_budget: Duration::from_millis(150),
        call_deadline: Duration::from_secs(5),
    };
    let client = Client::new(dir.socket_path(), None, config);
    let started = Instant::now();
    let err = client.call(Method::GET, "/", None).expect_err("nobody listens");
    let waited = started.elapsed();
    check(matches!(err, Error::ConnectionRefused { .. }), format!("{err}"))?;
    check(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
        format!("waited {waited:?}"),
    )?;
    // A stale socket file (nobody listening) is ECONNREFUSED: same answer.
    drop(std::os::unix::net::UnixListener::bind(dir.socket_path())?);
    check(
        matches!(
            client.call(Method::GET, "/", None),
            Err(Error::ConnectionRefused { .. })
        ),
        "stale",
    )
}

fn workers_may_call_before_the_server_listens() -> Outcome {
    let dir = SocketDir::create()?;
    let token = Token::generate()?;
    let client = Client::new(dir.socket_path(), Some(token.clone()), ClientConfig::default());
    // SAFETY: single-threaded test process.
    let worker = match unsafe { fork() }? {
        ForkResult::Child => {
            let ok = client
                .call(Method::GET, "/early", None)
                .map(|r| r.status == 200)
                .unwrap_or(false);
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => child,
    };
    std::thread::sleep(Duration::from_millis(100));
    let server = spawn_server(
        &dir,
        Some(token),
        ServerConfig::default(),
        || Ok(Echo),
        Duration::from_secs(5),
    )?;
    let status = waitpid(worker, None)?;
    let _ = kill(server, Signal::SIGTERM);
    waitpid(server, None)?;
    check(
        status == WaitStatus::Exited(worker, 0),
        format!("worker {status:?}"),
    )?;
    drop(dir);
    check_nothing_left()
}

fn server_stops_on_sigterm() -> Outcome {
    let mut server = start_echo()?;
    let client = Client::connect(server.dir.socket_path(), server.token.as_str());
    client.call(Method::GET, "/", None)?;
    let pid = server.pid().ok_or("the server has a pid")?;
    let status = server.stop(Signal::SIGTERM);
    check(status == Some(WaitStatus::Exited(pid, 0)), format!("{status:?}"))?;
    check(!server.dir.socket_path().exists(), "socket file removed")?;
    let err = client.call(Method::GET, "/", None).expect_err("gone");
    check(matches!(err, Error::ServerGone { .. }), format!("{err}"))?;
    let started = Instant::now();
    let again = client.call(Method::GET, "/", None).expect_err("still gone");
    check(
        matches!(again, Error::ServerGone { .. }) && started.elapsed() < Duration::from_millis(50),
        "fails fast",
    )?;
    drop(server);
    check_nothing_left()
}

fn server_dies_with_its_parent() -> Outcome {
    let (read, write) = nix::unistd::pipe()?;
    // SAFETY: single-threaded test process.
    let middle = match unsafe { fork() }? {
        ForkResult::Child => {
            let started = (|| {
                let dir = SocketDir::create().ok()?;
                let server = spawn_server(
                    &dir,
                    None,
                    ServerConfig::default(),
                    || Ok(Echo),
                    Duration::from_secs(5),
                )
                .ok()?;
                let line = format!("{} {}\n", server.as_raw(), dir.dir().display());
                std::fs::File::from(write).write_all(line.as_bytes()).ok()?;
                std::mem::forget(dir); // this process is about to be SIGKILLed anyway
                Some(())
            })();
            if started.is_some() {
                std::thread::sleep(Duration::from_secs(30));
            }
            unsafe { libc::_exit(1) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(write);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(std::fs::File::from(read)), &mut line)?;
    let (pid, dir) = line
        .trim()
        .split_once(' ')
        .ok_or("middle process reported nothing")?;
    let server = Pid::from_raw(pid.parse()?);
    kill(middle, Signal::SIGKILL)?;
    waitpid(middle, None)?;
    let started = Instant::now();
    let gone = |pid: Pid| match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.split(") ").nth(1).is_some_and(|rest| rest.starts_with('Z')),
    };
    while !gone(server) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(10));
    }
    check(gone(server), "the orphaned server exited")?;
    check(
        !std::path::Path::new(dir).exists(),
        format!("{dir} removed by the server"),
    )
}

fn clients_reconnect_after_an_idle_close() -> Outcome {
    let dir = SocketDir::create()?;
    let config = ServerConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..ServerConfig::default()
    };
    let server = spawn_server(&dir, None, config, || Ok(Echo), Duration::from_secs(5))?;
    let client = Client::new(dir.socket_path(), None, ClientConfig::default());
    let mut outcome = Ok(());
    for round in 0..3 {
        if let Err(e) = client.call(Method::POST, "/x", Some(b"1".to_vec())) {
            outcome = Err(format!("call {round} after an idle close: {e}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    stop(server);
    outcome.map_err(Failed::from)
}

fn curl_present() -> bool {
    std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_ok()
}

fn curl_can_talk_to_the_server() -> Outcome {
    let server = start_echo()?;
    let socket = server.dir.socket_path().to_str().ok_or("utf-8 path")?;
    let curl = |auth: Option<String>| -> Result<String, Failed> {
        let mut command = std::process::Command::new("curl");
        command.args(["-s", "-i", "--unix-socket", socket, "http://localhost/hello"]);
        if let Some(auth) = auth {
            command.args(["-H", &auth]);
        }
        Ok(String::from_utf8_lossy(&command.output()?.stdout).into_owned())
    };
    let ok = curl(Some(format!("Authorization: Bearer {}", server.token.as_str())))?;
    check(ok.starts_with("HTTP/1.1 200"), ok.clone())?;
    let body: Value =
        serde_json::from_str(ok.split("\r\n\r\n").nth(1).unwrap_or("")).map_err(|e| e.to_string())?;
    check(body["path"] == "/hello", format!("{body}"))?;
    let refused = curl(None)?;
    check(refused.starts_with("HTTP/1.1 401"), refused.clone())
}

/// A handler that cannot be built because its constructor panics: the start-up error
/// carries the panic message, the directory is gone, the child is reaped (D-F9).
fn a_panic_in_the_server_child_is_the_start_up_error() -> Outcome {
    let dir = SocketDir::create()?;
    let path = dir.dir().to_owned();
    let err = spawn_server(
        &dir,
        None,
        ServerConfig::default(),
        || -> Result<Echo, String> { panic!("no handler today: the store is locked") },
        Duration::from_secs(5),
    )
    .expect_err("the server child panicked");
    check(
        matches!(&err, Error::ServerStartup(text)
            if text == "the server panicked: no handler today: the store is locked"),
        format!("unexpected {err:?}"),
    )?;
    check(!path.exists(), "the server removed its directory")?;
    drop(dir);
    check_nothing_left()
}

/// A raw connection to `server` whose reads give up after 10 s.
fn connect_raw(server: &Server) -> Result<UnixStream, Failed> {
    let stream = UnixStream::connect(server.dir.socket_path())?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

/// Everything the server sends until it closes the connection (or 10 s pass).
fn read_until_closed(stream: &mut UnixStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Reads one answer whose head says `content-length` (and nothing more).
fn read_one_answer(stream: &mut UnixStream) -> Result<String, Failed> {
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !seen.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(format!("closed mid-head: {:?}", String::from_utf8_lossy(&seen)).into());
        }
        seen.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&seen).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(format!("{head}{}", String::from_utf8_lossy(&body)))
}

/// The JSON body of a whole answer text.
fn body_of(answer: &str) -> Value {
    serde_json::from_str(answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)).unwrap_or(Value::Null)
}

/// Three requests in one write, read ahead by the server: three answers, in order, and
/// the last one's `Connection: close` honoured.
fn pipelined_requests_are_answered_in_order() -> Outcome {
    let server = start_echo()?;
    let auth = format!("Authorization: Bearer {}\r\n", server.token.as_str());
    let mut stream = connect_raw(&server)?;
    let requests = format!(
        "GET /a HTTP/1.1\r\n{auth}\r\n\
         POST /b HTTP/1.1\r\n{auth}Content-Length: 3\r\n\r\nxyz\
         GET /c?q HTTP/1.1\r\n{auth}Connection: close\r\n\r\n"
    );
    stream.write_all(requests.as_bytes())?;
    let answers = read_until_closed(&mut stream);
    let paths: Vec<String> = answers
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|a| {
            let body = body_of(&format!("HTTP/1.1 {a}"));
            format!("{} {} {}", a.get(..3).unwrap_or(""), body["path"], body["body"])
        })
        .collect();
    check(
        paths == ["200 \"/a\" \"\"", "200 \"/b\" \"xyz\"", "200 \"/c\" \"\""],
        format!("pipelined answers: {paths:?} from {answers:?}"),
    )?;
    check(
        answers.matches("keep-alive: timeout=300").count() == 2 && answers.contains("connection: close"),
        format!("the first two kept alive, the last closing: {answers:?}"),
    )
}

/// A chunked body, split across writes mid-chunk, is decoded whole; the next request on
/// the connection is answered after it.
fn a_chunked_body_sent_in_pieces_reaches_the_handler() -> Outcome {
    let server = start_echo()?;
    let auth = format!("Authorization: Bearer {}\r\n", server.token.as_str());
    let mut stream = connect_raw(&server)?;
    let head = format!("POST /chunked HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n");
    for piece in [
        head.as_str(),
        "5\r\nhel",
        "lo\r\n6;x=y\r\n worl",
        "d\r\n0\r\nX-Trailer: 1\r\n\r\n",
    ] {
        stream.write_all(piece.as_bytes())?;
        std::thread::sleep(Duration::from_millis(30));
    }
    let first = read_one_answer(&mut stream)?;
    check(
        first.starts_with("HTTP/1.1 200") && body_of(&first)["body"] == "hello world",
        format!("a chunked body: {first:?}"),
    )?;
    write!(stream, "GET /after HTTP/1.1\r\n{auth}\r\n")?;
    let second = read_one_answer(&mut stream)?;
    check(
        body_of(&second)["path"] == "/after",
        format!("the request after a chunked one: {second:?}"),
    )
}

/// Heads the server cannot take are answered with the JSON error body, then closed.
fn malformed_heads_get_400_or_431_with_a_json_body() -> Outcome {
    let server = start_echo()?;
    let long = format!("GET /x HTTP/1.1\r\nX-Long: {}\r\n\r\n", "a".repeat(70 * 1024));
    let cases: [(&str, &str, &str); 4] = [
        ("GARBAGE\r\n\r\n", "400", "bad-request"),
        ("GET /x HTTP/9.9\r\n\r\n", "400", "bad-request"),
        (
            "POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "400",
            "bad-request",
        ),
        (&long, "431", "request-head-too-large"),
    ];
    for (request, status, id) in cases {
        let mut stream = connect_raw(&server)?;
        // A long head may be cut off mid-write once the server has answered.
        let _ = stream.write_all(request.as_bytes());
        let answer = read_until_closed(&mut stream);
        let shown = request.get(..40).unwrap_or(request);
        check(
            answer.starts_with(&format!("HTTP/1.1 {status}")) && body_of(&answer)["error"] == id,
            format!("{shown:?} got {answer:?}"),
        )?;
        check(
            body_of(&answer)["details"]["fix"].is_string(),
            format!("{shown:?}: no fix in {answer:?}"),
        )?;
    }
    Ok(())
}

/// `Expect: 100-continue`: an interim `100 Continue` once the head is accepted, then the
/// answer to the body sent after it.
fn expect_100_continue_gets_an_interim_answer() -> Outcome {
    let server = start_echo()?;
    let mut stream = connect_raw(&server)?;
    write!(
        stream,
        "POST /e HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
        server.token.as_str()
    )?;
    let interim = read_one_answer(&mut stream)?;
    check(
        interim == "HTTP/1.1 100 Continue\r\n\r\n",
        format!("before the body: {interim:?}"),
    )?;
    stream.write_all(b"hello")?;
    let answer = read_one_answer(&mut stream)?;
    check(
        answer.starts_with("HTTP/1.1 200") && body_of(&answer)["body"] == "hello",
        format!("after the body: {answer:?}"),
    )?;
    // A refused head gets its answer instead of the 100.
    let mut stream = connect_raw(&server)?;
    stream.write_all(b"POST /e HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")?;
    let refused = read_one_answer(&mut stream)?;
    check(
        refused.starts_with("HTTP/1.1 401"),
        format!("no token: {refused:?}"),
    )
}

/// An HTTP/1.0 request is answered in HTTP/1.0 and closed, unless it asks for keep-alive.
fn http_1_0_is_answered_in_http_1_0() -> Outcome {
    let server = start_echo()?;
    let auth = format!("Authorization: Bearer {}\r\n", server.token.as_str());
    let mut stream = connect_raw(&server)?;
    write!(stream, "GET /old HTTP/1.0\r\n{auth}\r\n")?;
    let answer = read_until_closed(&mut stream);
    check(
        answer.starts_with("HTTP/1.0 200") && body_of(&answer)["path"] == "/old",
        format!("HTTP/1.0: {answer:?}"),
    )?;
    let mut stream = connect_raw(&server)?;
    write!(
        stream,
        "GET /one HTTP/1.0\r\n{auth}Connection: keep-alive\r\n\r\n"
    )?;
    let first = read_one_answer(&mut stream)?;
    check(
        first.starts_with("HTTP/1.0 200") && first.to_ascii_lowercase().contains("connection: keep-alive"),
        format!("HTTP/1.0 keep-alive: {first:?}"),
    )?;
    write!(stream, "GET /two HTTP/1.0\r\n{auth}\r\n")?;
    let second = read_until_closed(&mut stream);
    check(
        body_of(&second)["path"] == "/two",
        format!("the second request: {second:?}"),
    )
}
