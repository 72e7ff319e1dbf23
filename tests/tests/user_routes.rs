//! A server of one's own: a `Router` with user routes served by `spawn_server` on a
//! `SocketDir`, called with the `Client`'s verb methods. Runs serially on the main thread
//! because servers and clients are forked.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use caspian_ipc::uds::http::Method;
use caspian_ipc::uds::router::{RouteRequest, RouteResult, RouteState, Router};
use caspian_ipc::uds::{
    spawn_server, Client, ClientConfig, Request, Response, ServerConfig, SocketDir, Token,
};
use caspian_ipc::Error;
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::{json, Value};

type Outcome = Result<(), Failed>;

/// Notes by id, and one connection that may hold the board (`/lock` .. `/unlock`).
#[derive(Default)]
struct Board {
    notes: BTreeMap<String, String>,
    holder: Option<u64>,
    /// Connections that were told to wait, so a test can see that they were parked.
    parked: RefCell<BTreeSet<u64>>,
}

/// While a connection holds the board, the others wait; `/status` never does.
impl RouteState for Board {
    fn ready(&self, request: &Request<'_>) -> bool {
        let ready =
            request.path == "/status" || self.holder.is_none_or(|holder| holder == request.connection);
        if !ready {
            self.parked.borrow_mut().insert(request.connection);
        }
        ready
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

fn id(request: &RouteRequest<'_>) -> String {
    request.param("id").unwrap_or_default().to_owned()
}

fn board() -> Result<Router<Board>, String> {
    Router::builder(Board::default())
        .get("/status", |board: &mut Board, _: &RouteRequest<'_>| {
            Ok(Response::json(
                200,
                &json!({
                    "notes": board.notes.len(),
                    "held": board.holder.is_some(),
                    "parked": board.parked.borrow().len(),
                }),
            ))
        })
        .get("/notes/{id}", |board: &mut Board, r: &RouteRequest<'_>| {
            let id = id(r);
            match board.notes.get(&id) {
                Some(text) => Ok(Response::json(200, &json!({ "id": id, "text": text }))),
                None => Err(Response::error(404, "no_such_note", json!({ "id": id }))),
            }
        })
        .put("/notes/{id}", |board: &mut Board, r: &RouteRequest<'_>| {
            let text = String::from_utf8_lossy(r.body).into_owned();
            board.notes.insert(id(r), text);
            Ok(Response::json(200, &json!({ "id": id(r) })))
        })
        .delete("/notes/{id}", |board: &mut Board, r: &RouteRequest<'_>| {
            let old = board.notes.remove(&id(r));
            Ok(Response::json(200, &json!({ "deleted": old.is_some() })))
        })
        .post(
            "/notes",
            |board: &mut Board, r: &RouteRequest<'_>| -> RouteResult {
                let note = r.json()?;
                let (Some(id), Some(text)) = (note["id"].as_str(), note["text"].as_str()) else {
                    return Err(Response::error(
                        400,
                        "invalid_note",
                        json!({ "fix": "send {\"id\": string, \"text\": string}" }),
                    ));
                };
                board.notes.insert(id.to_owned(), text.to_owned());
                Ok(Response::json(201, &json!({ "id": id })))
            },
        )
        .get("/files/{*path}", |_: &mut Board, r: &RouteRequest<'_>| {
            Ok(Response::json(200, &json!(r.rest())))
        })
        .post("/lock", |board: &mut Board, r: &RouteRequest<'_>| {
            board.holder = Some(r.connection);
            Ok(Response::json(200, &Value::Null))
        })
        .post("/unlock", |board: &mut Board, _: &RouteRequest<'_>| {
            board.holder = None;
            Ok(Response::json(200, &Value::Null))
        })
        .build()
        .map_err(|e| e.to_string())
}

/// A forked board server; stopped and reaped on drop.
fn start_board() -> Result<ForkedServer, Failed> {
    Ok(ForkedServer::start(ServerConfig::default(), board)?)
}

/// A client of `server` whose calls wait up to `deadline`.
fn client(server: &ForkedServer, deadline: Duration) -> Client {
    server.client(ClientConfig {
        connect_budget: Duration::from_millis(500),
        call_deadline: deadline,
    })
}

/// The id and details of a refusal.
fn refusal(answer: Result<caspian_ipc::uds::RawResponse, Error>) -> Result<(u16, String, Value), Failed> {
    match answer {
        Err(Error::Remote { status, id, details }) => Ok((status, id, details)),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }
}

