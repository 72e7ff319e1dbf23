//! The shared hash's authoritative state: a tree of hash and array nodes addressed by
//! integer primary keys.
//!
//! Primary keys live beside the data (in the node table), never inside it, so user data
//! may use any key and serialising a subtree needs no stripping. Every write goes through
//! a [`Txn`] with an undo log: a failed operation, or a failed batch, leaves no trace.
//! Subtrees a write detaches are dropped when it commits, so a proxy still bound to one
//! gets `no_such_pk` (decision D-H3 in docs/DECISIONS.md).

use std::collections::HashMap;

use indexmap::IndexMap;

/// The tree's hasher: foldhash, seeded per process, several times cheaper than the std
/// SipHash on short keys and integer pks. The keys come from authenticated workers of our
/// own user, so SipHash's protection against chosen-key flooding buys nothing here.
type Hasher = foldhash::fast::RandomState;
use serde_json::{Map, Number, Value};

/// Primary key of a hash or array node. The root is 0.
pub(crate) type Pk = u64;

#[derive(Debug, Clone)]
enum Slot {
    Scalar(Value),
    Node(Pk),
}

#[derive(Debug)]
struct Node {
    body: Body,
    version: u64,
    /// Distance from the root, to bound the depth of what can be stored.
    depth: usize,
}

#[derive(Debug)]
enum Body {
    Map(IndexMap<String, Slot, Hasher>),
    Array(Vec<Slot>),
}

/// Why an operation on the tree failed. Each maps to one wire error id.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TreeError {
    NoSuchPk(Pk),
    NoSuchKey {
        path: Vec<String>,
    },
    IndexOutOfRange {
        path: Vec<String>,
        len: usize,
    },
    NotAContainer {
        path: Vec<String>,
    },
    NotAHash {
        path: Vec<String>,
    },
    NotAnArray {
        path: Vec<String>,
    },
    NotANumber {
        path: Vec<String>,
        found: Value,
    },
    /// `incr` refused the sum before storing anything (decision D-H12).
    Increment {
        path: Vec<String>,
        refusal: IncrRefusal,
        stored: Option<Number>,
        by: Number,
    },
    VersionConflict {
        path: Vec<String>,
        current: Option<u64>,
    },
    TooDeep {
        max_depth: usize,
    },
    EmptyPath,
}

pub(crate) type TreeResult<T> = Result<T, TreeError>;

/// Why `incr` would not add: each keeps integers exact (decision D-H12).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum IncrRefusal {
    /// An integer delta on a stored float (Redis `INCR` refuses it too).
    NotAnInteger,
    /// The stored integer, the delta or the sum is outside i64.
    IntegerOverflow,
    /// A float delta on a stored integer that f64 cannot hold exactly (beyond 2^53).
    InexactFloat,
    /// The float sum is not finite.
    FloatOverflow,
}

/// A value read from the tree.
#[derive(Debug, PartialEq)]
pub(crate) struct Read {
    pub value: Value,
    /// The node's pk when the value is a hash or array.
    pub node: Option<Pk>,
    /// Version of the node holding the value (of the node itself for an empty path).
    pub version: u64,
}

/// Outcome of a compare-and-set.
#[derive(Debug, PartialEq)]
pub(crate) struct Swap {
    pub swapped: bool,
    /// The value now stored (`None`: absent).
    pub current: Option<Value>,
}

/// The tree of one shared-hash session.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: HashMap<Pk, Node, Hasher>,
    next_pk: Pk,
    max_depth: usize,
}

impl Tree {
    /// An empty root hash (pk 0). Nothing may be stored deeper than `max_depth`.
    pub fn new(max_depth: usize) -> Self {
        let mut nodes = HashMap::default();
        nodes.insert(
            0,
            Node {
                body: Body::Map(IndexMap::default()),
                version: 0,
                depth: 0,
            },
        );
        Tree {
            nodes,
            next_pk: 1,
            max_depth,
        }
    }

    /// Number of live nodes (root included).
    #[cfg(test)]
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn node(&self, pk: Pk) -> TreeResult<&Node> {
        self.nodes.get(&pk).ok_or(TreeError::NoSuchPk(pk))
    }

