//! The shared-hash proxies workers hold: they look like a hash and an array, and every
//! operation is one HTTP request to the server.
//!
//! A proxy is bound to a node's primary key plus a (usually empty) path of keys below it.
//! [`SharedHash::get`] returns proxies bound to the child's own pk; [`SharedHash::at`]
//! extends the path without a round trip, so a deep write on an empty hash creates the
//! missing intermediate hashes on the server.

use std::time::Instant;

use hyper::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::tree::Pk;
use super::value::to_json;
use super::{X_PK, X_VERSION};
use crate::error::{Error, Result};
use crate::uds::client::status_error;
use crate::uds::http::push_segment;
use crate::uds::{Client, RawResponse};

/// Where a proxy points: a node on one server, plus keys below it.
#[derive(Clone, Debug)]
struct Address {
    client: Client,
    pk: Pk,
    path: Vec<String>,
}

impl PartialEq for Address {
    fn eq(&self, other: &Self) -> bool {
        self.client.path() == other.client.path() && self.pk == other.pk && self.path == other.path
    }
}

impl Eq for Address {}

impl Address {
    fn child(&self, key: &str) -> Address {
        let mut path = self.path.clone();
        path.push(key.to_owned());
        Address {
            client: self.client.clone(),
            pk: self.pk,
            path,
        }
    }

    fn bound(&self, pk: Pk) -> Address {
        Address {
            client: self.client.clone(),
            pk,
            path: Vec::new(),
        }
    }

    /// `/pk/{pk}/{op}/{path...}/{key}` with every key percent-encoded as one segment.
    fn url(&self, op: &str, key: Option<&str>) -> String {
        url(self.pk, &self.path, op, key)
    }

    fn call(&self, method: Method, url: &str, body: Option<&Value>) -> Result<RawResponse> {
        let body = body.map(|v| serde_json::to_vec(v).unwrap_or_default());
        self.client.call(method, url, body)
    }