fn verbs_reach_their_routes_with_decoded_captures() -> Outcome {
    let server = start_board()?;
    let client = client(&server, Duration::from_secs(10));
    // `{id}` takes one percent-decoded segment: "a b/c" travels as `a%20b%2Fc`.
    let put = client.put("/notes/a%20b%2Fc", "first")?.json()?;
    check(put == json!({ "id": "a b/c" }), format!("put: {put}"))?;
    let got = client.get("/notes/a%20b%2Fc")?.json()?;
    check(
        got == json!({ "id": "a b/c", "text": "first" }),
        format!("get: {got}"),
    )?;
    let posted = client.post_json("/notes", &json!({ "id": "n2", "text": "second" }))?;
    check(posted.status == 201, format!("post_json: {}", posted.status))?;
    client.put_json("/notes/j", &"as JSON")?;
    let got = client.get("/notes/j")?.json()?;
    check(
        got["text"] == "\"as JSON\"",
        format!("put_json sends JSON text: {got}"),
    )?;
    let status = client.get("/status")?.json()?;
    check(status["notes"] == 3, format!("status: {status}"))?;
    let deleted = client.delete("/notes/n2")?.json()?;
    client.delete("/notes/j")?;
    check(
        deleted == json!({ "deleted": true }),
        format!("delete: {deleted}"),
    )?;
    let (code, id, _) = refusal(client.get("/notes/n2"))?;
    check(
        (code, id.as_str()) == (404, "no_such_note"),
        "a handler's own refusal",
    )?;
    let (code, id, _) = refusal(client.post("/notes", "{not json"))?;
    check(
        (code, id.as_str()) == (400, "invalid_json"),
        format!("{code} {id}"),
    )?;
    let (code, id, _) = refusal(client.post_json("/notes", &json!({ "id": 1 })))?;
    check(
        (code, id.as_str()) == (400, "invalid_note"),
        format!("{code} {id}"),
    )?;
    let rest = client.get("/files/a/b%3Fc/")?.json()?;
    check(rest == json!(["a", "b?c", ""]), format!("rest: {rest}"))?;
    // The router's own answers.
    let (code, id, details) = refusal(client.get("/nowhere"))?;
    check((code, id.as_str()) == (404, "no_route"), format!("{code} {id}"))?;
    check(
        details["routes"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("PUT /notes/{id}")) && r.len() == 8),
        format!("the 404 lists the routes: {details}"),
    )?;
    let wrong = client.send(Method::POST, "/status", Some(b"{}".to_vec()))?;
    check(
        wrong.status == 405 && wrong.header("allow") == Some("GET"),
        format!("405 with Allow: {} {:?}", wrong.status, wrong.header("allow")),
    )?;
    let (code, id, _) = refusal(client.get("/notes/%FF"))?;
    check(
        (code, id.as_str()) == (400, "invalid_path"),
        format!("{code} {id}"),
    )?;
    drop(server);
    check_nothing_left()
}

fn a_wrong_token_is_401_before_any_route() -> Outcome {
    let server = start_board()?;
    let wrong = Client::new(
        server.dir.socket_path(),
        Some(Token::from_string("0".repeat(64))),
        ClientConfig::default(),
    );
    let answer = wrong.put("/notes/x", "never stored");
    check(
        matches!(answer, Err(Error::Unauthorized)),
        format!("wrong token: {answer:?}"),
    )?;
    let anonymous = Client::new(server.dir.socket_path(), None, ClientConfig::default());
    let raw = anonymous.send(Method::GET, "/nowhere", None)?;
    check(
        raw.status == 401 && raw.header("www-authenticate").is_some(),
        format!("no token: {}", raw.status),
    )?;
    // Nothing reached the handler.
    let right = client(&server, Duration::from_secs(5));
    let (code, _, _) = refusal(right.get("/notes/x"))?;
    check(code == 404, "the wrong token's note was never stored")?;
    drop(server);
    check_nothing_left()
}

/// The children a test forked: each is waited for by [`Kids::wait`]; one still running
/// when the test fails early is killed and reaped on drop.
#[derive(Default)]
struct Kids(Vec<Pid>);

impl Kids {
    /// Forks a child that runs `body` with `client` and exits 0 on `true`.
    fn fork(&mut self, client: &Client, body: impl FnOnce(&Client) -> bool) -> Result<Pid, Failed> {
        // SAFETY: single-threaded test process; the child calls and _exits.
        match unsafe { fork() }? {
            ForkResult::Child => {
                let ok =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(client))).unwrap_or(false);
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                self.0.push(child);
                Ok(child)
            }
        }
    }

    /// Waits for `pid`; true when it exited 0.
    fn wait(&mut self, pid: Pid) -> Result<bool, Failed> {
        let status = waitpid(pid, None)?;
        self.0.retain(|p| *p != pid);
        Ok(status == WaitStatus::Exited(pid, 0))
    }
}

