//! A third shared resource, built from the public toolbox alone: a work queue that forked
//! workers pop from, with a deadline, and acknowledge. An item a worker took and never
//! acknowledged (it crashed, it was killed) goes back to the queue when the worker's
//! connection closes, so no item is lost.
//!
//! The parts: a `Router` over the queue's state (the server), its `RouteState` hooks
//! (park a `pop` while the queue is empty; requeue a dead worker's items), a `Client`
//! with verb methods (the proxy), and the fork `Manager` (the server and the workers).
//! The guide to building your own shared resource is `docs/PROTOCOL.md`, "Servers of
//! your own"; this file is its worked example.
//!
//!     cargo run --release --example work_queue -- --workers 4 --items 1000 [--kill-one]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use caspian_ipc::fork::Manager;
use caspian_ipc::uds::{
    serve, Client, ClientConfig, Request, Response, RouteRequest, RouteResult, RouteState, Router,
    ServerConfig, SocketDir, Token,
};
use caspian_ipc::Error;
use serde_json::{json, Value};

/// The queue's state, held by the server process alone.
#[derive(Default)]
pub struct Queue {
    next_id: u64,
    waiting: VecDeque<(u64, Value)>,
    /// Items popped and not acknowledged yet, with the connection that popped them.
    taken: HashMap<u64, (u64, Value)>,
    /// Each acknowledged item's result.
    results: BTreeMap<u64, Value>,
}

impl RouteState for Queue {
    /// A `pop` waits (without blocking anyone else) while the queue is empty.
    fn ready(&self, request: &Request<'_>) -> bool {
        request.path != "/pop" || !self.waiting.is_empty()
    }

    /// A `pop` still empty at its deadline answers "nothing", with how much is in flight.
    fn busy(&self, _request: &Request<'_>) -> Response {
        Response::json(200, &json!({ "item": null, "taken": self.taken.len() }))
    }

    /// A worker's connection closed: what it took and did not acknowledge is requeued.
    fn connection_closed(&mut self, connection: u64) {
        let lost: Vec<u64> = self
            .taken
            .iter()
            .filter(|(_, t)| t.0 == connection)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            if let Some((_, item)) = self.taken.remove(&id) {
                self.waiting.push_front((id, item));
            }
        }
    }

    /// A connection with items in hand is working, not idle.
    fn holds(&self, connection: u64) -> bool {
        self.taken.values().any(|(owner, _)| *owner == connection)
    }
}

fn push(queue: &mut Queue, request: &RouteRequest<'_>) -> RouteResult {
    let item = request.json()?;
    queue.next_id += 1;
    queue.waiting.push_back((queue.next_id, item));
    Ok(Response::json(200, &json!({ "id": queue.next_id })))
}

fn pop(queue: &mut Queue, request: &RouteRequest<'_>) -> RouteResult {
    let Some((id, item)) = queue.waiting.pop_front() else {
        return Ok(queue.busy(request));
    };
    queue.taken.insert(id, (request.connection, item.clone()));
    Ok(Response::json(200, &json!({ "id": id, "item": item })))
}

fn ack(queue: &mut Queue, request: &RouteRequest<'_>) -> RouteResult {
    let id = request.param("id").and_then(|id| id.parse().ok());
    match id.and_then(|id| queue.taken.get(&id).map(|(owner, _)| (id, *owner))) {
        Some((id, owner)) if owner == request.connection => {
            queue.taken.remove(&id);
            queue.results.insert(id, request.json()?);
            Ok(Response::json(200, &json!({ "acked": id })))
        }
        _ => Err(Response::error(
            409,
            "not_taken",
            json!({ "fix": "acknowledge only an item you popped" }),
        )),
    }
}

fn stats(queue: &mut Queue, _request: &RouteRequest<'_>) -> RouteResult {
    let body =
        json!({ "waiting": queue.waiting.len(), "taken": queue.taken.len(), "results": queue.results });
    Ok(Response::json(200, &body))
}

/// The server's routes.
pub fn router() -> Result<Router<Queue>, String> {
    Router::builder(Queue::default())
        .post("/push", push)
        .post("/pop", pop)
        .post("/ack/{id}", ack)
        .get("/stats", stats)
        .build()
        .map_err(|e| e.to_string())
}

