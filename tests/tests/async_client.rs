//! Async programs: the async client and hash proxy (feature `tokio`) on a tokio runtime,
//! and the fork server (`prefork`) that runs jobs for a program with threads. Servers are
//! forked from the single-threaded main thread before any runtime is built, so these run
//! serially in a `harness = false` binary.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use caspian_ipc::prefork::Prefork;
use caspian_ipc::share::AsyncHash;
use caspian_ipc::uds::http::Method;
use caspian_ipc::uds::{
    AsyncClient, ClientConfig, Handler, Request, Response, ServerConfig, SocketDir, Token,
};
use caspian_ipc::{Error, Share, WorkerEnd};
use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, ForkedServer, Trial};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};

type Outcome = Result<(), Failed>;

/// Answers with what it saw (and the connection it came on); `/slow` after 600 ms,
/// `/missing` with an error body.
struct Echo;

impl Handler for Echo {
    fn handle(&mut self, request: &Request<'_>) -> Response {
        match request.path {
            "/slow" => std::thread::sleep(Duration::from_millis(600)),
            "/missing" => return Response::error(404, "no_such_thing", json!({"path": request.path})),
            _ => {}
        }
        Response::json(
            200,
            &json!({
                "method": request.method.as_str(),
                "path": request.path,
                "query": request.query,
                "body": String::from_utf8_lossy(request.body),
                "connection": request.connection,
            }),
        )
    }
}

/// A forked Echo server with `config`; stopped and reaped on drop.
fn start_echo(config: ServerConfig) -> Result<ForkedServer, Error> {
    ForkedServer::start(config, || Ok(Echo))
}