    /// GET a value; `None` when nothing is stored there.
    fn read(&self, key: Option<&str>, shallow: bool) -> Result<Option<RawResponse>> {
        let mut url = self.url("value", key);
        if shallow {
            url.push_str("?shallow");
        }
        match self.call(Method::GET, &url, None) {
            Ok(response) => Ok(Some(response)),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn entry(&self, response: &RawResponse) -> Result<Entry> {
        let value = response.json()?;
        Ok(match pk_header(response)? {
            None => Entry::Value(value),
            Some(pk) if value.is_array() => Entry::Array(SharedArray { at: self.bound(pk) }),
            Some(pk) => Entry::Hash(SharedHash { at: self.bound(pk) }),
        })
    }

    fn set(&self, key: &str, value: &Value) -> Result<Option<Entry>> {
        let response = self.call(Method::PUT, &self.url("value", Some(key)), Some(value))?;
        Ok(pk_header(&response)?.map(|pk| match value {
            Value::Array(_) => Entry::Array(SharedArray { at: self.bound(pk) }),
            _ => Entry::Hash(SharedHash { at: self.bound(pk) }),
        }))
    }

    fn delete(&self, key: &str) -> Result<Option<Value>> {
        let response = self.call(Method::DELETE, &self.url("value", Some(key)), None)?;
        deleted(&response)
    }

    fn get_json<T: DeserializeOwned>(&self, op: &str) -> Result<T> {
        decode(op, &self.call(Method::GET, &self.url(op, None), None)?)
    }

    fn snapshot(&self) -> Result<Value> {
        self.call(Method::GET, &self.url("value", None), None)?.json()
    }
}

/// `/pk/{pk}/{op}/{path...}/{key}` with every key percent-encoded as one segment.
pub(super) fn url(pk: Pk, path: &[String], op: &str, key: Option<&str>) -> String {
    let mut url = String::with_capacity(32);
    url.push_str("/pk/");
    url.push_str(itoa::Buffer::new().format(pk));
    url.push('/');
    url.push_str(op);
    for segment in path.iter().map(String::as_str).chain(key) {
        push_segment(&mut url, segment);
    }
    url
}

/// What a `DELETE` answered: the old value, `None` when the key was absent.
pub(super) fn deleted(response: &RawResponse) -> Result<Option<Value>> {
    let body = response.json()?;
    Ok(match body["deleted"] {
        Value::Bool(true) => Some(body["old"].clone()),
        _ => None,
    })
}

/// The answer of `op` as `T`.
pub(super) fn decode<T: DeserializeOwned>(op: &str, response: &RawResponse) -> Result<T> {
    serde_json::from_slice(&response.body)
        .map_err(|e| Error::Protocol(format!("`{op}` answered unexpected JSON: {e}")))
}

/// The stored value under `key` as `T`.
pub(super) fn value_as<T: DeserializeOwned>(key: &str, value: Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| Error::InvalidValue {
        reason: format!("`{key}`: {e}"),
    })
}

/// The new count an `incr` answered.
pub(super) fn count(response: &RawResponse) -> Result<i64> {
    let body = response.json()?;
    body.as_i64().ok_or_else(|| {
        Error::Protocol(format!(
            "incr answered {body}, which is not an integer (is the stored number a float? use incr_f64)"
        ))
    })
}

fn pk_header(response: &RawResponse) -> Result<Option<Pk>> {
    response
        .header(X_PK)
        .map(|v| {
            v.parse()
                .map_err(|_| Error::Protocol(format!("bad X-PK header `{v}`")))
        })
        .transpose()
}

/// `no_such_key` and `index_out_of_range` mean "nothing stored there" to a reader.
pub(super) fn absent(error: &Error) -> bool {
    matches!(error.remote_id(), Some("no_such_key" | "index_out_of_range"))
}

/// What a read finds: a plain value, or a proxy for a stored hash or array.
#[derive(Clone, Debug, PartialEq)]
pub enum Entry {
    /// A scalar (string, number, boolean or null).
    Value(Value),
    /// A hash, bound to its node.
    Hash(SharedHash),
    /// An array, bound to its node.
    Array(SharedArray),
}

impl Entry {
    /// The hash proxy, if this is a hash.
    pub fn into_hash(self) -> Option<SharedHash> {
        match self {
            Entry::Hash(h) => Some(h),
            _ => None,
        }
    }
    /// The array proxy, if this is an array.
    pub fn into_array(self) -> Option<SharedArray> {
        match self {
            Entry::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The scalar, if this is one.
    pub fn into_value(self) -> Option<Value> {
        match self {
            Entry::Value(v) => Some(v),
            _ => None,
        }
    }
}

/// Outcome of [`SharedHash::compare_and_set`].
#[derive(Clone, Debug, PartialEq)]
pub struct Swap {
    /// Whether the new value was stored.
    pub swapped: bool,
    /// The value stored now (`None`: nothing is stored).
    pub current: Option<Value>,
}

/// A proxy for a hash held by the server. Two proxies are equal when they address the
/// same node (same server, same pk, same path).
///
/// Every method is one request (except [`at`](SharedHash::at) and
/// [`array_at`](SharedHash::array_at), which make none); each is applied atomically in
/// the server, so workers never see one half done. A worker gets the root proxy from
/// [`share`](crate::share()):
///
/// ```no_run
/// use caspian_ipc::{share, Entry};
/// use serde_json::json;
///
/// let state = share(2, |worker, hash| {
///     hash.incr("runs", 1)?; // atomic across workers
///     let me = hash.at("workers").at(&worker.index().to_string()); // no request
///     me.set("status", &"running")?; // creates `workers` and `workers.N`
///     if let Some(Entry::Hash(config)) = hash.get("config")? {
///         // A proxy bound to the stored hash, not a copy of it.
///         let _verbosity = config.get_value("verbosity")?;
///     }
///     Ok::<_, caspian_ipc::Error>(())
/// })?;
/// assert_eq!(state["runs"], json!(2));
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedHash {
    at: Address,
}

/// A proxy for an array held by the server.
///
/// ```no_run
/// # caspian_ipc::share(1, |_, hash| {
/// use serde_json::json;
///
/// let log = hash.array_at("log"); // no request; the array need not exist yet
/// log.push(&"started")?; // atomic append: creates the array
/// assert_eq!(log.push(&json!({"step": 2}))?, 2); // the new length
/// assert_eq!(log.get_value(0)?, Some(json!("started")));
/// assert_eq!(log.get(5)?, None); // out of range
/// for item in log.iter()? {
///     // one request: a snapshot of the whole array
///     println!("{item}");
/// }
/// # Ok::<_, caspian_ipc::Error>(())
/// # })?;
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedArray {
    at: Address,
}

impl SharedHash {
    /// Where this proxy points: the client, the node and the keys below it.
    #[cfg(feature = "tokio")]
    pub(super) fn address(&self) -> (&Client, Pk, &[String]) {
        (&self.at.client, self.at.pk, &self.at.path)
    }

    /// The root proxy (pk 0) of the server behind `client`.
    pub fn root(client: Client) -> Self {
        SharedHash {
            at: Address {
                client,
                pk: 0,
                path: Vec::new(),
            },
        }
    }

    /// Joins a run's shared hash from a process the run did not fork, on another host
    /// too: the root proxy of the server at `url` (`caspian+tls://host:port`, a run
    /// listening with [`crate::Share::listen`]), whose certificate must pass `trust`,
    /// authenticating with the run's `token`. Every proxy operation is then the same
    /// one request as in a forked worker; the trust files are read here, and nothing is
    /// sent until the first call, which refuses an untrusted certificate with
    /// [`crate::Error::CertificateNotTrusted`] before the token leaves this process.
    ///
    /// ```no_run
    /// use caspian_ipc::uds::{Token, Trust};
    /// use caspian_ipc::SharedHash;
    ///
    /// let token = Token::from_file("run.token".as_ref())?;
    /// let hash = SharedHash::join("caspian+tls://build-1:7878", Trust::CaFile("ca.pem".into()), token)?;
    /// hash.incr("remote-visits", 1)?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    #[cfg(feature = "tls")]
    pub fn join(url: &str, trust: crate::uds::Trust, token: crate::uds::Token) -> Result<Self> {
        let remote = crate::uds::Remote::tls(url, trust)?;
        Ok(Self::join_remote(
            remote,
            token,
            crate::uds::ClientConfig::default(),
        ))
    }

    /// [`SharedHash::join`] with a [`crate::uds::Remote`] made by hand (plain TCP on
    /// loopback too) and the client's timing.
    pub fn join_remote(
        remote: crate::uds::Remote,
        token: crate::uds::Token,
        config: crate::uds::ClientConfig,
    ) -> Self {
        Self::root(Client::remote(remote, token, config))
    }

    /// The entry under `key`: a scalar, or a proxy bound to the stored hash or array.
    /// `None` when the key is absent. One request; containers are not transferred.
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// use caspian_ipc::Entry;
    /// use serde_json::json;
    ///
    /// hash.set("name", &"Nostromo")?;
    /// hash.set("crew", &json!({"captain": "Dallas"}))?;
    /// assert_eq!(hash.get("name")?, Some(Entry::Value(json!("Nostromo"))));
    /// if let Some(Entry::Hash(crew)) = hash.get("crew")? {
    ///     // Bound to the stored hash: reads and writes go to the server's copy.
    ///     assert_eq!(crew.get_value("captain")?, Some(json!("Dallas")));
    /// }
    /// assert_eq!(hash.get("missing")?, None);
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.at
            .read(Some(key), true)?
            .map(|r| self.at.entry(&r))
            .transpose()
    }

    /// The value under `key` as plain JSON (containers materialised). `None` if absent.
    pub fn get_value(&self, key: &str) -> Result<Option<Value>> {
        self.at.read(Some(key), false)?.map(|r| r.json()).transpose()
    }

    /// The value under `key` deserialised into `T`.
    pub fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_value(key)?.map(|v| value_as(key, v)).transpose()
    }