    /// Walks `path` from `pk` without creating anything.
    fn walk(&self, pk: Pk, path: &[String]) -> TreeResult<Pk> {
        let mut at = pk;
        self.node(at)?;
        for (i, key) in path.iter().enumerate() {
            match self.child(at, key, &path[..=i])? {
                Some(Slot::Node(child)) => at = *child,
                Some(Slot::Scalar(_)) => {
                    return Err(TreeError::NotAContainer {
                        path: path[..=i].to_vec(),
                    })
                }
                None => {
                    return Err(TreeError::NoSuchKey {
                        path: path[..=i].to_vec(),
                    })
                }
            }
        }
        Ok(at)
    }

    fn child(&self, pk: Pk, key: &str, path: &[String]) -> TreeResult<Option<&Slot>> {
        Ok(match &self.node(pk)?.body {
            Body::Map(map) => map.get(key),
            Body::Array(items) => match key.parse::<usize>() {
                Ok(i) if i < items.len() => items.get(i),
                _ => {
                    return Err(TreeError::IndexOutOfRange {
                        path: path.to_vec(),
                        len: items.len(),
                    })
                }
            },
        })
    }

    fn materialize(&self, slot: &Slot) -> Value {
        match slot {
            Slot::Scalar(v) => v.clone(),
            Slot::Node(pk) => self.materialize_node(*pk),
        }
    }

    fn materialize_node(&self, pk: Pk) -> Value {
        match self.nodes.get(&pk).map(|n| &n.body) {
            Some(Body::Map(map)) => Value::Object(
                map.iter()
                    .map(|(k, s)| (k.clone(), self.materialize(s)))
                    .collect::<Map<_, _>>(),
            ),
            Some(Body::Array(items)) => Value::Array(items.iter().map(|s| self.materialize(s)).collect()),
            None => Value::Null,
        }
    }

    /// Version of the node at `path` under `pk`, `None` when there is no node there.
    pub fn version_at(&self, pk: Pk, path: &[String]) -> Option<u64> {
        let node = self.walk(pk, path).ok()?;
        self.nodes.get(&node).map(|n| n.version)
    }

    /// An empty hash or array standing for a container that is not transferred.
    fn shallow(&self, slot: &Slot) -> Value {
        match slot {
            Slot::Node(pk) => match self.nodes.get(pk).map(|n| &n.body) {
                Some(Body::Array(_)) => Value::Array(Vec::new()),
                _ => Value::Object(Map::new()),
            },
            Slot::Scalar(v) => v.clone(),
        }
    }

    /// The value at `path` under `pk` (the node itself for an empty path). With
    /// `shallow`, a hash or array comes back empty: the caller only wants its pk.
    pub fn read(&self, pk: Pk, path: &[String]) -> TreeResult<Read> {
        self.read_with(pk, path, false)
    }

    /// [`Tree::read`] with the choice of a shallow answer.
    pub fn read_with(&self, pk: Pk, path: &[String], shallow: bool) -> TreeResult<Read> {
        let Some((key, parent_path)) = path.split_last() else {
            let node = self.node(pk)?;
            return Ok(Read {
                value: if shallow {
                    self.shallow(&Slot::Node(pk))
                } else {
                    self.materialize_node(pk)
                },
                node: Some(pk),
                version: node.version,
            });
        };
        let parent = self.walk(pk, parent_path)?;
        let slot = self
            .child(parent, key, path)?
            .ok_or_else(|| TreeError::NoSuchKey { path: path.to_vec() })?;
        Ok(Read {
            value: if shallow {
                self.shallow(slot)
            } else {
                self.materialize(slot)
            },
            node: match slot {
                Slot::Node(child) => Some(*child),
                Slot::Scalar(_) => None,
            },
            version: self.node(parent)?.version,
        })
    }

