//! Typed records: a Rust struct as a Mikobase class, with proxies that read and write it on
//! any store the generated client reaches (in-process or the shared db).
//!
//! `#[derive(Record)]` (re-exported as [`crate::Record`]) implements [`Record`] for a struct
//! with named fields and generates its hot proxy, `{Struct}Proxy`, with one accessor per
//! bucket key. Everything else is here, hand-written and generic:
//!
//! - [`Records`]: the class as a collection (`db.records::<Officer>()`): `define`,
//!   `create`, `get`, `select`, `update`, `delete`, and `at(pk)` for a proxy;
//! - [`Stored`]: one record by pk (what a proxy dereferences to): `get`, `update`,
//!   `delete`, `field`;
//! - [`Field`]: one bucket key of one record: `get` is one `record_by_pk`, `set` is one
//!   `set_fields` (atomic across workers, decision D9).
//!
//! Nothing is cached: every call is one round trip and sees the store as it is then.
//!
//! The definition a struct gives carries its doc comments as descriptions, its parents
//! (`#[record(inherits = "..")]`), enum values as `one_of` ([`OneOf`],
//! `#[record(one_of)]`), element classes (`items`) and nested records as hash fields
//! with sub-keys (`#[record(fields)]`): see [`#[derive(Record)]`](derive@crate::Record).
//!
//! ```
//! use caspian_ipc::mikobase::{engine::Engine, InProcess, MikobaseClient};
//! use caspian_ipc::Record;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize, Record)]
//! #[record(class = "example.org/crew/officer")]
//! struct Officer {
//!     #[record(unique)]
//!     serial: String,
//!     rank: String,
//!     #[record(one_of("alpha", "beta", "gamma"), default = "alpha")]
//!     watch: String,
//!     nickname: Option<String>,
//! }
//!
//! let db = MikobaseClient::new(InProcess::new(Engine::memory()));
//! let officers = db.records::<Officer>();
//! officers.define()?; // idempotent: every worker may call it
//! let ripley = officers.create(&Officer {
//!     serial: "W-5617".into(),
//!     rank: "Warrant Officer".into(),
//!     watch: "beta".into(),
//!     nickname: None,
//! })?;
//! ripley.rank().set("Lieutenant")?; // one request
//! assert_eq!(ripley.rank().get()?, "Lieutenant"); // one request
//! assert_eq!(officers.get(ripley.pk())?.watch, "beta");
//! let refused = ripley.watch().set("delta").unwrap_err();
//! assert_eq!(refused.id(), Some("validation-failed"));
//! # Ok::<_, caspian_ipc::mikobase::record::RecordError>(())
//! ```

use std::fmt;
use std::marker::PhantomData;
use std::ops::Deref;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::generated::{
    ClassDefinition, ClassFilter, CreateRequest, DeleteRequest, ImportSchemaRequest, MikobaseClient, Pk,
    RecordByPkRequest, SelectRequest, SetFieldsRequest, UpdateRequest,
};
use super::support::{ClientError, Transport};

