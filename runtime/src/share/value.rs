//! Turning caller values into JSON, refusing what JSON cannot hold.
//!
//! `serde_json::to_value` silently turns NaN and infinities into `null` and integer map
//! keys into strings; for shared state that would be silent corruption. So every value is
//! first walked by a checking serializer that refuses non-finite floats and non-string
//! map keys, naming where they are.

use serde::ser::{self, Impossible, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// Converts `value` to JSON, or explains why it is not JSON.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Value> {
    let mut checker = Checker { path: Vec::new() };
    value
        .serialize(&mut checker)
        .map_err(|e| Error::InvalidValue { reason: e.0 })?;
    serde_json::to_value(value).map_err(|e| Error::InvalidValue {
        reason: e.to_string(),
    })
}

#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Refused {}
impl ser::Error for Refused {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Refused(msg.to_string())
    }
}

struct Checker {
    path: Vec<String>,
}

impl Checker {
    fn at(&self) -> String {
        if self.path.is_empty() {
            "at the top level".to_owned()
        } else {
            format!("at {}", self.path.join("."))
        }
    }
    fn float(&self, v: f64) -> Result<(), Refused> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(Refused(format!(
                "{v} {} is not a JSON number (JSON has no NaN or infinity); store a finite number, null or a string instead",
                self.at()
            )))
        }
    }
    fn nested<T: Serialize + ?Sized>(&mut self, key: String, value: &T) -> Result<(), Refused> {
        self.path.push(key);
        value.serialize(&mut *self)?;
        self.path.pop();
        Ok(())
    }
}

macro_rules! accept {
    ($($name:ident($ty:ty)),*) => {$(
        fn $name(self, _: $ty) -> Result<(), Refused> { Ok(()) }
    )*};
}

impl<'a> ser::Serializer for &'a mut Checker {
    type Ok = ();
    type Error = Refused;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = MapCheck<'a>;
    type SerializeStruct = MapCheck<'a>;
    type SerializeStructVariant = MapCheck<'a>;

    accept!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8])
    );

    fn serialize_f32(self, v: f32) -> Result<(), Refused> {
        self.float(f64::from(v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Refused> {
        self.float(v)
    }
    fn serialize_none(self) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<(), Refused> {
        v.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result<(), Refused> {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Result<(), Refused> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<(), Refused> {
        self.nested(variant.to_owned(), v)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Seq<'a>, Refused> {
        Ok(Seq {
            checker: self,
            index: 0,
        })
    }
    fn serialize_tuple(self, _: usize) -> Result<Seq<'a>, Refused> {
        Ok(Seq {
            checker: self,
            index: 0,
        })
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Seq<'a>, Refused> {
        Ok(Seq {
            checker: self,
            index: 0,
        })
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Seq<'a>, Refused> {
        Ok(Seq {
            checker: self,
            index: 0,
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapCheck<'a>, Refused> {
        Ok(MapCheck {
            checker: self,
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<MapCheck<'a>, Refused> {
        Ok(MapCheck {
            checker: self,
            key: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<MapCheck<'a>, Refused> {
        Ok(MapCheck {
            checker: self,
            key: None,
        })
    }
}

struct Seq<'a> {
    checker: &'a mut Checker,
    index: usize,
}

impl Seq<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Refused> {
        self.index += 1;
        self.checker.nested(format!("[{}]", self.index - 1), v)
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = ();
            type Error = Refused;
            fn $method<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Refused> {
                self.element(v)
            }
            fn end(self) -> Result<(), Refused> {
                Ok(())
            }
        }
    )*};
}
seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

struct MapCheck<'a> {
    checker: &'a mut Checker,
    key: Option<String>,
}

impl ser::SerializeMap for MapCheck<'_> {
    type Ok = ();
    type Error = Refused;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Refused> {
        let at = self.checker.at();
        self.key = Some(key.serialize(KeyName).map_err(|Refused(kind)| {
            Refused(format!(
                "a map key {at} is {kind}, but JSON object keys are strings; convert the keys to strings first"
            ))
        })?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), Refused> {
        let key = self.key.take().unwrap_or_default();
        self.checker.nested(key, v)
    }
    fn end(self) -> Result<(), Refused> {
        Ok(())
    }
}

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for MapCheck<'_> {
            type Ok = ();
            type Error = Refused;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, v: &T) -> Result<(), Refused> {
                self.checker.nested(key.to_owned(), v)
            }
            fn end(self) -> Result<(), Refused> {
                Ok(())
            }
        }
    )*};
}
struct_impl!(SerializeStruct, SerializeStructVariant);