    /// The keys of the hash at `path`.
    pub fn keys(&self, pk: Pk, path: &[String]) -> TreeResult<Vec<String>> {
        match &self.node(self.walk(pk, path)?)?.body {
            Body::Map(map) => Ok(map.keys().cloned().collect()),
            Body::Array(_) => Err(TreeError::NotAHash { path: path.to_vec() }),
        }
    }

    /// The number of entries of the hash or array at `path`.
    pub fn len(&self, pk: Pk, path: &[String]) -> TreeResult<usize> {
        Ok(match &self.node(self.walk(pk, path)?)?.body {
            Body::Map(map) => map.len(),
            Body::Array(items) => items.len(),
        })
    }

    /// Whether something is stored at `path` (missing intermediates: `false`).
    pub fn contains(&self, pk: Pk, path: &[String]) -> TreeResult<bool> {
        match self.read(pk, path) {
            Ok(_) => Ok(true),
            Err(TreeError::NoSuchKey { .. } | TreeError::IndexOutOfRange { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Starts a write: every change is undone unless [`Txn::commit`] is called.
    pub fn begin(&mut self) -> Txn<'_> {
        Txn {
            tree: self,
            undo: Vec::new(),
            detached: Vec::new(),
        }
    }

    fn free(&mut self, pk: Pk) {
        let mut stack = vec![pk];
        while let Some(pk) = stack.pop() {
            if let Some(node) = self.nodes.remove(&pk) {
                let slots: Box<dyn Iterator<Item = Slot>> = match node.body {
                    Body::Map(map) => Box::new(map.into_values()),
                    Body::Array(items) => Box::new(items.into_iter()),
                };
                stack.extend(slots.filter_map(|s| match s {
                    Slot::Node(child) => Some(child),
                    Slot::Scalar(_) => None,
                }));
            }
        }
    }
}

/// How to take back one change.
#[derive(Debug)]
enum Undo {
    /// A node was created: remove it.
    Alloc(Pk),
    /// A node was changed: put `version` back and reverse `change`.
    Changed { node: Pk, version: u64, change: Change },
}

#[derive(Debug)]
enum Change {
    /// A map entry changed: restore `old` (at its index) or remove the key.
    MapEntry { key: String, old: Option<(usize, Slot)> },
    /// An array element was replaced.
    ArraySet { index: usize, old: Slot },
    /// An array element was removed.
    ArrayRemove { index: usize, old: Slot },
    /// An element was pushed.
    ArrayPush,
}

/// One atomic write: all of its changes apply, or none.
pub(crate) struct Txn<'a> {
    tree: &'a mut Tree,
    undo: Vec<Undo>,
    detached: Vec<Pk>,
}

impl Drop for Txn<'_> {
    fn drop(&mut self) {
        while let Some(undo) = self.undo.pop() {
            self.revert(undo);
        }
    }
}

impl Txn<'_> {
    /// Makes every change permanent and drops the subtrees the changes detached.
    pub fn commit(mut self) {
        self.undo.clear();
        for pk in std::mem::take(&mut self.detached) {
            self.tree.free(pk);
        }
    }

    fn revert(&mut self, undo: Undo) {
        let (pk, version, change) = match undo {
            Undo::Alloc(pk) => {
                self.tree.nodes.remove(&pk);
                return;
            }
            Undo::Changed {
                node,
                version,
                change,
            } => (node, version, change),
        };
        let Some(node) = self.tree.nodes.get_mut(&pk) else {
            return;
        };
        node.version = version;
        match (&mut node.body, change) {
            (Body::Map(map), Change::MapEntry { key, old }) => match old {
                Some((_, slot)) if map.contains_key(&key) => {
                    map.insert(key, slot);
                }
                Some((index, slot)) => {
                    map.shift_insert(index.min(map.len()), key, slot);
                }
                None => {
                    map.shift_remove(&key);
                }
            },
            (Body::Array(items), Change::ArraySet { index, old }) => {
                if let Some(slot) = items.get_mut(index) {
                    *slot = old;
                }
            }
            (Body::Array(items), Change::ArrayRemove { index, old }) => {
                items.insert(index.min(items.len()), old)
            }
            (Body::Array(items), Change::ArrayPush) => {
                items.pop();
            }
            _ => {}
        }
    }