/// The proxy a worker holds: a work queue that looks like one.
pub struct WorkQueue {
    client: Client,
}

impl WorkQueue {
    /// A proxy whose `pop` waits up to `wait` for an item.
    pub fn connect(dir: &SocketDir, token: &Token, wait: Duration) -> WorkQueue {
        let config = ClientConfig {
            call_deadline: wait,
            ..ClientConfig::default()
        };
        WorkQueue {
            client: Client::new(dir.socket_path(), Some(token.clone()), config),
        }
    }

    /// Adds an item at the back; answers its id.
    pub fn push(&self, item: &Value) -> Result<u64, Error> {
        let answer = self.client.post_json("/push", item)?.json()?;
        answer["id"]
            .as_u64()
            .ok_or_else(|| Error::Protocol(format!("push answered {answer}")))
    }

    /// The next item, or `None` when none came within the wait; with how many are taken.
    pub fn pop(&self) -> Result<(Option<(u64, Value)>, u64), Error> {
        let answer = self.client.post("/pop", Vec::new())?.json()?;
        let taken = answer["taken"].as_u64().unwrap_or(0);
        Ok((
            answer["id"].as_u64().map(|id| (id, answer["item"].clone())),
            taken,
        ))
    }

    /// Marks an item this worker popped as done, with its result.
    pub fn ack(&self, id: u64, result: &Value) -> Result<(), Error> {
        self.client.post_json(&format!("/ack/{id}"), result).map(drop)
    }

    /// How many items wait, how many are taken, and every result so far.
    pub fn stats(&self) -> Result<Value, Error> {
        self.client.get("/stats")?.json()
    }
}

/// Pushes `items` numbers, lets `workers` workers square them, and returns the server's
/// final stats with the number of items each worker acknowledged. With `kill_one`, worker
/// 0 kills itself after popping its second item, before acknowledging it.
pub fn run(workers: usize, items: u64, kill_one: bool) -> Result<(Value, Vec<Option<u64>>), Error> {
    let dir = SocketDir::create()?;
    let token = Token::generate().map_err(|e| Error::Protocol(e.to_string()))?;
    let (socket, server_token) = (dir.socket_path().to_owned(), token.clone());
    let manager = Manager::new().timeout(Duration::from_secs(60));
    let mut server = manager.spawn(move || {
        let queue = router()?;
        serve(&socket, Some(server_token), ServerConfig::default(), queue, || {}).map_err(|e| e.to_string())
    })?;
    let queue = WorkQueue::connect(&dir, &token, Duration::from_millis(300));
    for n in 0..items {
        queue.push(&json!(n))?;
    }
    let harvest = manager.multiple(workers, |worker| {
        let queue = WorkQueue::connect(&dir, &token, Duration::from_millis(300));
        let (started, mut done) = (Instant::now(), 0u64);
        while started.elapsed() < Duration::from_secs(30) {
            match queue.pop()? {
                (Some((id, item)), _) => {
                    if kill_one && worker.index() == 0 && done == 1 {
                        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                    }
                    let n = item.as_u64().unwrap_or(0);
                    queue.ack(id, &json!(n * n))?;
                    done += 1;
                }
                (None, 0) => break, // nothing waiting, nothing in anyone's hands: all done
                (None, _) => {}     // someone holds items; they may yet come back
            }
        }
        Ok::<_, Error>(done)
    })?;
    let stats = queue.stats()?;
    server.term_kill(Duration::from_secs(2));
    Ok((
        stats,
        harvest.ended.into_iter().map(|end| end.value.ok()).collect(),
    ))
}

#[allow(dead_code)] // the tests include this file as a module and call `run`
fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: u64| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    let (workers, items) = (number("--workers", 4) as usize, number("--items", 1000));
    let (stats, done) = run(workers, items, args.iter().any(|a| a == "--kill-one"))?;
    let results = stats["results"].as_object().map_or(0, |r| r.len());
    println!(
        "{results} of {items} items done; per worker: {done:?}; left: {} waiting, {} taken",
        stats["waiting"], stats["taken"]
    );
    Ok(())
}
