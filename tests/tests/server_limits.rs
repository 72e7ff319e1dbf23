//! The server's limits, seen from outside through its socket: stalled heads and bodies,
//! idle connections, the connection limit, the fd limit, the in-flight body budget and
//! readable 413s. Each test fails on a server without the limit.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use caspian_ipc::uds::http::Method;
use caspian_ipc::uds::{
    spawn_server, Client, ClientConfig, Handler, Request, Response, ServerConfig, SocketDir,
};
use caspian_ipc::Error;
use caspian_ipc_tests::{check, run_serially, Failed, Trial};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde_json::json;

type Outcome = Result<(), Failed>;

/// `/lock` gives the calling connection exclusive use until `/unlock` or its close;
/// anything else answers with the body's length.
#[derive(Default)]
struct Lock {
    holder: Option<u64>,
}

impl Handler for Lock {
    fn ready(&self, request: &Request<'_>) -> bool {
        self.holder.is_none_or(|h| h == request.connection)
    }

    fn handle(&mut self, request: &Request<'_>) -> Response {
        match request.path {
            "/lock" => self.holder = Some(request.connection),
            "/unlock" => self.holder = None,
            _ => {}
        }
        Response::json(200, &json!({ "length": request.body.len() }))
    }

    fn connection_closed(&mut self, connection: u64) {
        if self.holder == Some(connection) {
            self.holder = None;
        }
    }

    fn holds(&self, connection: u64) -> bool {
        self.holder == Some(connection)
    }
}

/// A forked server without a token; stopped and reaped on drop.
struct Server {
    dir: SocketDir,
    pid: Pid,
}

impl Server {
    fn start(config: ServerConfig) -> Result<Server, Failed> {
        Self::start_with(config, || {})
    }

    /// Starts a server whose process first runs `setup` (e.g. to lower its fd limit).
    fn start_with(config: ServerConfig, setup: impl FnOnce()) -> Result<Server, Failed> {
        let dir = SocketDir::create()?;
        let pid = spawn_server(
            &dir,
            None,
            config,
            || {
                setup();
                Ok(Lock::default())
            },
            Duration::from_secs(5),
        )?;
        Ok(Server { dir, pid })
    }

    fn client(&self, deadline: Duration) -> Client {
        Client::new(
            self.dir.socket_path(),
            None,
            ClientConfig {
                connect_budget: Duration::from_millis(500),
                call_deadline: deadline,
            },
        )
    }

    fn raw(&self) -> Result<UnixStream, Failed> {
        let stream = UnixStream::connect(self.dir.socket_path())?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGTERM);
        let _ = waitpid(self.pid, None);
    }
}