/// A Rust type stored as the bucket of records of one Mikobase class. Derive it with
/// [`#[derive(Record)]`](derive@crate::Record), which documents the attributes; the serde
/// impls decide the bucket's shape.
///
/// ```
/// use caspian_ipc::mikobase::{engine::Engine, InProcess, MikobaseClient};
/// use caspian_ipc::Record;
/// use serde::{Deserialize, Serialize};
/// use serde_json::json;
///
/// #[derive(Debug, Serialize, Deserialize, Record)]
/// #[record(class = "example.org/crew/ship")]
/// struct Ship {
///     #[record(unique)]
///     registry: String,
///     name: String,
///     crew: Option<u32>, // optional: an `Option`
/// }
///
/// assert_eq!(Ship::CLASS, "example.org/crew/ship");
/// // What `define` installs, from the struct and its attributes:
/// assert_eq!(
///     Ship::class_definition(),
///     json!({"name": "example.org/crew/ship", "fields": {
///         "registry": {"class": "string", "required": true, "unique": true},
///         "name": {"class": "string", "required": true},
///         "crew": {"class": "number"},
///     }})
/// );
///
/// let db = MikobaseClient::new(InProcess::new(Engine::memory()));
/// let ships = db.records::<Ship>();
/// ships.define()?;
/// let sulaco = ships.create(&Ship { registry: "C-722".into(), name: "Sulaco".into(), crew: None })?;
/// sulaco.name().set("USS Sulaco")?; // `ShipProxy`: one accessor per field
/// assert_eq!(ships.get(sulaco.pk())?.name, "USS Sulaco");
/// # Ok::<_, caspian_ipc::mikobase::record::RecordError>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a record",
    note = "derive `caspian_ipc::Record` on a struct with named fields (a `#[record(fields)]` field needs one too)"
)]
pub trait Record: Serialize + DeserializeOwned {
    /// The class's UNS name, e.g. `example.org/crew/officer`.
    const CLASS: &'static str;
    /// What the class is (the definition's `description`; the derive takes the struct's doc
    /// comment).
    const DESCRIPTION: Option<&'static str> = None;
    /// The parent classes (the definition's `inherits`); their fields apply to this class's
    /// records too, and selecting a parent's records includes this class's.
    const INHERITS: &'static [&'static str] = &[];
    /// The bucket keys the class declares, in struct order.
    const FIELDS: &'static [FieldDecl];
    /// The hot proxy of one stored record: field accessors, plus [`Stored`]'s methods
    /// through `Deref`.
    type Proxy<'db, T: Transport + 'db>: From<Stored<'db, Self, T>> + Deref<Target = Stored<'db, Self, T>>;

    /// The class definition (format E4 of `docs/ENGINE.md`), built from [`Self::CLASS`],
    /// [`Self::DESCRIPTION`], [`Self::INHERITS`] and [`Self::FIELDS`]: `{"name",
    /// "description", "inherits": [..], "fields"}`, the optional keys left out when empty.
    fn class_definition() -> Value {
        let mut definition = definition(Self::CLASS, Self::FIELDS);
        if let Value::Object(map) = &mut definition {
            let mut at = 1;
            if let Some(description) = Self::DESCRIPTION {
                map.shift_insert(at, "description".into(), json!(description));
                at += 1;
            }
            if !Self::INHERITS.is_empty() {
                map.shift_insert(at, "inherits".into(), json!(Self::INHERITS));
            }
        }
        definition
    }
}

/// One declared bucket key (a field declaration of the class definition).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FieldDecl {
    /// The bucket key (after serde renames).
    pub key: &'static str,
    /// `string`, `number`, `boolean`, `array`, `hash`, ... or `None` for an untyped field.
    pub class: Option<&'static str>,
    /// The value must be present and not null.
    pub required: bool,
    /// No two active records of the class share the value.
    pub unique: bool,
    /// Filled in by the store when the key is missing or null.
    pub default: Option<Literal>,
    /// The allowed values (empty: any).
    pub one_of: &'static [Literal],
    /// The class of an array's elements (a hash's values): the declaration's `items`.
    pub items: Option<&'static str>,
    /// The declared sub-keys of a `hash` field (the declaration's `fields`; the derive takes
    /// them from a nested record, `#[record(fields)]`).
    pub fields: &'static [FieldDecl],
    /// What the key holds (the declaration's `description`; the derive takes the field's
    /// doc comment).
    pub description: Option<&'static str>,
}

/// An enum of unit variants as the allowed values of a field: derive it with
/// [`#[derive(OneOf)]`](derive@crate::OneOf) and mark the field `#[record(one_of)]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` gives no `one_of` values",
    label = "a `#[record(one_of)]` field needs an enum deriving `OneOf`",
    note = "derive `caspian_ipc::OneOf` on an enum of unit variants, or list the values: `#[record(one_of(\"a\", \"b\"))]`"
)]
pub trait OneOf {
    /// The variants' serialized names.
    const VALUES: &'static [Literal];
}