    /// Stores `value` under `key`, replacing what was there (a whole subtree goes in one
    /// request). Storing a hash or array adopts it: the returned proxy writes to the
    /// server's copy. Missing intermediate hashes on this proxy's path are created.
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// use caspian_ipc::Entry;
    /// use serde_json::json;
    ///
    /// hash.set("count", &3)?; // replaces what was there
    /// if let Some(Entry::Hash(ship)) = hash.set("ship", &json!({"name": "Sulaco"}))? {
    ///     ship.set("class", &"Conestoga")?; // adopted: writes through to the stored hash
    /// }
    /// hash.at("a").at("b").set("c", &true)?; // creates `a` and `a.b`
    /// assert_eq!(
    ///     hash.snapshot()?,
    ///     json!({"count": 3, "ship": {"name": "Sulaco", "class": "Conestoga"}, "a": {"b": {"c": true}}})
    /// );
    /// // What JSON cannot hold is refused before anything is sent.
    /// assert!(matches!(hash.set("bad", &f64::NAN), Err(caspian_ipc::Error::InvalidValue { .. })));
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<Option<Entry>> {
        self.at.set(key, &to_json(value)?)
    }

    /// Stores a hash under `key` and returns its proxy (adoption). `value` must serialise
    /// to a JSON object.
    pub fn set_hash<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<SharedHash> {
        let value = to_json(value)?;
        if !value.is_object() {
            return Err(Error::InvalidValue {
                reason: format!("set_hash(`{key}`) needs a JSON object, got {value}"),
            });
        }
        match self.at.set(key, &value)? {
            Some(Entry::Hash(h)) => Ok(h),
            other => Err(Error::Protocol(format!("storing a hash returned {other:?}"))),
        }
    }