    /// Read access to the tree as changed so far.
    pub fn tree(&self) -> &Tree {
        self.tree
    }

    /// Walks `path` from `pk`, creating missing intermediate hashes.
    fn vivify(&mut self, pk: Pk, path: &[String]) -> TreeResult<Pk> {
        let mut at = pk;
        self.tree.node(at)?;
        for (i, key) in path.iter().enumerate() {
            let here = &path[..=i];
            match self.tree.child(at, key, here)? {
                Some(Slot::Node(child)) => at = *child,
                Some(Slot::Scalar(_)) => return Err(TreeError::NotAContainer { path: here.to_vec() }),
                None => {
                    let Slot::Node(child) = self.alloc(at, Value::Object(Map::new()))? else {
                        unreachable!("an object becomes a node")
                    };
                    self.put(at, key, Slot::Node(child), here)?;
                    at = child;
                }
            }
        }
        Ok(at)
    }

    /// Turns a value into a slot under `parent`, giving every hash and array in it a
    /// fresh pk in pre-order.
    fn alloc(&mut self, parent: Pk, value: Value) -> TreeResult<Slot> {
        let depth = self.tree.node(parent)?.depth + 1;
        if depth + crate::limits::depth(&value) > self.tree.max_depth {
            return Err(TreeError::TooDeep {
                max_depth: self.tree.max_depth,
            });
        }
        Ok(self.alloc_at(value, depth))
    }

    fn alloc_at(&mut self, value: Value, depth: usize) -> Slot {
        let body = match value {
            Value::Object(ref map) => {
                Body::Map(IndexMap::with_capacity_and_hasher(map.len(), Hasher::default()))
            }
            Value::Array(ref items) => Body::Array(Vec::with_capacity(items.len())),
            scalar => return Slot::Scalar(scalar),
        };
        let pk = self.tree.next_pk;
        self.tree.next_pk += 1;
        self.tree.nodes.insert(
            pk,
            Node {
                body,
                version: 0,
                depth,
            },
        );
        self.undo.push(Undo::Alloc(pk));
        let children: Vec<(Option<String>, Value)> = match value {
            Value::Object(map) => map.into_iter().map(|(k, v)| (Some(k), v)).collect(),
            Value::Array(items) => items.into_iter().map(|v| (None, v)).collect(),
            _ => Vec::new(),
        };
        for (key, child) in children {
            let slot = self.alloc_at(child, depth + 1);
            match (self.tree.nodes.get_mut(&pk).map(|n| &mut n.body), key) {
                (Some(Body::Map(map)), Some(key)) => {
                    map.insert(key, slot);
                }
                (Some(Body::Array(items)), None) => items.push(slot),
                _ => {}
            }
        }
        Slot::Node(pk)
    }