/// A constant JSON scalar in a field declaration (`default`, `one_of`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Literal {
    /// A string.
    Str(&'static str),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer beyond `i64`.
    UInt(u64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
}

impl Literal {
    /// The literal as JSON.
    pub fn to_json(self) -> Value {
        match self {
            Literal::Str(s) => json!(s),
            Literal::Int(i) => json!(i),
            Literal::UInt(u) => json!(u),
            Literal::Float(f) => json!(f),
            Literal::Bool(b) => json!(b),
        }
    }
}

/// The class definition of `class` with `fields`: `{"name", "fields": {key: {"class",
/// "required", "unique", "one_of", "default", "description"}}}`, false flags, empty lists
/// and missing descriptions left out.
pub fn definition(class: &str, fields: &[FieldDecl]) -> Value {
    json!({ "name": class, "fields": declarations(fields) })
}

/// The field declarations of `fields`, by key (sub-keys of a hash field nested).
fn declarations(fields: &[FieldDecl]) -> Map<String, Value> {
    fields
        .iter()
        .map(|f| {
            let mut decl = Map::new();
            if let Some(class) = f.class {
                decl.insert("class".into(), json!(class));
            }
            if f.required {
                decl.insert("required".into(), json!(true));
            }
            if f.unique {
                decl.insert("unique".into(), json!(true));
            }
            if !f.one_of.is_empty() {
                let allowed = f.one_of.iter().map(|l| l.to_json()).collect();
                decl.insert("one_of".into(), Value::Array(allowed));
            }
            if let Some(default) = f.default {
                decl.insert("default".into(), default.to_json());
            }
            if let Some(items) = f.items {
                decl.insert("items".into(), json!(items));
            }
            if !f.fields.is_empty() {
                decl.insert("fields".into(), Value::Object(declarations(f.fields)));
            }
            if let Some(description) = f.description {
                decl.insert("description".into(), json!(description));
            }
            (f.key.to_owned(), Value::Object(decl))
        })
        .collect()
}

/// Why a typed record call failed.
///
/// ```
/// use caspian_ipc::mikobase::{engine::Engine, record::RecordError, InProcess, MikobaseClient};
/// use caspian_ipc::Record;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize, Record)]
/// #[record(class = "example.org/crew/officer")]
/// struct Officer {
///     #[record(unique)]
///     serial: String,
///     rank: String,
/// }
///
/// /// The same class, read as a struct its records do not fit.
/// #[derive(Debug, Serialize, Deserialize, Record)]
/// #[record(class = "example.org/crew/officer")]
/// struct Numbered {
///     serial: String,
///     rank: u32,
/// }
///
/// let db = MikobaseClient::new(InProcess::new(Engine::memory()));
/// let officers = db.records::<Officer>();
/// officers.define()?;
/// let ripley = officers.create(&Officer { serial: "W-5617".into(), rank: "Warrant Officer".into() })?;
///
/// // The store refused the call: the id says why.
/// let taken = officers
///     .create(&Officer { serial: "W-5617".into(), rank: "Captain".into() })
///     .unwrap_err();
/// assert!(matches!(taken, RecordError::Client(_)));
/// assert_eq!(taken.id(), Some("unique-violation"));
/// assert_eq!(officers.get("no-such-pk").unwrap_err().id(), Some("record_not_found"));
///
/// // A stored bucket that does not fit the struct names the record.
/// match db.records::<Numbered>().get(ripley.pk()) {
///     Err(RecordError::Decode { pk, .. }) => assert_eq!(pk, ripley.pk()),
///     other => panic!("expected a decode error, got {other:?}"),
/// }
/// # Ok::<_, RecordError>(())
/// ```
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The call failed or the Mikobase refused it (`validation-failed`, `unique-violation`,
    /// `record_not_found`, ...: see [`RecordError::id`]).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A stored bucket does not fit the Rust type.
    #[error("record {pk} does not fit `{rust_type}` (class {class}): {reason}")]
    Decode {
        /// The record read.
        pk: Pk,
        /// The class the caller expected.
        class: &'static str,
        /// The Rust type it was decoded into.
        rust_type: &'static str,
        /// What serde said, with the key when one field was read.
        reason: String,
    },
    /// A value did not serialize to what the request needs (a bucket is a JSON object).
    #[error("a `{rust_type}` value cannot be sent: {reason}")]
    Encode {
        /// The Rust type written.
        rust_type: &'static str,
        /// What went wrong.
        reason: String,
    },
}

impl RecordError {
    /// The first error id when the Mikobase refused the call.
    pub fn id(&self) -> Option<&str> {
        match self {
            RecordError::Client(e) => e.id(),
            _ => None,
        }
    }
}

/// `value` as a bucket.
fn bucket<R: Serialize>(value: &R) -> Result<Map<String, Value>, RecordError> {
    let encode = |reason: String| RecordError::Encode {
        rust_type: std::any::type_name::<R>(),
        reason,
    };
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(encode(format!("it serializes to {other}, not an object"))),
        Err(e) => Err(encode(e.to_string())),
    }
}

