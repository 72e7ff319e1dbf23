//! Writes: create, update and delete of one record, and the validation and uniqueness
//! checks every written row (created, updated or imported) goes through.

use serde_json::{json, Map, Value};

use super::classes::{parse_class, present, validate_bucket, CLASS_CLASS, DEFAULT_CLASS};
use super::problem::{error, invalid, warning, Problem};
use super::select::check_class_name;
use super::store::{Equal, Row, UniqueKey};
use super::values::json_eq;
use super::{fail, Engine};
use crate::mikobase::generated::{
    CreateRequest, DeleteRequest, DeleteResult, ErrorId, PkResult, Platter, RecordClasses, SetFieldsRequest,
    Stack, UpdateRequest, WarningId,
};

impl Engine {
    /// Creates one record.
    pub(crate) fn create_record(
        &mut self,
        request: CreateRequest,
        warnings: &mut Vec<Problem>,
    ) -> Result<PkResult, Vec<Problem>> {
        if request.class.is_some() && request.classes.is_some() {
            warnings.push(warning(
                WarningId::RedundantFields,
                json!({ "fields": ["class", "classes"] }),
            ));
        }
        let stack = stack_for(request.class, request.classes).map_err(fail)?;
        let row = Row {
            pk: new_pk(),
            bucket: request.bucket,
            stack,
            updated_at: now(),
            active: true,
        };
        let pk = row.pk.clone();
        self.write(row, None)?;
        Ok(PkResult { pk })
    }

    /// Replaces a record's bucket and/or the class of its first class platter.
    pub(crate) fn update_record(&mut self, request: UpdateRequest) -> Result<PkResult, Vec<Problem>> {
        let UpdateRequest {
            pk, bucket, class, ..
        } = request;
        if bucket.is_none() && class.is_none() {
            return Err(fail(invalid(json!({
                "missing_fields": ["bucket"],
                "fix": "an update needs a new `bucket` (it replaces the old one), a new `class`, or both",
            }))));
        }
        let old = self.live(&pk).map_err(fail)?;
        let mut row = old.clone();
        if let Some(bucket) = bucket {
            row.bucket = bucket;
        }
        if let Some(class) = class {
            // The first class platter gets the new class; its other keys stay.
            match row.stack.values_mut().find(|p| p.class.is_some()) {
                Some(platter) => platter.class = Some(class),
                None => {
                    let key = free_platter_key(&row.stack);
                    row.stack.insert(key, platter_of(class));
                }
            }
        }
        row.updated_at = now();
        self.write(row, Some(&old))?;
        Ok(PkResult { pk })
    }

    /// The `update` a `set_fields` request amounts to (D9): the record's current bucket
    /// with `fields` set, so validation and listeners see one kind of write.
    pub(crate) fn merged_update(&self, request: SetFieldsRequest) -> Result<UpdateRequest, Problem> {
        let mut bucket = self.live(&request.pk)?.bucket;
        bucket.extend(request.fields);
        Ok(UpdateRequest {
            pk: request.pk,
            bucket: Some(bucket),
            class: None,
            transaction: request.transaction,
        })
    }

