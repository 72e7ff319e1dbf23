//! Watching a server from outside, as `redis-cli MONITOR` watches Redis: an [`OpLog`]
//! counts every request a server answers and, while someone watches, keeps the latest ones
//! for `GET /monitor?after=N`, a long poll parked until there is something new.
//!
//! The shared hash and the shared mikobase keep one (routes `GET /monitor` and
//! `GET /stats`); a server of your own can too: call [`OpLog::record`] from
//! [`RouteState::handled`](super::RouteState::handled), route the two paths to
//! [`OpLog::monitor`] and [`OpLog::stats`], and let [`OpLog::is_waiting`] and
//! [`OpLog::idle`] answer `ready` and `busy` for `/monitor`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{Request, Response};

/// The path of the long poll.
pub const MONITOR_PATH: &str = "/monitor";
/// The path of the counters.
pub const STATS_PATH: &str = "/stats";
/// Operations kept for watchers; older ones are dropped (and counted as missed).
const KEPT: usize = 10_000;
/// How long the log keeps recording after a watcher's last poll.
const WATCH_LEASE: Duration = Duration::from_secs(30);
/// The longest request body shown per operation.
const SHOWN_BODY: usize = 200;
/// The most operations one poll answers.
const PER_POLL: usize = 1000;

/// One answered request, as a watcher sees it.
#[derive(Debug, Clone)]
struct Operation {
    seq: u64,
    at: Duration,
    worker: Option<usize>,
    line: String,
    body: String,
    status: u16,
}

/// Request counters, and the latest operations while someone watches.
#[derive(Debug)]
pub struct OpLog {
    flavour: &'static str,
    started: Instant,
    /// Requests answered (monitor and stats polls not counted).
    requests: u64,
    /// The last recorded operation's sequence number (0: none yet).
    seq: u64,
    kept: VecDeque<Operation>,
    /// Recording is on until then (a watcher polled recently); nothing is kept otherwise,
    /// so an unwatched server pays one counter increment per request.
    watched_until: Option<Instant>,
}

impl OpLog {
    /// A log for a server of this kind (`"shared-hash"`, `"shared-mikobase"`, yours).
    pub fn new(flavour: &'static str) -> Self {
        OpLog {
            flavour,
            started: Instant::now(),
            requests: 0,
            seq: 0,
            kept: VecDeque::new(),
            watched_until: None,
        }
    }

    /// Whether `request` is one of the log's own (`/monitor`, `/stats`).
    pub fn is_own(request: &Request<'_>) -> bool {
        request.path == MONITOR_PATH || request.path == STATS_PATH
    }

    /// Counts an answered request and, while watched, keeps it for the watchers.
    pub fn record(&mut self, request: &Request<'_>, response: &Response) {
        if Self::is_own(request) {
            return;
        }
        self.requests += 1;
        // Unwatched (the usual case): one increment, not even a clock read.
        let Some(until) = self.watched_until else { return };
        let now = Instant::now();
        if now > until {
            self.watched_until = None;
            return;
        }
        self.seq += 1;
        let mut line = format!("{} {}", request.method, request.path);
        if let Some(query) = request.query {
            line.push('?');
            line.push_str(query);
        }
        let shown = &request.body[..request.body.len().min(SHOWN_BODY)];
        let mut body = String::from_utf8_lossy(shown).into_owned();
        if request.body.len() > SHOWN_BODY {
            body.push('…');
        }
        if self.kept.len() == KEPT {
            self.kept.pop_front();
        }
        self.kept.push_back(Operation {
            seq: self.seq,
            at: now.duration_since(self.started),
            worker: request.worker,
            line,
            body,
            status: response.status,
        });
    }

    /// The `after` a poll asks for (`None`: "from now on").
    fn after(request: &Request<'_>) -> Option<u64> {
        request
            .query?
            .split('&')
            .find_map(|pair| pair.strip_prefix("after="))
            .and_then(|n| n.parse().ok())
    }

    /// Whether a `/monitor` poll must wait: nothing newer than its `after` yet. (A first
    /// poll, without `after`, never waits: it learns where "now" is.)
    pub fn is_waiting(&self, request: &Request<'_>) -> bool {
        request.path == MONITOR_PATH && Self::after(request).is_some_and(|after| after >= self.seq)
    }