/// An async client of `server` with `config`.
fn async_client(server: &ForkedServer, config: ClientConfig) -> AsyncClient {
    AsyncClient::new(server.dir.socket_path(), Some(server.token.clone()), config)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failed> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

fn values_and_remote_errors_come_back() -> Outcome {
    let server = start_echo(ServerConfig::default())?;
    let client = async_client(&server, ClientConfig::default());
    let outcome = runtime()?.block_on(async {
        let answer = client
            .call(Method::POST, "/a/b?x=1", Some(b"{\"n\":1}".to_vec()))
            .await?;
        let seen = answer.json()?;
        check(
            answer.status == 200
                && seen["method"] == "POST"
                && seen["path"] == "/a/b"
                && seen["query"] == "x=1"
                && seen["body"] == "{\"n\":1}",
            format!("{seen}"),
        )?;
        // A non-2xx answer: `send` returns it, `call` maps it to the typed error.
        let raw = client.send(Method::GET, "/missing", None).await?;
        check(raw.status == 404, format!("status {}", raw.status))?;
        let err = client.call(Method::GET, "/missing", None).await.unwrap_err();
        check(err.remote_id() == Some("no_such_thing"), format!("{err:?}"))?;
        // A target the request line cannot carry is refused before anything is sent.
        let err = client.call(Method::GET, "/a b", None).await.unwrap_err();
        check(matches!(err, Error::Protocol(_)), format!("{err:?}"))
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

fn a_wrong_token_is_unauthorized() -> Outcome {
    let server = start_echo(ServerConfig::default())?;
    let wrong = AsyncClient::new(
        server.dir.socket_path(),
        Some(Token::from_string("0".repeat(64))),
        ClientConfig::default(),
    );
    let none = AsyncClient::new(server.dir.socket_path(), None, ClientConfig::default());
    let outcome = runtime()?.block_on(async {
        for client in [&wrong, &none] {
            let err = client.call(Method::GET, "/x", None).await.unwrap_err();
            check(matches!(err, Error::Unauthorized), format!("{err:?}"))?;
        }
        Ok::<_, Failed>(())
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

/// The connect retry: with no server listening yet the client keeps trying for its
/// budget, then gives up with `ConnectionRefused`.
fn connecting_waits_within_the_budget() -> Outcome {
    let dir = SocketDir::create()?;
    let config = ClientConfig {
        connect_budget: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let client = AsyncClient::new(dir.socket_path(), None, config);
    let started = Instant::now();
    let err = runtime()?
        .block_on(client.call(Method::GET, "/x", None))
        .unwrap_err();
    let waited = started.elapsed();
    check(matches!(err, Error::ConnectionRefused { .. }), format!("{err:?}"))?;
    check(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        format!("gave up after {waited:?}"),
    )?;
    drop(dir);
    check_nothing_left()
}

fn a_slow_answer_times_out_by_the_deadline() -> Outcome {
    let server = start_echo(ServerConfig::default())?;
    let deadline = Duration::from_millis(200);
    let hasty = async_client(
        &server,
        ClientConfig {
            call_deadline: deadline,
            ..ClientConfig::default()
        },
    );
    let patient = async_client(&server, ClientConfig::default());
    let outcome = runtime()?.block_on(async {
        let started = Instant::now();
        let err = hasty.call(Method::GET, "/slow", None).await.unwrap_err();
        let took = started.elapsed();
        check(
            matches!(err, Error::Timeout { after } if after == deadline),
            format!("{err:?}"),
        )?;
        check(took < Duration::from_millis(550), format!("took {took:?}"))?;
        // The server is fine; a client with time to wait is answered.
        let answer = patient.call(Method::GET, "/after", None).await?;
        check(answer.json()?["path"] == "/after", "answer after a timeout")
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

fn a_killed_server_is_server_gone() -> Outcome {
    let mut server = start_echo(ServerConfig::default())?;
    let client = async_client(&server, ClientConfig::default());
    let runtime = runtime()?;
    runtime.block_on(client.call(Method::GET, "/x", None))?;
    server.stop(Signal::SIGKILL);
    let outcome = runtime.block_on(async {
        for round in 0..2 {
            let started = Instant::now();
            let err = client.call(Method::GET, "/x", None).await.unwrap_err();
            check(
                matches!(err, Error::ServerGone { .. }),
                format!("round {round}: {err:?}"),
            )?;
            check(
                started.elapsed() < Duration::from_millis(300),
                format!("round {round} took {:?}", started.elapsed()),
            )?;
        }
        Ok::<_, Failed>(())
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

fn many_concurrent_calls_share_a_few_connections() -> Outcome {
    let server = start_echo(ServerConfig::default())?;
    let client = async_client(&server, ClientConfig::default()).max_connections(4);
    let outcome = runtime()?.block_on(async {
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    let answer = client
                        .call(
                            Method::PUT,
                            &format!("/item/{i}"),
                            Some(i.to_string().into_bytes()),
                        )
                        .await?;
                    answer.json()
                })
            })
            .collect();
        let mut connections = BTreeSet::new();
        for (i, task) in tasks.into_iter().enumerate() {
            let seen = task.await.map_err(|e| e.to_string())??;
            check(
                seen["path"] == format!("/item/{i}") && seen["body"] == i.to_string().as_str(),
                format!("call {i} got {seen}"),
            )?;
            connections.insert(seen["connection"].as_u64().unwrap_or(u64::MAX));
        }
        check(
            connections.len() <= 4,
            format!("{} connections for a pool of 4", connections.len()),
        )
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

/// An idle connection is reused, but not within the margin of the server's announced
/// idle limit (`Keep-Alive: timeout=2`: not after 1 s idle), where the server could close
/// it under a request.
fn keep_alive_reuse_honours_the_servers_timeout() -> Outcome {
    let server = start_echo(ServerConfig {
        idle_timeout: Some(Duration::from_secs(2)),
        ..ServerConfig::default()
    })?;
    let client = async_client(&server, ClientConfig::default());
    let outcome = runtime()?.block_on(async {
        let connection =
            |answer: caspian_ipc::uds::RawResponse| answer.json().map(|v| v["connection"].clone());
        let first = client.call(Method::GET, "/1", None).await?;
        check(
            first.header("keep-alive") == Some("timeout=2"),
            format!("{:?}", first.header("keep-alive")),
        )?;
        let first = connection(first)?;
        let second = connection(client.call(Method::GET, "/2", None).await?)?;
        check(
            first == second,
            format!("not reused at once: {first} then {second}"),
        )?;
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let third = connection(client.call(Method::GET, "/3", None).await?)?;
        check(
            third != second,
            format!("reused {third} near the server's idle close"),
        )
    });
    drop(server);
    outcome?;
    check_nothing_left()
}

/// Workers that run async code: each forked worker builds its own runtime (the fork came
/// first) and uses the shared hash through `AsyncHash`, many calls at once.
fn workers_run_their_own_runtime_with_an_async_hash() -> Outcome {
    let state = Share::new(3).run(|worker, hash| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let hash = AsyncHash::from(&hash);
        runtime
            .block_on(async {
                let counts: Vec<_> = (0..10)
                    .map(|_| {
                        let hash = hash.clone();
                        tokio::spawn(async move { hash.incr("visits", 1).await })
                    })
                    .collect();
                for count in counts {
                    count.await.map_err(|e| Error::Protocol(e.to_string()))??;
                }
                let mine = hash.at("workers");
                let key = format!("w{}", worker.index());
                mine.set(&key, &json!({"done": true})).await?;
                let back: Option<Value> = mine.get_as(&key).await?;
                if back != Some(json!({"done": true})) || !mine.contains(&key).await? {
                    return Err(Error::Protocol(format!("read back {back:?}")));
                }
                hash.set(&format!("scratch{}", worker.index()), &1).await?;
                let old = hash.delete(&format!("scratch{}", worker.index())).await?;
                if old != Some(json!(1)) || hash.get_value("absent").await?.is_some() {
                    return Err(Error::Protocol(format!("delete gave {old:?}")));
                }
                Ok(())
            })
            .map_err(|e| e.to_string())
    })?;
    check(state["visits"] == 30, format!("{state}"))?;
    check(
        state["workers"] == json!({"w0": {"done": true}, "w1": {"done": true}, "w2": {"done": true}}),
        format!("{state}"),
    )?;
    check(
        state.as_object().is_some_and(|o| o.len() == 2),
        format!("scratch keys left: {state}"),
    )?;
    check_nothing_left()
}

/// A program with threads (here a plain extra thread and a runtime) cannot run `share`
/// itself, but a fork server started before the threads runs its jobs: values, a failing
/// job, a job past its timeout, an unknown job, and calls from many tasks at once.
fn a_fork_server_runs_jobs_for_a_threaded_program() -> Outcome {
    let prefix = String::from("visits"); // jobs may borrow from main
    let jobs = Prefork::new()
        .job("count", |workers: usize| {
            let state = caspian_ipc::share(workers, |_, hash| hash.incr(&prefix, 1).map(drop))?;
            Ok::<_, Error>(state)
        })
        .job("fail", |reason: String| Err::<(), _>(reason))
        .job("sleep", |ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            Ok::<_, String>(ms)
        })
        .timeout(Duration::from_millis(800))
        .start()?;
    let (release, parked) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = parked.recv();
    });
    let outcome = (|| -> Outcome {
        // Threads now: forking here is refused, as it should be.
        let refused = caspian_ipc::share(1, |_, hash| hash.incr("n", 1).map(drop)).unwrap_err();
        check(
            matches!(refused, Error::ForkUnsafe { .. }),
            format!("{refused:?}"),
        )?;
        runtime()?.block_on(async {
            let state: Value = jobs.run_async("count", &3).await?;
            check(state["visits"] == 3, format!("{state}"))?;
            let (a, b) = tokio::join!(
                jobs.run_async::<_, Value>("count", &2),
                jobs.run_async::<_, u64>("sleep", &10)
            );
            check(a?["visits"] == 2 && b? == 10, "two jobs at once")?;
            let err = jobs.run_async::<_, Value>("fail", "no luck").await.unwrap_err();
            check(
                matches!(&err, Error::ChildrenFailed { failures }
                    if matches!(&failures[0].end, WorkerEnd::Error { message } if message == "no luck")),
                format!("{err:?}"),
            )?;
            let started = Instant::now();
            let err = jobs.run_async::<_, u64>("sleep", &60_000).await.unwrap_err();
            check(
                matches!(&err, Error::ChildrenFailed { failures } if failures[0].end == WorkerEnd::Stopped),
                format!("{err:?}"),
            )?;
            check(
                started.elapsed() < Duration::from_secs(5),
                format!("stopped after {:?}", started.elapsed()),
            )?;
            let err = jobs.run_async::<_, Value>("nope", &()).await.unwrap_err();
            check(matches!(err, Error::InvalidValue { .. }), format!("{err:?}"))?;
            // The blocking call works from any thread too.
            let state: Value = jobs.run("count", &1)?;
            check(state["visits"] == 1, format!("{state}"))
        })
    })();
    release.send(()).ok();
    thread.join().ok();
    let pid = jobs.pid();
    drop(jobs);
    outcome?;
    check(pid.is_some(), "the fork server has a pid")?;
    check_nothing_left()
}

/// A fork server that died (here: SIGKILL) is `ConnectionLost`, at once and from then on;
/// it is reaped all the same.
fn a_dead_fork_server_is_connection_lost() -> Outcome {
    let jobs = Prefork::new().job("one", |()| Ok::<_, String>(1)).start()?;
    check(jobs.run::<_, i32>("one", &())? == 1, "a first job")?;
    let pid = jobs.pid().ok_or("no pid")?;
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL)?;
    for round in 0..2 {
        let started = Instant::now();
        let err = jobs.run::<_, i32>("one", &()).unwrap_err();
        check(
            matches!(err, Error::ConnectionLost { .. }) && started.elapsed() < Duration::from_secs(3),
            format!("round {round}: {err:?} after {:?}", started.elapsed()),
        )?;
    }
    drop(jobs);
    check_nothing_left()
}

/// Started with threads already running, the fork server is refused: there is no opt-out.
fn a_fork_server_needs_a_single_threaded_start() -> Outcome {
    let (release, parked) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let _ = parked.recv();
    });
    let outcome = Prefork::new().job("x", |()| Ok::<_, String>(())).start();
    release.send(()).ok();
    thread.join().ok();
    let err = outcome.unwrap_err();
    check(matches!(err, Error::ForkUnsafe { .. }), format!("{err:?}"))?;
    check_nothing_left()
}

fn main() {
    run_serially(vec![
        Trial::test(
            "values_and_remote_errors_come_back",
            values_and_remote_errors_come_back,
        ),
        Trial::test("a_wrong_token_is_unauthorized", a_wrong_token_is_unauthorized),
        Trial::test(
            "connecting_waits_within_the_budget",
            connecting_waits_within_the_budget,
        ),
        Trial::test(
            "a_slow_answer_times_out_by_the_deadline",
            a_slow_answer_times_out_by_the_deadline,
        ),
        Trial::test("a_killed_server_is_server_gone", a_killed_server_is_server_gone),
        Trial::test(
            "many_concurrent_calls_share_a_few_connections",
            many_concurrent_calls_share_a_few_connections,
        ),
        Trial::test(
            "keep_alive_reuse_honours_the_servers_timeout",
            keep_alive_reuse_honours_the_servers_timeout,
        ),
        Trial::test(
            "workers_run_their_own_runtime_with_an_async_hash",
            workers_run_their_own_runtime_with_an_async_hash,
        ),
        Trial::test(
            "a_fork_server_runs_jobs_for_a_threaded_program",
            a_fork_server_runs_jobs_for_a_threaded_program,
        ),
        Trial::test(
            "a_dead_fork_server_is_connection_lost",
            a_dead_fork_server_is_connection_lost,
        ),
        Trial::test(
            "a_fork_server_needs_a_single_threaded_start",
            a_fork_server_needs_a_single_threaded_start,
        ),
    ])
}