    /// Validates and stores a created, updated or imported row.
    pub(crate) fn write(&mut self, mut row: Row, old: Option<&Row>) -> Result<(), Vec<Problem>> {
        let classes = row.classes();
        for class in &classes {
            check_class_name(class).map_err(fail)?;
        }
        let unknown: Vec<Problem> = classes
            .iter()
            .filter(|c| !self.registry.knows(c))
            .map(|c| class_not_found(c))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown);
        }
        let defines_class = classes.iter().any(|c| c == CLASS_CLASS);
        let mut problems = Vec::new();
        if defines_class {
            // The whole-hash form's own `"class": "puck.uno/class"` is not part of the
            // definition.
            if row.bucket.get("class").and_then(Value::as_str) == Some(CLASS_CLASS) {
                row.bucket.shift_remove("class");
            }
            let def = parse_class(&row.bucket).map_err(fail)?;
            let old_name = old.and_then(|o| o.bucket.get("name")).and_then(Value::as_str);
            if self.registry.classes.contains_key(&def.name) && old_name != Some(def.name.as_str()) {
                return Err(fail(duplicate_class(&def.name)));
            }
            for parent in &def.inherits {
                if !self.registry.knows(parent) && parent != &def.name {
                    problems.push(class_not_found(parent));
                }
            }
        } else {
            for class in &classes {
                let fields = self.registry.fields(class);
                if let Err(e) = validate_bucket(&fields, &mut row.bucket) {
                    problems.push(e);
                }
            }
            row.bucket = present(
                std::mem::take(&mut row.bucket),
                &self.registry.field_order(&classes),
            );
        }
        let keys = if problems.is_empty() {
            let keys = self.unique_keys(&row, &classes);
            problems.extend(self.unique_violations(&row, &keys).map_err(fail)?);
            keys
        } else {
            Vec::new()
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        self.store.put(&row, &keys).map_err(fail)?;
        if defines_class || old.is_some_and(|o| o.classes().iter().any(|c| c == CLASS_CLASS)) {
            self.reload_classes().map_err(fail)?;
        }
        Ok(())
    }

    /// The unique keys (`unique` fields and `uniques` tuples of every class in the
    /// stack, in that order, a key repeated when two classes inherit it) the row has
    /// values for: absent or null values do not collide.
    fn unique_keys(&self, row: &Row, classes: &[String]) -> Vec<UniqueKey> {
        let mut keys: Vec<UniqueKey> = Vec::new();
        for class in classes {
            for (declared_by, fields) in self.registry.unique_sets(class) {
                let Some(values) = fields
                    .iter()
                    .map(|f| row.bucket.get(f).filter(|v| !v.is_null()).cloned())
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                keys.push(UniqueKey {
                    class: declared_by,
                    fields,
                    values,
                });
            }
        }
        keys
    }

    fn unique_violations(&self, row: &Row, keys: &[UniqueKey]) -> Result<Vec<Problem>, Problem> {
        let mut problems = Vec::new();
        for UniqueKey {
            class: declared_by,
            fields,
            values,
        } in keys
        {
            let members = self.store.with_subclasses(std::slice::from_ref(declared_by))?;
            let first = Equal::new(std::slice::from_ref(&fields[0]), &values[0]);
            let candidates = self.store.active(Some(&members), first.as_ref())?;
            let clash = candidates.iter().find(|other| {
                other.pk != row.pk
                    && fields
                        .iter()
                        .zip(values)
                        .all(|(f, v)| other.bucket.get(f).is_some_and(|a| json_eq(a, v)))
            });
            if let Some(other) = clash {
                problems.push(unique_violation(declared_by, fields, values, Some(&other.pk)));
            }
        }
        Ok(problems)
    }

    /// Deletes one record (a tombstone remains).
    pub(crate) fn delete_record(&mut self, request: DeleteRequest) -> Result<DeleteResult, Problem> {
        let DeleteRequest { pk, if_exists, .. } = request;
        let row = match self.live(&pk) {
            Ok(row) => row,
            Err(_) if if_exists == Some(true) => return Ok(DeleteResult { pk, deleted: false }),
            Err(e) => return Err(e),
        };
        let was_class = row.classes().iter().any(|c| c == CLASS_CLASS);
        let tombstone = Row {
            bucket: Map::new(),
            updated_at: now(),
            active: false,
            ..row
        };
        self.store.put(&tombstone, &[])?;
        if was_class {
            self.reload_classes()?;
        }
        Ok(DeleteResult { pk, deleted: true })
    }
}