impl Drop for Kids {
    fn drop(&mut self) {
        for pid in self.0.drain(..) {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
    }
}

/// Polls `/status` (never parked) until `done` holds, within 10 s.
fn until(client: &Client, what: &str, done: impl Fn(&Value) -> bool) -> Outcome {
    let started = Instant::now();
    loop {
        let status = client.get("/status")?.json()?;
        if done(&status) {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!("{what}: still {status} after 10 s").into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn a_holder_parks_the_others_until_it_lets_go() -> Outcome {
    let server = start_board()?;
    let mut kids = Kids::default();
    let patient = client(&server, Duration::from_secs(10));
    let (go_read, go_write) = nix::unistd::pipe()?;
    // The holder locks, waits for the parent's word (at most 10 s), writes, unlocks.
    let holder = kids.fork(&patient, move |c| {
        let mut go = std::fs::File::from(go_read);
        let mut byte = [0u8; 1];
        let mut fds = [nix::poll::PollFd::new(go.as_fd(), nix::poll::PollFlags::POLLIN)];
        c.post("/lock", "").is_ok()
            && nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10_000u16)).is_ok_and(|n| n == 1)
            && go.read(&mut byte).is_ok_and(|n| n == 1)
            && c.put("/notes/k", "written while held").is_ok()
            && c.post("/unlock", "").is_ok()
    })?;
    until(&patient, "the holder locks", |s| s["held"] == true)?;
    // One with a short deadline is told `busy` (the default of `RouteState::busy`), fast.
    let impatient = client(&server, Duration::from_millis(200));
    let impatient = kids.fork(&impatient, |c| {
        let started = Instant::now();
        c.get("/notes/k").is_err_and(|e| e.remote_id() == Some("busy"))
            && started.elapsed() < Duration::from_secs(2)
    })?;
    check(
        kids.wait(impatient)?,
        "the impatient one was not told `busy` in time",
    )?;
    // A patient one is parked (the server says so), then served once the holder lets go:
    // it sees what the holder wrote after it asked.
    let waiter = kids.fork(&patient, |c| {
        let answer = c.get("/notes/k").ok().and_then(|r| r.json().ok());
        answer == Some(json!({ "id": "k", "text": "written while held" }))
    })?;
    until(&patient, "the waiter is parked", |s| s["parked"] == 2)?;
    let mut go = std::fs::File::from(go_write);
    go.write_all(b"g")?;
    check(kids.wait(holder)?, "the holder failed")?;
    check(kids.wait(waiter)?, "the waiter did not see the holder's write")?;
    // A holder that dies releases at once: a parked request goes on.
    let dead = kids.fork(&patient, |c| {
        c.post("/lock", "").is_ok() && {
            std::thread::sleep(Duration::from_secs(30));
            true
        }
    })?;
    until(&patient, "the second holder locks", |s| s["held"] == true)?;
    kill(dead, Signal::SIGKILL)?;
    kids.wait(dead)?;
    let note = patient.get("/notes/k")?.json()?;
    check(
        note["text"] == "written while held",
        format!("after the close: {note}"),
    )?;
    until(&patient, "released by the close", |s| s["held"] == false)?;
    drop(server);
    check_nothing_left()
}

fn a_bad_pattern_is_a_start_up_error() -> Outcome {
    let dir = SocketDir::create()?;
    let started = spawn_server(
        &dir,
        None,
        ServerConfig::default(),
        || {
            Router::builder(())
                .get("/a/{*rest}/b", |_: &mut (), _: &RouteRequest<'_>| {
                    Ok(Response::json(200, &Value::Null))
                })
                .build()
                .map_err(|e| e.to_string())
        },
        Duration::from_secs(5),
    );
    match started {
        Err(Error::ServerStartup(message)) => check(
            message.contains("/a/{*rest}/b") && message.contains("last"),
            format!("the pattern error names the pattern: {message}"),
        )?,
        other => return Err(format!("expected a start-up error, got {other:?}").into()),
    }
    drop(dir);
    check_nothing_left()
}

fn main() {
    run_serially(vec![
        Trial::test(
            "verbs_reach_their_routes_with_decoded_captures",
            verbs_reach_their_routes_with_decoded_captures,
        ),
        Trial::test(
            "a_wrong_token_is_401_before_any_route",
            a_wrong_token_is_401_before_any_route,
        ),
        Trial::test(
            "a_holder_parks_the_others_until_it_lets_go",
            a_holder_parks_the_others_until_it_lets_go,
        ),
        Trial::test(
            "a_bad_pattern_is_a_start_up_error",
            a_bad_pattern_is_a_start_up_error,
        ),
    ])
}