    /// Stores `slot` under `key` of node `node`; returns what was there.
    fn put(&mut self, node: Pk, key: &str, slot: Slot, path: &[String]) -> TreeResult<Option<Slot>> {
        let n = self.tree.nodes.get_mut(&node).ok_or(TreeError::NoSuchPk(node))?;
        let version = n.version;
        n.version += 1;
        match &mut n.body {
            Body::Map(map) => {
                let old = match map.get_full_mut(key) {
                    Some((index, _, existing)) => Some((index, std::mem::replace(existing, slot))),
                    None => {
                        map.insert(key.to_owned(), slot);
                        None
                    }
                };
                let previous = old.as_ref().map(|(_, s)| s.clone());
                self.undo.push(Undo::Changed {
                    node,
                    version,
                    change: Change::MapEntry {
                        key: key.to_owned(),
                        old,
                    },
                });
                Ok(previous)
            }
            Body::Array(items) => {
                let len = items.len();
                let Some(existing) = key
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| items.get_mut(i).map(|s| (i, s)))
                else {
                    n.version = version;
                    return Err(TreeError::IndexOutOfRange {
                        path: path.to_vec(),
                        len,
                    });
                };
                let (index, existing) = existing;
                let old = std::mem::replace(existing, slot);
                self.undo.push(Undo::Changed {
                    node,
                    version,
                    change: Change::ArraySet {
                        index,
                        old: old.clone(),
                    },
                });
                Ok(Some(old))
            }
        }
    }

    fn remove(&mut self, node: Pk, key: &str, path: &[String]) -> TreeResult<Option<Slot>> {
        let n = self.tree.nodes.get_mut(&node).ok_or(TreeError::NoSuchPk(node))?;
        let version = n.version;
        let removed = match &mut n.body {
            Body::Map(map) => map.shift_remove_full(key).map(|(index, key, slot)| {
                self.undo.push(Undo::Changed {
                    node,
                    version,
                    change: Change::MapEntry {
                        key,
                        old: Some((index, slot.clone())),
                    },
                });
                slot
            }),
            Body::Array(items) => match key.parse::<usize>() {
                Ok(index) if index < items.len() => {
                    let slot = items.remove(index);
                    self.undo.push(Undo::Changed {
                        node,
                        version,
                        change: Change::ArrayRemove {
                            index,
                            old: slot.clone(),
                        },
                    });
                    Some(slot)
                }
                _ => {
                    return Err(TreeError::IndexOutOfRange {
                        path: path.to_vec(),
                        len: items.len(),
                    })
                }
            },
        };
        if removed.is_some() {
            n.version += 1;
        }
        Ok(removed)
    }

    fn detach(&mut self, old: Option<Slot>) -> Option<Value> {
        old.map(|slot| {
            let value = self.tree.materialize(&slot);
            if let Slot::Node(pk) = slot {
                self.detached.push(pk);
            }
            value
        })
    }

    fn split(path: &[String]) -> TreeResult<(&String, &[String])> {
        path.split_last().ok_or(TreeError::EmptyPath)
    }

    /// Stores `value` at `path`, creating missing intermediate hashes; returns the pk of
    /// the stored node when the value is a hash or an array.
    pub fn set(&mut self, pk: Pk, path: &[String], value: Value) -> TreeResult<Option<Pk>> {
        let (key, parent_path) = Self::split(path)?;
        let parent = self.vivify(pk, parent_path)?;
        let slot = self.alloc(parent, value)?;
        let node = match slot {
            Slot::Node(pk) => Some(pk),
            Slot::Scalar(_) => None,
        };
        let old = self.put(parent, key, slot, path)?;
        self.detach(old);
        Ok(node)
    }

    /// Removes what is at `path`; returns it (`None`: nothing was there).
    pub fn delete(&mut self, pk: Pk, path: &[String]) -> TreeResult<Option<Value>> {
        let (key, parent_path) = Self::split(path)?;
        let parent = match self.tree.walk(pk, parent_path) {
            Ok(parent) => parent,
            Err(TreeError::NoSuchKey { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let old = self.remove(parent, key, path)?;
        Ok(self.detach(old))
    }

    /// Appends `value` to the array at `path` (creating it when absent); returns the new
    /// length and the pk of the pushed node when it is a hash or array.
    pub fn push(&mut self, pk: Pk, path: &[String], value: Value) -> TreeResult<(usize, Option<Pk>)> {
        let array = match path.split_last() {
            None => pk,
            Some((key, parent_path)) => {
                let parent = self.vivify(pk, parent_path)?;
                match self.tree.child(parent, key, path)? {
                    Some(Slot::Node(node)) => *node,
                    Some(Slot::Scalar(_)) => return Err(TreeError::NotAnArray { path: path.to_vec() }),
                    None => match self.alloc(parent, Value::Array(Vec::new()))? {
                        Slot::Node(node) => {
                            self.put(parent, key, Slot::Node(node), path)?;
                            node
                        }
                        Slot::Scalar(_) => unreachable!("an array becomes a node"),
                    },
                }
            }
        };
        let slot = self.alloc(array, value)?;
        let pushed = match slot {
            Slot::Node(pk) => Some(pk),
            Slot::Scalar(_) => None,
        };
        let n = self
            .tree
            .nodes
            .get_mut(&array)
            .ok_or(TreeError::NoSuchPk(array))?;
        let Body::Array(items) = &mut n.body else {
            return Err(TreeError::NotAnArray { path: path.to_vec() });
        };
        items.push(slot);
        let len = items.len();
        self.undo.push(Undo::Changed {
            node: array,
            version: n.version,
            change: Change::ArrayPush,
        });
        n.version += 1;
        Ok((len, pushed))
    }

    /// Adds `by` to the number at `path` (absent counts as 0); returns the new number.
    /// An integer delta needs a stored integer and an i64 sum; a float delta makes a
    /// float sum. Anything else is refused before it is stored (decision D-H12).
    pub fn incr(&mut self, pk: Pk, path: &[String], by: &Number) -> TreeResult<Number> {
        let (key, parent_path) = Self::split(path)?;
        let parent = self.vivify(pk, parent_path)?;
        let stored = match self.tree.child(parent, key, path)? {
            None => None,
            Some(Slot::Scalar(Value::Number(old))) => Some(old.clone()),
            Some(slot) => {
                return Err(TreeError::NotANumber {
                    path: path.to_vec(),
                    found: self.tree.materialize(slot),
                })
            }
        };
        let sum = add(stored.as_ref(), by).map_err(|refusal| TreeError::Increment {
            path: path.to_vec(),
            refusal,
            stored,
            by: by.clone(),
        })?;
        self.put(parent, key, Slot::Scalar(Value::Number(sum.clone())), path)?;
        Ok(sum)
    }

    /// Stores `new` at `path` only if the current value equals `expected` (`None`:
    /// absent).
    pub fn compare_and_set(
        &mut self,
        pk: Pk,
        path: &[String],
        expected: Option<&Value>,
        new: Value,
    ) -> TreeResult<Swap> {
        let current = match self.tree.read(pk, path) {
            Ok(read) => Some(read.value),
            Err(TreeError::NoSuchKey { .. }) => None,
            Err(e) => return Err(e),
        };
        if current.as_ref() != expected {
            return Ok(Swap {
                swapped: false,
                current,
            });
        }
        self.set(pk, path, new.clone())?;
        Ok(Swap {
            swapped: true,
            current: Some(new),
        })
    }

    /// Stores `new` at `path` only if the node holding it still has `version` (`None`:
    /// that node did not exist). This is what `modify`'s optimistic loop relies on.
    pub fn set_if_version(
        &mut self,
        pk: Pk,
        path: &[String],
        version: Option<u64>,
        new: Value,
    ) -> TreeResult<()> {
        let (_, parent_path) = Self::split(path)?;
        let current = match self.tree.walk(pk, parent_path) {
            Ok(parent) => Some(self.tree.node(parent)?.version),
            Err(TreeError::NoSuchKey { .. }) => None,
            Err(e) => return Err(e),
        };
        if current != version {
            return Err(TreeError::VersionConflict {
                path: path.to_vec(),
                current,
            });
        }
        self.set(pk, path, new)?;
        Ok(())
    }
}

/// Largest integer magnitude an f64 holds exactly.
const EXACT_IN_F64: u64 = 1 << 53;

/// `stored + by` under the rules of [`Txn::incr`] (`None`: absent, counts as 0).
fn add(stored: Option<&Number>, by: &Number) -> Result<Number, IncrRefusal> {
    if !by.is_f64() {
        let by = by.as_i64().ok_or(IncrRefusal::IntegerOverflow)?;
        let old = match stored {
            None => 0,
            Some(n) if n.is_f64() => return Err(IncrRefusal::NotAnInteger),
            Some(n) => n.as_i64().ok_or(IncrRefusal::IntegerOverflow)?,
        };
        return old
            .checked_add(by)
            .map(Number::from)
            .ok_or(IncrRefusal::IntegerOverflow);
    }
    let by = by.as_f64().ok_or(IncrRefusal::FloatOverflow)?;
    let old = match stored {
        None => 0.0,
        Some(n) if n.is_f64() => n.as_f64().ok_or(IncrRefusal::FloatOverflow)?,
        Some(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) if i.unsigned_abs() <= EXACT_IN_F64 => i as f64,
            (_, Some(u)) if u <= EXACT_IN_F64 => u as f64,
            _ => return Err(IncrRefusal::InexactFloat),
        },
    };
    Number::from_f64(old + by).ok_or(IncrRefusal::FloatOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| k.to_string()).collect()
    }

    fn write<T>(tree: &mut Tree, f: impl FnOnce(&mut Txn<'_>) -> TreeResult<T>) -> TreeResult<T> {
        let mut txn = tree.begin();
        let out = f(&mut txn)?;
        txn.commit();
        Ok(out)
    }

    #[test]
    fn nested_containers_get_distinct_pks_in_pre_order() {
        let mut t = Tree::new(64);
        let pk = write(&mut t, |x| {
            x.set(0, &p(&["a"]), json!({"b": {"c": [1, {"d": 2}]}}))
        })
        .unwrap();
        assert_eq!(pk, Some(1));
        assert_eq!(t.read(0, &p(&["a", "b"])).unwrap().node, Some(2));
        assert_eq!(t.read(0, &p(&["a", "b", "c"])).unwrap().node, Some(3));
        assert_eq!(t.read(0, &p(&["a", "b", "c", "1"])).unwrap().node, Some(4));
        assert_eq!(
            t.read(0, &[]).unwrap().value,
            json!({"a": {"b": {"c": [1, {"d": 2}]}}})
        );
    }

    #[test]
    fn deep_write_vivifies_and_replacement_drops_old_pks() {
        let mut t = Tree::new(64);
        write(&mut t, |x| x.set(0, &p(&["a", "b", "c"]), json!(1))).unwrap();
        assert_eq!(t.read(0, &[]).unwrap().value, json!({"a": {"b": {"c": 1}}}));
        let b = t.read(0, &p(&["a", "b"])).unwrap().node.unwrap();
        write(&mut t, |x| x.set(0, &p(&["a"]), json!("flat"))).unwrap();
        assert_eq!(t.read(b, &[]), Err(TreeError::NoSuchPk(b)));
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn failed_write_leaves_no_trace() {
        let mut t = Tree::new(64);
        write(&mut t, |x| x.set(0, &p(&["n"]), json!(5))).unwrap();
        let before = t.read(0, &[]).unwrap();
        // vivifies "x" and "y", then fails at the scalar "n": all undone
        let err = write(&mut t, |x| {
            x.set(0, &p(&["x", "y"]), json!(1))?;
            x.set(0, &p(&["n", "z"]), json!(1))
        });
        assert_eq!(err, Err(TreeError::NotAContainer { path: p(&["n"]) }));
        assert_eq!(t.read(0, &[]).unwrap(), before);
        assert_eq!(t.node_count(), 1);
    }

    #[test]
    fn undo_restores_deleted_key_at_its_position() {
        let mut t = Tree::new(64);
        write(&mut t, |x| x.set(0, &p(&["k"]), json!({"a": 1, "b": 2, "c": 3}))).unwrap();
        let before = t.read(0, &[]).unwrap();
        let _ = write(&mut t, |x| {
            x.delete(0, &p(&["k", "a"]))?;
            x.incr(0, &p(&["k", "b"]), &Number::from(1))?;
            x.incr(0, &p(&["k", "c", "oops"]), &Number::from(1))
        });
        assert_eq!(t.read(0, &[]).unwrap(), before);
    }

    #[test]
    fn incr_creates_and_keeps_integer_type() {
        let mut t = Tree::new(64);
        assert_eq!(
            write(&mut t, |x| x.incr(0, &p(&["c"]), &Number::from(2))).unwrap(),
            Number::from(2)
        );
        assert_eq!(
            write(&mut t, |x| x.incr(0, &p(&["c"]), &Number::from(3))).unwrap(),
            Number::from(5)
        );
        write(&mut t, |x| x.set(0, &p(&["big"]), json!(i64::MAX))).unwrap();
        assert!(matches!(
            write(&mut t, |x| x.incr(0, &p(&["big"]), &Number::from(1))),
            Err(TreeError::Increment {
                refusal: IncrRefusal::IntegerOverflow,
                ..
            })
        ));
        write(&mut t, |x| x.set(0, &p(&["s"]), json!("x"))).unwrap();
        assert!(matches!(
            write(&mut t, |x| x.incr(0, &p(&["s"]), &Number::from(1))),
            Err(TreeError::NotANumber { .. })
        ));
    }

    #[test]
    fn incr_refuses_what_would_not_stay_exact_and_stores_nothing() {
        let mut t = Tree::new(64);
        let cases = [
            (json!(u64::MAX), json!(-1), IncrRefusal::IntegerOverflow),
            (json!(i64::MIN), json!(-1), IncrRefusal::IntegerOverflow),
            (json!(0), json!(u64::MAX), IncrRefusal::IntegerOverflow),
            (json!(1.5), json!(1), IncrRefusal::NotAnInteger),
            (json!(u64::MAX), json!(0.5), IncrRefusal::InexactFloat),
            (json!(f64::MAX), json!(f64::MAX), IncrRefusal::FloatOverflow),
        ];
        for (stored, by, refusal) in cases {
            write(&mut t, |x| x.set(0, &p(&["n"]), stored.clone())).unwrap();
            let Value::Number(by) = by else { unreachable!() };
            let err = write(&mut t, |x| x.incr(0, &p(&["n"]), &by)).unwrap_err();
            assert!(
                matches!(err, TreeError::Increment { refusal: r, .. } if r == refusal),
                "{stored} + {by}: {err:?}"
            );
            assert_eq!(t.read(0, &p(&["n"])).unwrap().value, stored);
        }
        write(&mut t, |x| x.set(0, &p(&["n"]), json!(3))).unwrap();
        let half = Number::from_f64(0.5).unwrap();
        assert_eq!(
            write(&mut t, |x| x.incr(0, &p(&["n"]), &half)).unwrap(),
            Number::from_f64(3.5).unwrap()
        );
    }

    #[test]
    fn versions_detect_concurrent_changes() {
        let mut t = Tree::new(64);
        write(&mut t, |x| x.set_if_version(0, &p(&["h", "k"]), None, json!(1))).unwrap();
        let v = t.read(0, &p(&["h", "k"])).unwrap().version;
        write(&mut t, |x| {
            x.set_if_version(0, &p(&["h", "k"]), Some(v), json!(2))
        })
        .unwrap();
        assert!(matches!(
            write(&mut t, |x| x.set_if_version(
                0,
                &p(&["h", "k"]),
                Some(v),
                json!(3)
            )),
            Err(TreeError::VersionConflict { .. })
        ));
        assert_eq!(t.read(0, &p(&["h", "k"])).unwrap().value, json!(2));
    }

    #[test]
    fn depth_is_bounded_across_writes() {
        let mut t = Tree::new(3);
        write(&mut t, |x| x.set(0, &p(&["a"]), json!({"b": {"c": 1}}))).unwrap();
        assert!(matches!(
            write(&mut t, |x| x.set(0, &p(&["a", "b", "c"]), json!({"d": 1}))),
            Err(TreeError::TooDeep { .. })
        ));
    }

    #[test]
    fn arrays_index_push_and_remove() {
        let mut t = Tree::new(64);
        assert_eq!(
            write(&mut t, |x| x.push(0, &p(&["l"]), json!(1))).unwrap(),
            (1, None)
        );
        assert_eq!(write(&mut t, |x| x.push(0, &p(&["l"]), json!([2]))).unwrap().0, 2);
        write(&mut t, |x| x.set(0, &p(&["l", "0"]), json!("one"))).unwrap();
        assert!(matches!(
            write(&mut t, |x| x.set(0, &p(&["l", "5"]), json!(0))),
            Err(TreeError::IndexOutOfRange { len: 2, .. })
        ));
        assert_eq!(
            write(&mut t, |x| x.delete(0, &p(&["l", "0"]))).unwrap(),
            Some(json!("one"))
        );
        assert_eq!(t.read(0, &p(&["l"])).unwrap().value, json!([[2]]));
    }
}