/// `unique-violation`: `values` of `fields` (declared by `class`) are taken, by
/// `existing` when this connection can see which record holds them.
pub(crate) fn unique_violation(
    class: &str,
    fields: &[String],
    values: &[Value],
    existing: Option<&str>,
) -> Problem {
    let mut details = json!({
        "class": class,
        "fields": fields,
        "values": values,
        "existing_pk": existing,
        "fix": "use values no other active record of the class has (or update the existing record)",
    });
    if existing.is_none() {
        details["reason"] =
            json!("a record committed by another connection after this transaction began holds the values");
        details["fix"] =
            json!("roll back and run the transaction again (it then sees the record), or use other values");
    }
    error(ErrorId::UniqueViolation, details)
}

pub(crate) fn class_not_found(class: &str) -> Problem {
    error(
        ErrorId::ClassNotFound,
        json!({
            "class": class,
            "fix": format!("define it first: create a record of class puck.uno/class, e.g. {{\"action\": \"create\", \"class\": \"puck.uno/class\", \"bucket\": {{\"name\": \"{class}\", \"fields\": {{}}}}}}, or import a schema {{\"classes\": [{{\"name\": \"{class}\", \"fields\": {{}}}}]}} (`Mikobase::schema`, `mikobase schema import FILE`)"),
        }),
    )
}

pub(crate) fn duplicate_class(name: &str) -> Problem {
    error(
        ErrorId::ValidationFailed,
        json!({
            "reason": "duplicate class name",
            "name": name,
            "fix": "an active definition already has this name: update that one instead",
        }),
    )
}

/// A platter of one class.
fn platter_of(class: String) -> Platter {
    Platter {
        class: Some(class),
        ..Platter::default()
    }
}

pub(crate) fn default_stack(class: &str) -> Stack {
    let mut stack = Stack::default();
    stack.insert("shadow".into(), Platter::default());
    stack.insert("a".into(), platter_of(class.to_owned()));
    stack
}

pub(crate) fn class_stack() -> Stack {
    default_stack(CLASS_CLASS)
}

/// The stack of a new record: `shadow` first, then the platters given as a hash, then
/// one platter per class name, keyed `a`, `b`, ... (the first keys not taken; decision
/// E3).
fn stack_for(class: Option<String>, classes: Option<RecordClasses>) -> Result<Stack, Problem> {
    let mut stack = Stack::default();
    stack.insert("shadow".into(), Platter::default());
    let mut names: Vec<String> = class.into_iter().collect();
    match classes {
        None => {}
        Some(RecordClasses::Names(more)) => names.extend(more),
        Some(RecordClasses::Platters(platters)) => {
            for (key, platter) in platters {
                if platter.class.is_none() {
                    return Err(invalid(json!({
                        "classes": key,
                        "got": serde_json::to_value(&platter).unwrap_or(Value::Null),
                        "reason": "a platter is an object with a `class` name (inline class hashes are not supported)",
                        "fix": "give the platter as {\"class\": \"example.org/...\"}",
                    })));
                }
                stack.insert(key, platter);
            }
        }
    }
    if names.is_empty() && stack.len() == 1 {
        names.push(DEFAULT_CLASS.to_owned());
    }
    for name in names {
        let key = free_platter_key(&stack);
        stack.insert(key, platter_of(name));
    }
    Ok(stack)
}

/// The first platter key `a`, `b`, ..., `z`, `p26`, ... not in the stack.
fn free_platter_key(stack: &Stack) -> String {
    (0..)
        .map(|i: usize| match b"abcdefghijklmnopqrstuvwxyz".get(i) {
            Some(letter) => (*letter as char).to_string(),
            None => format!("p{i}"),
        })
        .find(|key| !stack.contains_key(key))
        .unwrap_or_default()
}

/// A random UUID v4, lowercase and hyphenated (`5d1e0c2a-...`).
pub(crate) fn new_pk() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Fall back to time-derived bytes rather than failing a write.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        bytes = t.to_le_bytes();
    }
    // Sets the version (4) and variant bits.
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The current UTC time as `YYYY-MM-DDTHH:MM:SS.mmm` (the SQLite schema's format).
pub(crate) fn now() -> String {
    let at = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}
