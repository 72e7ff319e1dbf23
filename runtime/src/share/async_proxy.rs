//! The async shared-hash proxy (feature `tokio`): the common operations of
//! [`SharedHash`] for code on a tokio runtime, over an [`AsyncClient`]. The wire, the
//! URLs and the answers' decoding are the blocking proxy's (`share/proxy.rs`).

use hyper::Method;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::proxy::{absent, count, decode, deleted, url, value_as};
use super::tree::Pk;
use super::value::to_json;
use super::SharedHash;
use crate::error::Result;
use crate::uds::{AsyncClient, RawResponse};

/// A shared hash seen from async code: `get_value`, `set`, `incr`, `delete`, `keys`,
/// `len`, `contains`, `snapshot` and `at`, each one request, as on [`SharedHash`]. Made
/// from a worker's proxy (`AsyncHash::from(&hash)`: a worker that runs a runtime of its
/// own) or from a client of a run's server ([`AsyncHash::root`]).
///
/// ```no_run
/// use caspian_ipc::share::AsyncHash;
///
/// let state = caspian_ipc::share(2, |worker, hash| {
///     // Each forked worker may build a runtime of its own: the fork came first.
///     let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
///     let hash = AsyncHash::from(&hash);
///     let key = format!("w{}", worker.index());
///     runtime.block_on(async {
///         let (a, b) = tokio::join!(hash.incr("visits", 1), hash.set(&key, &true));
///         a?;
///         b
///     })?;
///     Ok::<_, Box<dyn std::error::Error>>(())
/// })?;
/// assert_eq!(state["visits"], 2);
/// # Ok::<_, caspian_ipc::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct AsyncHash {
    client: AsyncClient,
    pk: Pk,
    path: Vec<String>,
}

impl From<&SharedHash> for AsyncHash {
    fn from(hash: &SharedHash) -> Self {
        let (client, pk, path) = hash.address();
        AsyncHash {
            client: AsyncClient::from(client),
            pk,
            path: path.to_vec(),
        }
    }
}

impl AsyncHash {
    /// The root hash of the server behind `client`.
    pub fn root(client: AsyncClient) -> Self {
        AsyncHash {
            client,
            pk: 0,
            path: Vec::new(),
        }
    }

    /// The proxy for the hash under `key`, without a round trip (it need not exist yet:
    /// writes through it create it).
    pub fn at(&self, key: &str) -> AsyncHash {
        let mut path = self.path.clone();
        path.push(key.to_owned());
        AsyncHash {
            client: self.client.clone(),
            pk: self.pk,
            path,
        }
    }

    async fn call(
        &self,
        method: Method,
        op: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> Result<RawResponse> {
        let body = body.map(|v| serde_json::to_vec(v).unwrap_or_default());
        self.client
            .call(method, &url(self.pk, &self.path, op, key), body)
            .await
    }

    /// The value under `key` as plain JSON (containers materialised); `None` if absent.
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        match self.call(Method::GET, "value", Some(key), None).await {
            Ok(response) => response.json().map(Some),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value under `key` deserialised into `T`.
    pub async fn get_as<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.get_value(key).await?.map(|v| value_as(key, v)).transpose()
    }

    /// Stores `value` under `key`, replacing what was there; missing intermediate hashes
    /// on this proxy's path are created. What JSON cannot hold is refused before
    /// anything is sent.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        let value = to_json(value)?;
        self.call(Method::PUT, "value", Some(key), Some(&value))
            .await
            .map(drop)
    }

    /// Removes `key`; returns what was stored (`None`: it was absent).
    pub async fn delete(&self, key: &str) -> Result<Option<Value>> {
        deleted(&self.call(Method::DELETE, "value", Some(key), None).await?)
    }

    /// Atomically adds `by` to the integer under `key` (absent counts as 0); returns the
    /// new value (as [`SharedHash::incr`]).
    pub async fn incr(&self, key: &str, by: i64) -> Result<i64> {
        count(
            &self
                .call(Method::POST, "incr", Some(key), Some(&json!(by)))
                .await?,
        )
    }

    /// Whether `key` is present.
    pub async fn contains(&self, key: &str) -> Result<bool> {
        decode(
            "contains",
            &self.at(key).call(Method::GET, "contains", None, None).await?,
        )
    }

    /// The keys, in insertion order.
    pub async fn keys(&self) -> Result<Vec<String>> {
        decode("keys", &self.call(Method::GET, "keys", None, None).await?)
    }

    /// The number of keys.
    pub async fn len(&self) -> Result<usize> {
        decode("len", &self.call(Method::GET, "len", None, None).await?)
    }

    /// Whether the hash has no keys.
    pub async fn is_empty(&self) -> Result<bool> {
        Ok(self.len().await? == 0)
    }

    /// The whole hash as plain JSON, in one request.
    pub async fn snapshot(&self) -> Result<Value> {
        self.call(Method::GET, "value", None, None).await?.json()
    }
}