/// A stored `value` of record `pk` as a `V` (the whole bucket, or one key of it).
fn decode<R: Record, V: DeserializeOwned>(
    pk: &str,
    value: Value,
    key: Option<&str>,
) -> Result<V, RecordError> {
    serde_json::from_value(value).map_err(|e| RecordError::Decode {
        pk: pk.to_owned(),
        class: R::CLASS,
        rust_type: std::any::type_name::<V>(),
        reason: match key {
            Some(key) => format!("key `{key}`: {e}"),
            None => e.to_string(),
        },
    })
}

impl<T: Transport> MikobaseClient<T> {
    /// The records of class `R` on this store.
    pub fn records<R: Record>(&self) -> Records<'_, R, T> {
        Records::new(self)
    }
}

/// The records of class `R` (and its subclasses) on the store `db` reaches.
pub struct Records<'db, R, T> {
    db: &'db MikobaseClient<T>,
    /// Local copies or live proxies from `fetch` and `query` (the connection's, unless
    /// overridden with `in_mode`).
    mode: super::mode::Mode,
    record: PhantomData<fn() -> R>,
}

impl<R, T> Clone for Records<'_, R, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<R, T> Copy for Records<'_, R, T> {}

impl<R: Record, T> fmt::Debug for Records<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Records").field("class", &R::CLASS).finish()
    }
}