    /// Removes `key`; returns what was stored (`None`: it was absent).
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// hash.set("draft", &"text")?;
    /// assert_eq!(hash.delete("draft")?, Some(serde_json::json!("text")));
    /// assert_eq!(hash.delete("draft")?, None); // already gone: not an error
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn delete(&self, key: &str) -> Result<Option<Value>> {
        self.at.delete(key)
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: &str) -> Result<bool> {
        self.at.child(key).get_json("contains")
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Result<Vec<String>> {
        self.at.get_json("keys")
    }

    /// The number of keys.
    pub fn len(&self) -> Result<usize> {
        self.at.get_json("len")
    }

    /// Whether the hash has no keys.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A proxy for the hash under `key`, without a round trip. It need not exist yet:
    /// writes through it create it.
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// use serde_json::json;
    ///
    /// let stats = hash.at("stats").at("worker-0"); // no request; need not exist
    /// stats.incr("files", 1)?; // creates `stats` and `stats.worker-0`
    /// assert_eq!(hash.at("stats").at("worker-0").get_value("files")?, Some(json!(1)));
    /// assert_eq!(stats, hash.at("stats").at("worker-0")); // the same address
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn at(&self, key: &str) -> SharedHash {
        SharedHash {
            at: self.at.child(key),
        }
    }

    /// A proxy for the array under `key`, without a round trip.
    pub fn array_at(&self, key: &str) -> SharedArray {
        SharedArray {
            at: self.at.child(key),
        }
    }

    /// The whole hash as plain JSON, in one request.
    pub fn snapshot(&self) -> Result<Value> {
        self.at.snapshot()
    }

    /// Iterates over a snapshot taken in one request (later changes are not seen).
    pub fn iter(&self) -> Result<serde_json::map::IntoIter> {
        match self.snapshot()? {
            Value::Object(map) => Ok(map.into_iter()),
            other => Err(Error::Protocol(format!(
                "a hash snapshot was not an object: {other}"
            ))),
        }
    }

    /// Atomically adds `by` to the integer under `key` (absent counts as 0); returns the
    /// new value. Counts exactly in i64: a sum outside it is `integer_overflow`, a stored
    /// float `not_an_integer`, both refused before anything is stored (D-H12).
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// let total = hash.incr("total", 5)?; // absent counts as 0
    /// assert!(total >= 5); // other workers may have counted too
    /// hash.incr("total", -2)?;
    /// hash.set("ratio", &0.5)?;
    /// let refused = hash.incr("ratio", 1).unwrap_err(); // a float: use incr_f64
    /// assert_eq!(refused.remote_id(), Some("not_an_integer"));
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn incr(&self, key: &str, by: i64) -> Result<i64> {
        count(
            &self
                .at
                .call(Method::POST, &self.at.url("incr", Some(key)), Some(&json!(by)))?,
        )
    }

    /// Atomically adds `by` to the number under `key` as floats; returns the new value.
    /// A stored integer beyond ±2^53 is refused (`inexact_float`) rather than rounded.
    pub fn incr_f64(&self, key: &str, by: f64) -> Result<f64> {
        let by = to_json(&by)?;
        let body = self
            .at
            .call(Method::POST, &self.at.url("incr", Some(key)), Some(&by))?
            .json()?;
        body.as_f64()
            .ok_or_else(|| Error::Protocol(format!("incr answered {body}")))
    }

    /// Atomically stores `new` under `key` if the current value equals `expected`
    /// (`None`: absent).
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// use serde_json::json;
    ///
    /// // Become the leader only if nobody is.
    /// let swap = hash.compare_and_set("leader", None, &"worker-0")?;
    /// if !swap.swapped {
    ///     println!("the leader is {:?}", swap.current);
    /// }
    /// // Move a state forward only from the state we saw.
    /// hash.compare_and_set("phase", Some(&json!("loading")), &"running")?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn compare_and_set<T: Serialize + ?Sized>(
        &self,
        key: &str,
        expected: Option<&Value>,
        new: &T,
    ) -> Result<Swap> {
        let mut body = json!({ "value": to_json(new)? });
        if let Some(expected) = expected {
            body["expected"] = expected.clone();
        }
        let answer = self
            .at
            .call(Method::POST, &self.at.url("cas", Some(key)), Some(&body))?
            .json()?;
        Ok(Swap {
            swapped: answer["swapped"] == Value::Bool(true),
            current: answer
                .get("current")
                .filter(|v| !v.is_null() || answer["swapped"] == Value::Bool(true))
                .cloned(),
        })
    }