/// Accepts only string-like map keys and returns them; refuses with the key's kind.
struct KeyName;

macro_rules! refuse_key {
    ($($name:ident($ty:ty) = $kind:literal),*) => {$(
        fn $name(self, _: $ty) -> Result<String, Refused> { Err(Refused($kind.to_owned())) }
    )*};
}

impl ser::Serializer for KeyName {
    type Ok = String;
    type Error = Refused;
    type SerializeSeq = Impossible<String, Refused>;
    type SerializeTuple = Impossible<String, Refused>;
    type SerializeTupleStruct = Impossible<String, Refused>;
    type SerializeTupleVariant = Impossible<String, Refused>;
    type SerializeMap = Impossible<String, Refused>;
    type SerializeStruct = Impossible<String, Refused>;
    type SerializeStructVariant = Impossible<String, Refused>;

    fn serialize_str(self, v: &str) -> Result<String, Refused> {
        Ok(v.to_owned())
    }
    fn serialize_char(self, v: char) -> Result<String, Refused> {
        Ok(v.to_string())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<String, Refused> {
        v.serialize(self)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String, Refused> {
        Ok(variant.to_owned())
    }
    refuse_key!(
        serialize_bool(bool) = "a boolean",
        serialize_i8(i8) = "an integer",
        serialize_i16(i16) = "an integer",
        serialize_i32(i32) = "an integer",
        serialize_i64(i64) = "an integer",
        serialize_i128(i128) = "an integer",
        serialize_u8(u8) = "an integer",
        serialize_u16(u16) = "an integer",
        serialize_u32(u32) = "an integer",
        serialize_u64(u64) = "an integer",
        serialize_u128(u128) = "an integer",
        serialize_f32(f32) = "a float",
        serialize_f64(f64) = "a float",
        serialize_bytes(&[u8]) = "bytes"
    );
    fn serialize_none(self) -> Result<String, Refused> {
        Err(Refused("none".into()))
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String, Refused> {
        Err(Refused("an option".into()))
    }
    fn serialize_unit(self) -> Result<String, Refused> {
        Err(Refused("a unit".into()))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String, Refused> {
        Err(Refused("a unit struct".into()))
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String, Refused> {
        Err(Refused("an enum variant with data".into()))
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Refused> {
        Err(Refused("a sequence".into()))
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Refused> {
        Err(Refused("a tuple".into()))
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Refused> {
        Err(Refused("a tuple struct".into()))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Refused> {
        Err(Refused("an enum variant with data".into()))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Refused> {
        Err(Refused("a map".into()))
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Refused> {
        Err(Refused("a struct".into()))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Refused> {
        Err(Refused("an enum variant with data".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};

    #[test]
    fn finite_json_passes_unchanged() {
        let v = serde_json::json!({"a": [1, 2.5, "x", null, {"b": true}]});
        assert_eq!(to_json(&v).unwrap(), v);
        let mut m = BTreeMap::new();
        m.insert("k", vec![1.5f64]);
        assert_eq!(to_json(&m).unwrap(), serde_json::json!({"k": [1.5]}));
    }

    #[test]
    fn nan_and_infinity_are_refused_with_their_location() {
        let mut m = BTreeMap::new();
        m.insert("scores", vec![1.0, f64::NAN]);
        let err = to_json(&m).unwrap_err().to_string();
        assert!(err.contains("NaN") && err.contains("scores.[1]"), "{err}");
        assert!(to_json(&f64::INFINITY).is_err());
        assert!(to_json(&f32::NEG_INFINITY).is_err());
    }

    #[test]
    fn non_string_keys_are_refused() {
        let mut m = HashMap::new();
        m.insert(3, "x");
        let err = to_json(&m).unwrap_err().to_string();
        assert!(err.contains("an integer") && err.contains("strings"), "{err}");
        let mut t = BTreeMap::new();
        t.insert((1, 2), 0);
        assert!(to_json(&t).is_err());
    }
}