impl<'db, R: Record, T: Transport + 'db> Records<'db, R, T> {
    /// The records of class `R` on `db`.
    pub fn new(db: &'db MikobaseClient<T>) -> Self {
        Records {
            db,
            mode: db.transport().mode(),
            record: PhantomData,
        }
    }

    /// The same records in `mode` (overrides the connection's for these calls).
    pub fn in_mode(self, mode: super::mode::Mode) -> Self {
        Records { mode, ..self }
    }

    /// The mode `fetch` and `query` answer in.
    pub fn mode(&self) -> super::mode::Mode {
        self.mode
    }

    /// The client these records are reached through.
    pub fn db(&self) -> &'db MikobaseClient<T> {
        self.db
    }

    /// Installs (or replaces, by name) the class definition: one `import_schema`, so every
    /// worker may call it. The parents in [`Record::INHERITS`] must be defined first
    /// (`class-not-found` otherwise).
    pub fn define(&self) -> Result<(), RecordError> {
        let definition: ClassDefinition =
            serde_json::from_value(R::class_definition()).map_err(|e| RecordError::Encode {
                rust_type: std::any::type_name::<R>(),
                reason: format!("its class definition: {e}"),
            })?;
        self.db.import_schema(&ImportSchemaRequest {
            classes: vec![definition],
        })?;
        Ok(())
    }

    /// Creates a record of class `R` holding `value`; returns its proxy.
    pub fn create(&self, value: &R) -> Result<R::Proxy<'db, T>, RecordError> {
        let request = CreateRequest {
            bucket: bucket(value)?,
            class: Some(R::CLASS.to_owned()),
            ..CreateRequest::default()
        };
        let pk = self.db.create(&request)?.results.pk;
        Ok(self.at(pk))
    }

    /// The proxy of record `pk` (no round trip: the record is not checked).
    pub fn at(&self, pk: impl Into<Pk>) -> R::Proxy<'db, T> {
        Stored::new(self.db, pk.into()).into()
    }

    /// The value of record `pk`.
    pub fn get(&self, pk: &str) -> Result<R, RecordError> {
        Stored::<R, T>::new(self.db, pk.to_owned()).get()
    }

    /// The records `request` selects among class `R` and its subclasses (its `class` and
    /// `classes` are replaced), with their pks.
    pub fn select(&self, request: &SelectRequest) -> Result<Vec<(Pk, R)>, RecordError> {
        let request = SelectRequest {
            class: Some(ClassFilter::One(R::CLASS.to_owned())),
            classes: None,
            ..request.clone()
        };
        self.db
            .select(&request)?
            .results
            .records
            .into_iter()
            .map(|r| {
                let value = decode::<R, R>(&r.pk, Value::Object(r.bucket), None)?;
                Ok((r.pk, value))
            })
            .collect()
    }

    /// Every record of class `R` and its subclasses, in insertion order.
    pub fn all(&self) -> Result<Vec<(Pk, R)>, RecordError> {
        self.select(&SelectRequest::default())
    }

    /// Replaces the bucket of record `pk` with `value`.
    pub fn update(&self, pk: &str, value: &R) -> Result<(), RecordError> {
        Stored::<R, T>::new(self.db, pk.to_owned()).update(value)
    }

    /// Deletes record `pk`.
    pub fn delete(&self, pk: &str) -> Result<(), RecordError> {
        Stored::<R, T>::new(self.db, pk.to_owned()).delete()
    }
}

/// One record of class `R` on a store, by pk. Holds no data: every call is one round trip.
pub struct Stored<'db, R, T> {
    db: &'db MikobaseClient<T>,
    pk: Pk,
    record: PhantomData<fn() -> R>,
}

impl<R, T> Clone for Stored<'_, R, T> {
    fn clone(&self) -> Self {
        Stored {
            db: self.db,
            pk: self.pk.clone(),
            record: PhantomData,
        }
    }
}

impl<R: Record, T> fmt::Debug for Stored<'_, R, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stored")
            .field("class", &R::CLASS)
            .field("pk", &self.pk)
            .finish()
    }
}

impl<'db, R: Record, T: Transport + 'db> Stored<'db, R, T> {
    /// Record `pk` on `db` (no round trip).
    pub fn new(db: &'db MikobaseClient<T>, pk: Pk) -> Self {
        Stored {
            db,
            pk,
            record: PhantomData,
        }
    }

    /// The record's primary key.
    pub fn pk(&self) -> &str {
        &self.pk
    }

    /// The record's current value (one `record_by_pk`).
    pub fn get(&self) -> Result<R, RecordError> {
        let record = self
            .db
            .record_by_pk(&RecordByPkRequest { pk: self.pk.clone() })?
            .results;
        decode::<R, R>(&self.pk, Value::Object(record.bucket), None)
    }

    /// Replaces the record's bucket with `value` (one `update`; the class stays).
    pub fn update(&self, value: &R) -> Result<(), RecordError> {
        let request = UpdateRequest {
            pk: self.pk.clone(),
            bucket: Some(bucket(value)?),
            ..UpdateRequest::default()
        };
        self.db.update(&request)?;
        Ok(())
    }

    /// Deletes the record (one `delete`).
    pub fn delete(&self) -> Result<(), RecordError> {
        let request = DeleteRequest {
            pk: self.pk.clone(),
            ..DeleteRequest::default()
        };
        self.db.delete(&request)?;
        Ok(())
    }

    /// The bucket key `key` as a value of type `V` (the derived accessors call this).
    pub fn field<V>(&self, key: &'static str) -> Field<'db, R, V, T> {
        Field {
            db: self.db,
            pk: self.pk.clone(),
            key,
            types: PhantomData,
        }
    }
}