/// Whether the server closed `stream` within `within` (EOF or reset), reading and
/// dropping whatever it sent first.
fn closed_within(stream: &mut UnixStream, within: Duration) -> bool {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < within {
        let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

fn short(head: Duration, idle: Option<Duration>) -> ServerConfig {
    ServerConfig {
        head_timeout: head,
        idle_timeout: idle,
        ..ServerConfig::default()
    }
}

fn a_dribbled_head_is_cut() -> Outcome {
    let server = Server::start(short(Duration::from_millis(200), None))?;
    let mut stream = server.raw()?;
    let head = b"GET /x HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut = false;
    for byte in head {
        // One byte every 20 ms: the whole head would take over 2.5 s.
        if stream.write_all(&[*byte]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !cut {
        cut = closed_within(&mut stream, Duration::from_millis(10));
    }
    check(cut, "a head sent one byte at a time was never cut")?;
    check(
        started.elapsed() < Duration::from_secs(2),
        format!(
            "cut only after {:?} with a 200 ms head timeout",
            started.elapsed()
        ),
    )
}

fn an_idle_connection_is_closed_and_the_client_says_when() -> Outcome {
    let server = Server::start(short(Duration::from_secs(5), Some(Duration::from_secs(2))))?;
    let client = server.client(Duration::from_secs(5));
    let answer = client.call(Method::POST, "/x", Some(b"1".to_vec()))?;
    check(
        answer.header("keep-alive") == Some("timeout=2"),
        format!(
            "the idle limit is not announced: {:?}",
            answer.header("keep-alive")
        ),
    )?;
    let mut idle = server.raw()?;
    check(
        closed_within(&mut idle, Duration::from_secs(6)),
        "an idle connection was kept past twice the idle timeout",
    )?;
    // The client knew the limit: it reconnects rather than crossing the close.
    client.call(Method::POST, "/x", Some(b"2".to_vec()))?;
    Ok(())
}

fn a_parked_request_and_a_holder_are_not_idle() -> Outcome {
    let server = Server::start(short(Duration::from_secs(5), Some(Duration::from_secs(1))))?;
    let holder = server.client(Duration::from_secs(10));
    holder.call(Method::POST, "/lock", None)?;
    let waiter = server.client(Duration::from_secs(10));
    // SAFETY: single-threaded test process; the child calls once and _exits.
    let child = match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            let answer = waiter.call(Method::POST, "/x", Some(b"parked".to_vec()));
            if let Err(e) = &answer {
                eprintln!("parked request: {e}");
            }
            unsafe { libc::_exit(if answer.is_ok() { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    // Both the holder (idle, holding the lock) and the waiter (parked) outlive the 1 s idle
    // timeout several times over.
    std::thread::sleep(Duration::from_millis(3500));
    let unlocked = holder.call(Method::POST, "/unlock", None);
    let status = waitpid(child, None)?;
    check(
        unlocked.is_ok(),
        format!("the holder's connection was cut while it held the lock: {unlocked:?}"),
    )?;
    check(
        status == nix::sys::wait::WaitStatus::Exited(child, 0),
        format!("the parked request was not served after the holder let go: {status:?}"),
    )
}

fn a_stalled_body_gets_408() -> Outcome {
    let config = ServerConfig {
        body_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    };
    let server = Server::start(config)?;
    let mut stream = server.raw()?;
    stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    check(
        answer.starts_with("HTTP/1.1 408") && answer.contains("\"request-timeout\""),
        format!("a body that stopped halfway got: {answer:?}"),
    )
}

fn unauthenticated_peers_get_one_answer() -> Outcome {
    let dir = SocketDir::create()?;
    let token = caspian_ipc::uds::Token::generate()?;
    let pid = spawn_server(
        &dir,
        Some(token),
        ServerConfig::default(),
        || Ok(Lock::default()),
        Duration::from_secs(5),
    )?;
    let server = Server { dir, pid };
    let mut stream = server.raw()?;
    let request = "GET /x HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer wrong\r\n\r\n";
    stream.write_all(format!("{request}{request}{request}").as_bytes())?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    check(
        answer.matches("HTTP/1.1 401").count() == 1,
        format!("a peer without the token got more than one answer: {answer:?}"),
    )
}

fn many_idle_and_slow_connections_do_not_shut_out_a_worker() -> Outcome {
    raise_fd_limit();
    let server = Server::start(ServerConfig::default())?;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(server.raw()?);
    }
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut stream = server.raw()?;
        stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Le")?;
        slow.push(stream);
    }
    let client = server.client(Duration::from_secs(5));
    for round in 0..200 {
        client
            .call(Method::POST, "/x", Some(vec![b'1'; 100]))
            .map_err(|e| format!("call {round} beside 600 idle or slow connections: {e}"))?;
    }
    Ok(())
}

fn at_the_connection_limit_the_longest_idle_makes_room() -> Outcome {
    let config = ServerConfig {
        max_connections: 4,
        ..ServerConfig::default()
    };
    let server = Server::start(config)?;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(server.raw()?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = server.client(Duration::from_secs(5));
    client.call(Method::POST, "/x", None)?;
    check(
        closed_within(&mut idle[0], Duration::from_secs(2)),
        "the longest-idle connection was not closed to make room",
    )?;
    check(
        !closed_within(&mut idle[3], Duration::from_millis(200)),
        "a younger idle connection was closed too",
    )
}

fn with_every_connection_busy_a_newcomer_gets_503() -> Outcome {
    let config = ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    };
    let server = Server::start(config)?;
    let holder = server.client(Duration::from_secs(5));
    holder.call(Method::POST, "/lock", None)?;
    let newcomer = server.client(Duration::from_secs(5));
    let refused = newcomer.call(Method::POST, "/x", None);
    check(
        matches!(&refused, Err(Error::Remote { status: 503, id, .. }) if id == "too-many-connections"),
        format!("a newcomer beside a holder at a limit of 1 got {refused:?}"),
    )?;
    holder.call(Method::POST, "/unlock", None)?;
    Ok(())
}

fn at_the_fd_limit_the_server_backs_off() -> Outcome {
    raise_fd_limit();
    let server = Server::start_with(ServerConfig::default(), || {
        let limit = libc::rlimit {
            rlim_cur: 48,
            rlim_max: 48,
        };
        // SAFETY: setrlimit with a valid struct; only this (server) process is affected.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    })?;
    let mut held = Vec::new();
    for _ in 0..120 {
        held.push(server.raw()?);
    }
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(server.pid)?;
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(server.pid)? - before;
    // A spinning accept loop burns about 100 ticks a second; a backing-off one a few.
    check(
        used < 30,
        format!("the server used {used} ticks of CPU in 1 s at its fd limit"),
    )?;
    let client = server.client(Duration::from_secs(20));
    client
        .call(Method::POST, "/x", None)
        .map_err(|e| format!("a worker at the server's fd limit: {e}"))?;
    Ok(())
}

fn many_half_sent_bodies_stay_within_the_budget() -> Outcome {
    let config = ServerConfig {
        body_limit: 1 << 20,
        max_body_bytes_in_flight: 2 << 20,
        ..ServerConfig::default()
    };
    let server = Server::start(config)?;
    let chunk = vec![b'x'; 900 * 1024];
    let mut streams = Vec::new();
    for _ in 0..2 {
        let mut stream = server.raw()?;
        stream.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n")?;
        stream.write_all(&chunk)?;
        streams.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut third = server.raw()?;
    third.write_all(b"POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1048576\r\n\r\n")?;
    third.write_all(&chunk)?;
    let mut answer = String::new();
    let _ = third.read_to_string(&mut answer);
    check(
        answer.starts_with("HTTP/1.1 503") && answer.contains("\"server-busy\""),
        format!("a third half-sent body past the 2 MiB budget got {answer:?}"),
    )?;
    drop(streams);
    std::thread::sleep(Duration::from_millis(200));
    // Bytes of closed connections are given back.
    let client = server.client(Duration::from_secs(5));
    let answer = client.call(Method::POST, "/x", Some(chunk))?;
    check(
        answer.json()?["length"] == 900 * 1024,
        "a body within the budget after the others closed",
    )
}

fn an_oversized_body_always_gets_a_readable_413() -> Outcome {
    // The default limit: the bug showed with bodies 1 to 20 MB over 16 MiB.
    let config = ServerConfig::default();
    let limit = config.body_limit;
    let server = Server::start(config)?;
    let client = server.client(Duration::from_secs(20));
    for over in [1, 1 << 20, 20 << 20] {
        for attempt in 0..3 {
            let answer = client.call(Method::POST, "/x", Some(vec![b'1'; limit + over]));
            check(
                matches!(&answer, Err(Error::Remote { status: 413, id, .. }) if id == "request-too-large"),
                format!("attempt {attempt}, {over} bytes over the limit: {answer:?}"),
            )?;
        }
    }
    client.call(Method::POST, "/x", Some(vec![b'1'; limit]))?;
    // Any client, not only ours: one that writes its whole body before it reads.
    for over in [1, 1 << 20, 20 << 20] {
        let mut stream = server.raw()?;
        let length = limit + over;
        let written = stream
            .write_all(
                format!("POST /x HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n").as_bytes(),
            )
            .and_then(|()| stream.write_all(&vec![b'1'; length]));
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        check(
            written.is_ok() && answer.starts_with("HTTP/1.1 413"),
            format!(
                "a plain client writing {over} bytes over the limit: write {written:?}, answer {answer:?}"
            ),
        )?;
    }
    Ok(())
}

/// Lets this test process hold many connections.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(8192);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// User plus system CPU time of `pid`, in clock ticks (`/proc/PID/stat` fields 14, 15).
fn cpu_ticks(pid: Pid) -> Result<u64, Failed> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("odd /proc stat")?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or("odd /proc stat")
    };
    Ok(ticks(11)? + ticks(12)?)
}

fn main() {
    run_serially(vec![
        Trial::test("a_dribbled_head_is_cut", a_dribbled_head_is_cut),
        Trial::test(
            "an_idle_connection_is_closed_and_the_client_says_when",
            an_idle_connection_is_closed_and_the_client_says_when,
        ),
        Trial::test(
            "a_parked_request_and_a_holder_are_not_idle",
            a_parked_request_and_a_holder_are_not_idle,
        ),
        Trial::test("a_stalled_body_gets_408", a_stalled_body_gets_408),
        Trial::test(
            "unauthenticated_peers_get_one_answer",
            unauthenticated_peers_get_one_answer,
        ),
        Trial::test(
            "many_idle_and_slow_connections_do_not_shut_out_a_worker",
            many_idle_and_slow_connections_do_not_shut_out_a_worker,
        ),
        Trial::test(
            "at_the_connection_limit_the_longest_idle_makes_room",
            at_the_connection_limit_the_longest_idle_makes_room,
        ),
        Trial::test(
            "with_every_connection_busy_a_newcomer_gets_503",
            with_every_connection_busy_a_newcomer_gets_503,
        ),
        Trial::test(
            "at_the_fd_limit_the_server_backs_off",
            at_the_fd_limit_the_server_backs_off,
        ),
        Trial::test(
            "many_half_sent_bodies_stay_within_the_budget",
            many_half_sent_bodies_stay_within_the_budget,
        ),
        Trial::test(
            "an_oversized_body_always_gets_a_readable_413",
            an_oversized_body_always_gets_a_readable_413,
        ),
    ])
}