    /// Atomically stores `value` under `key` unless the key is present; `true` if stored.
    pub fn set_if_absent<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<bool> {
        let answer = self
            .at
            .call(
                Method::POST,
                &self.at.url("set-if-absent", Some(key)),
                Some(&to_json(value)?),
            )?
            .json()?;
        Ok(answer["inserted"] == Value::Bool(true))
    }

    /// Atomically appends `value` to the array under `key`, creating the array when
    /// absent; returns the new length.
    pub fn append<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<usize> {
        self.array_at(key).push(value)
    }

    /// Replaces the value under `key` with `update(current)`, retrying when another
    /// worker changed the hash in between (optimistic concurrency over the node's
    /// version). Gives up with [`Error::Timeout`] after the call deadline.
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// use serde_json::json;
    ///
    /// // Read, change, write back; retried if another worker wrote in between.
    /// let seen = hash.modify("seen", |current| {
    ///     let mut seen = current.cloned().unwrap_or_else(|| json!([]));
    ///     if let Some(items) = seen.as_array_mut() {
    ///         items.push(json!("me"));
    ///     }
    ///     seen
    /// })?;
    /// assert!(seen.as_array().is_some_and(|items| !items.is_empty()));
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn modify<F>(&self, key: &str, mut update: F) -> Result<Value>
    where
        F: FnMut(Option<&Value>) -> Value,
    {
        let deadline = self.at.client.config().call_deadline;
        let started = Instant::now();
        loop {
            let (current, version) = self.versioned(key)?;
            let new = to_json(&update(current.as_ref()))?;
            let body = json!({ "version": version, "value": new });
            match self.at.call(
                Method::POST,
                &self.at.url("set-if-version", Some(key)),
                Some(&body),
            ) {
                Ok(_) => return Ok(new),
                Err(e) if e.remote_id() == Some("version_conflict") => {
                    if started.elapsed() >= deadline {
                        return Err(Error::Timeout { after: deadline });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The value under `key` and the version of the node holding it (`None`: that node
    /// does not exist yet).
    fn versioned(&self, key: &str) -> Result<(Option<Value>, Option<u64>)> {
        let response = self
            .at
            .client
            .send(Method::GET, &self.at.url("value", Some(key)), None)?;
        if response.status == 200 {
            let version = response.header(X_VERSION).and_then(|v| v.parse().ok());
            return Ok((Some(response.json()?), version));
        }
        let error = status_error(&response);
        match &error {
            Error::Remote { id, details, .. } if id == "no_such_key" => {
                Ok((None, details["parent_version"].as_u64()))
            }
            _ => Err(error),
        }
    }

    /// Sends every operation recorded by `build` in one request; the server applies all of
    /// them or none. Returns one result per operation, in order.
    ///
    /// ```no_run
    /// # caspian_ipc::share(1, |_, hash| {
    /// let results = hash.batch(|b| {
    ///     b.incr("files", 1).set("last", &"file-1").push("log", &"file-1 done");
    /// })?; // one request; no worker sees it half applied
    /// assert_eq!(results.len(), 3); // one result per operation, in order
    /// # Ok::<_, caspian_ipc::Error>(())
    /// # })?;
    /// # Ok::<_, caspian_ipc::Error>(())
    /// ```
    pub fn batch(&self, build: impl FnOnce(&mut Batch)) -> Result<Vec<Value>> {
        let mut batch = Batch::default();
        build(&mut batch);
        let body = batch.into_body()?;
        let answer = self
            .at
            .client
            .call(Method::POST, &self.at.url("batch", None), Some(body))?
            .json()?;
        match answer {
            Value::Array(results) => Ok(results),
            other => Err(Error::Protocol(format!("batch answered {other}"))),
        }
    }
}

impl SharedArray {
    /// The element at `index`: a scalar or a proxy. `None` when out of range.
    pub fn get(&self, index: usize) -> Result<Option<Entry>> {
        self.at
            .read(Some(&index.to_string()), true)?
            .map(|r| self.at.entry(&r))
            .transpose()
    }

    /// The element at `index` as plain JSON.
    pub fn get_value(&self, index: usize) -> Result<Option<Value>> {
        self.at
            .read(Some(&index.to_string()), false)?
            .map(|r| r.json())
            .transpose()
    }

    /// Replaces the element at `index` (which must exist).
    pub fn set<T: Serialize + ?Sized>(&self, index: usize, value: &T) -> Result<Option<Entry>> {
        self.at.set(&index.to_string(), &to_json(value)?)
    }

    /// Removes the element at `index`, shifting the rest; returns it.
    pub fn remove(&self, index: usize) -> Result<Option<Value>> {
        self.at.delete(&index.to_string())
    }

    /// Appends `value` atomically; returns the new length. The array is created when this
    /// proxy's path does not exist yet.
    pub fn push<T: Serialize + ?Sized>(&self, value: &T) -> Result<usize> {
        let answer = self
            .at
            .call(Method::POST, &self.at.url("push", None), Some(&to_json(value)?))?
            .json()?;
        answer["len"]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| Error::Protocol(format!("push answered {answer}")))
    }

    /// The number of elements.
    pub fn len(&self) -> Result<usize> {
        self.at.get_json("len")
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// A proxy for the hash at `index`, without a round trip.
    pub fn at(&self, index: usize) -> SharedHash {
        SharedHash {
            at: self.at.child(&index.to_string()),
        }
    }

    /// The whole array as plain JSON, in one request.
    pub fn snapshot(&self) -> Result<Value> {
        self.at.snapshot()
    }

    /// Iterates over a snapshot taken in one request.
    pub fn iter(&self) -> Result<std::vec::IntoIter<Value>> {
        match self.snapshot()? {
            Value::Array(items) => Ok(items.into_iter()),
            other => Err(Error::Protocol(format!(
                "an array snapshot was not an array: {other}"
            ))),
        }
    }
}

/// Operations recorded for [`SharedHash::batch`]; keys are relative to the batch's hash.
/// A value that is not JSON makes the whole batch fail before anything is sent.
///
/// ```no_run
/// # caspian_ipc::share(1, |worker, hash| {
/// use caspian_ipc::Error;
///
/// let results = hash.batch(|b| {
///     b.set_if_absent("started_by", &worker.index())
///         .set_path(&["config", "mode"], &"fast") // creates `config`
///         .incr("runs", 1)
///         .push("log", &"configured");
/// })?; // all four or none, in one request
/// assert_eq!(results.len(), 4);
///
/// // A value JSON cannot hold fails the whole batch before anything is sent.
/// let refused = hash.batch(|b| {
///     b.set("ok", &1).set("bad", &f64::NAN);
/// });
/// assert!(matches!(refused, Err(Error::InvalidValue { .. })));
/// assert_eq!(hash.get_value("ok")?, None);
/// # Ok::<_, caspian_ipc::Error>(())
/// # })?;
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Batch {
    /// The entries as JSON text, comma-separated, written as they are recorded (no `Value`
    /// per entry: a batch exists to make many operations cheap).
    body: Vec<u8>,
    count: usize,
    error: Option<Error>,
}

/// One entry of a batch body, as the server reads it.
#[derive(Serialize)]
struct BatchEntry<'a> {
    op: &'a str,
    path: &'a [&'a str],
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    by: Option<i64>,
}

impl Batch {
    fn record(
        &mut self,
        op: &str,
        path: &[&str],
        value: Option<Result<Value>>,
        by: Option<i64>,
    ) -> &mut Self {
        let value = match value {
            Some(Ok(value)) => Some(value),
            Some(Err(e)) => {
                self.error.get_or_insert(e);
                return self;
            }
            None => None,
        };
        if self.count > 0 {
            self.body.push(b',');
        }
        let entry = BatchEntry {
            op,
            path,
            value: value.as_ref(),
            by,
        };
        // Writing into a Vec cannot fail, and the value was checked to be JSON.
        let _ = serde_json::to_writer(&mut self.body, &entry);
        self.count += 1;
        self
    }

    /// The request body: the entries as one JSON array.
    fn into_body(self) -> Result<Vec<u8>> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let mut body = Vec::with_capacity(self.body.len() + 2);
        body.push(b'[');
        body.extend_from_slice(&self.body);
        body.push(b']');
        Ok(body)
    }

    /// Stores `value` under `key`.
    pub fn set<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.set_path(&[key], value)
    }

    /// Stores `value` at a path of keys, creating intermediate hashes.
    pub fn set_path<T: Serialize + ?Sized>(&mut self, path: &[&str], value: &T) -> &mut Self {
        self.record("set", path, Some(to_json(value)), None)
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: &str) -> &mut Self {
        self.record("delete", &[key], None, None)
    }

    /// Adds `by` to the number under `key`.
    pub fn incr(&mut self, key: &str, by: i64) -> &mut Self {
        self.incr_path(&[key], by)
    }

    /// Adds `by` to the number at a path of keys.
    pub fn incr_path(&mut self, path: &[&str], by: i64) -> &mut Self {
        self.record("incr", path, None, Some(by))
    }

    /// Appends `value` to the array under `key` (created when absent).
    pub fn push<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.record("push", &[key], Some(to_json(value)), None)
    }

    /// Stores `value` under `key` unless present.
    pub fn set_if_absent<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> &mut Self {
        self.record("set_if_absent", &[key], Some(to_json(value)), None)
    }

    /// Number of recorded operations.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}