    /// `GET /monitor?after=N`: the operations after `N` (at most 1000), `next` (the `after`
    /// of the next poll) and `missed` (operations dropped before this watcher saw them).
    /// Without `after`: none, and `next` is now. Every poll keeps recording on for 30 s.
    pub fn monitor(&mut self, request: &Request<'_>) -> Response {
        self.watched_until = Some(Instant::now() + WATCH_LEASE);
        let Some(after) = Self::after(request) else {
            return self.idle_at(self.seq);
        };
        let first_kept = self.kept.front().map_or(self.seq + 1, |op| op.seq);
        let missed = first_kept.saturating_sub(after + 1);
        let ops: Vec<Value> = self
            .kept
            .iter()
            .filter(|op| op.seq > after)
            .take(PER_POLL)
            .map(|op| {
                json!({
                    "seq": op.seq,
                    "at_ms": op.at.as_secs_f64() * 1e3,
                    "worker": op.worker,
                    "request": op.line,
                    "body": op.body,
                    "status": op.status,
                })
            })
            .collect();
        let next = ops
            .last()
            .and_then(|op| op["seq"].as_u64())
            .unwrap_or(after.max(self.seq));
        Response::json(
            200,
            &json!({ "ops": ops, "next": next, "missed": missed, "requests": self.requests }),
        )
    }

    /// What a `/monitor` poll that waited its whole deadline answers: nothing new.
    pub fn idle(&self, request: &Request<'_>) -> Response {
        self.idle_at(Self::after(request).unwrap_or(self.seq))
    }

    fn idle_at(&self, next: u64) -> Response {
        Response::json(
            200,
            &json!({ "ops": [], "next": next, "missed": 0, "requests": self.requests }),
        )
    }

    /// `GET /stats`: the server's kind, requests answered and uptime.
    pub fn stats(&self) -> Response {
        Response::json(
            200,
            &json!({
                "flavour": self.flavour,
                "requests": self.requests,
                "uptime_ms": self.started.elapsed().as_millis() as u64,
                "pid": std::process::id(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uds::http::{Method, Peer};

    fn request<'a>(method: &'a Method, path: &'a str, query: Option<&'a str>) -> Request<'a> {
        Request {
            method,
            path,
            query,
            body: b"1",
            peer: Peer {
                pid: 1,
                uid: 0,
                gid: 0,
            },
            connection: 1,
            max_depth: 64,
            worker: Some(2),
        }
    }

    #[test]
    fn operations_are_kept_only_while_watched_and_polled_in_order() {
        let mut log = OpLog::new("test");
        let ok = Response::json(200, &json!(null));
        log.record(&request(&Method::POST, "/pk/0/incr/n", None), &ok);
        let first = log.monitor(&request(&Method::GET, MONITOR_PATH, None));
        let first: Value = serde_json::from_slice(&first.body).unwrap();
        assert_eq!(first["next"], 0, "nothing was kept before anyone watched");
        assert_eq!(first["requests"], 1, "but it was counted");
        let poll = request(&Method::GET, MONITOR_PATH, Some("after=0"));
        assert!(log.is_waiting(&poll));
        log.record(&request(&Method::POST, "/pk/0/incr/n", None), &ok);
        log.record(&request(&Method::GET, "/pk/0", Some("shallow")), &ok);
        assert!(!log.is_waiting(&poll));
        let answer: Value = serde_json::from_slice(&log.monitor(&poll).body).unwrap();
        let ops = answer["ops"].as_array().unwrap();
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0]["request"], "POST /pk/0/incr/n");
        assert_eq!(ops[0]["worker"], 2);
        assert_eq!(ops[0]["body"], "1");
        assert_eq!(ops[1]["request"], "GET /pk/0?shallow");
        assert_eq!(answer["next"], 2);
        assert_eq!(answer["missed"], 0);
        // Its own polls are neither counted nor kept.
        log.record(&poll, &ok);
        assert_eq!(log.requests, 3);
    }

    #[test]
    fn a_slow_watcher_is_told_what_it_missed() {
        let mut log = OpLog::new("test");
        let ok = Response::json(200, &json!(null));
        log.monitor(&request(&Method::GET, MONITOR_PATH, None));
        for _ in 0..KEPT + 5 {
            log.record(&request(&Method::POST, "/pk/0/incr/n", None), &ok);
        }
        let answer = log.monitor(&request(&Method::GET, MONITOR_PATH, Some("after=0")));
        let answer: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(answer["missed"], 5);
        assert_eq!(answer["ops"].as_array().unwrap().len(), PER_POLL);
        assert_eq!(answer["ops"][0]["seq"], 6);
    }
}