/// One bucket key of one record, as a `V`: `get` and `set` are one round trip each.
pub struct Field<'db, R, V, T> {
    db: &'db MikobaseClient<T>,
    pk: Pk,
    key: &'static str,
    types: PhantomData<fn() -> (R, V)>,
}

impl<R: Record, V, T> fmt::Debug for Field<'_, R, V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Field")
            .field("class", &R::CLASS)
            .field("pk", &self.pk)
            .field("key", &self.key)
            .finish()
    }
}

impl<R: Record, V: Serialize + DeserializeOwned, T: Transport> Field<'_, R, V, T> {
    /// The bucket key.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The key's current value (one `record_by_pk`); a missing key reads as null, which is
    /// `None` for an `Option` and a decode error otherwise.
    pub fn get(&self) -> Result<V, RecordError> {
        let record = self
            .db
            .record_by_pk(&RecordByPkRequest { pk: self.pk.clone() })?
            .results;
        let value = record.bucket.get(self.key).cloned().unwrap_or(Value::Null);
        decode::<R, V>(&self.pk, value, Some(self.key))
    }

    /// Sets the key to `value` (one `set_fields`: the other keys are kept, the record is
    /// validated as by `update`, and concurrent writes to other keys are not lost).
    pub fn set(&self, value: impl Into<V>) -> Result<(), RecordError> {
        let value = serde_json::to_value(value.into()).map_err(|e| RecordError::Encode {
            rust_type: std::any::type_name::<V>(),
            reason: e.to_string(),
        })?;
        let mut fields = Map::new();
        fields.insert(self.key.to_owned(), value);
        self.db.set_fields(&SetFieldsRequest {
            pk: self.pk.clone(),
            fields,
            transaction: None,
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_leave_out_what_is_not_declared() {
        const WATCHES: &[Literal] = &[Literal::Str("alpha"), Literal::Str("beta")];
        let fields = [
            FieldDecl {
                key: "watch",
                class: Some("string"),
                required: false,
                unique: false,
                default: Some(Literal::Str("alpha")),
                one_of: WATCHES,
                items: None,
                fields: &[],
                description: Some("Which watch."),
            },
            FieldDecl {
                key: "anything",
                class: None,
                required: true,
                unique: true,
                default: None,
                one_of: &[],
                items: Some("string"),
                fields: &[],
                description: None,
            },
        ];
        assert_eq!(
            definition("example.org/crew/officer", &fields),
            json!({"name": "example.org/crew/officer", "fields": {
                "watch": {"class": "string", "one_of": ["alpha", "beta"], "default": "alpha",
                    "description": "Which watch."},
                "anything": {"required": true, "unique": true, "items": "string"},
            }})
        );
    }

    #[test]
    fn literals_keep_their_json_type() {
        assert_eq!(Literal::Int(-3).to_json(), json!(-3));
        assert_eq!(Literal::UInt(u64::MAX).to_json(), json!(u64::MAX));
        assert_eq!(Literal::Float(0.5).to_json(), json!(0.5));
        assert_eq!(Literal::Bool(false).to_json(), json!(false));
        assert_eq!(Literal::Str("a\"b").to_json(), json!("a\"b"));
    }
}
