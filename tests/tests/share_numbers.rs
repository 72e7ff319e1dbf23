//! Numbers in the shared hash (decision D-H12): `incr` keeps integers exact or refuses
//! with a typed error before anything is stored, alone and inside a batch. Every case
//! checks the error id and that the stored value is unchanged. Forks, so runs serially.

use caspian_ipc::{share, Error, SharedHash};
use caspian_ipc_tests::{check, run_serially, Failed, Trial};
use serde_json::{json, Value};

type Outcome = Result<(), Failed>;

fn main() {
    run_serially(vec![
        Trial::test(
            "incr_refusals_are_typed_and_store_nothing",
            incr_refusals_are_typed_and_store_nothing,
        ),
        Trial::test(
            "refused_incr_in_a_batch_applies_nothing",
            refused_incr_in_a_batch_applies_nothing,
        ),
        Trial::test("float_delta_adds_as_float", float_delta_adds_as_float),
        Trial::test(
            "integers_at_the_edges_round_trip_and_wider_ones_are_refused",
            integers_at_the_edges_round_trip_and_wider_ones_are_refused,
        ),
    ])
}

/// Asserts `result` is the remote error `id` and `key` still holds `before`.
fn refused<T: std::fmt::Debug>(
    hash: &SharedHash,
    key: &str,
    before: &Value,
    id: &str,
    result: Result<T, Error>,
) -> Result<(), String> {
    match result {
        Err(err) if err.remote_id() == Some(id) => {}
        other => return Err(format!("{key}: expected `{id}`, got {other:?}")),
    }
    let now = hash.get_value(key).map_err(|e| e.to_string())?;
    if now.as_ref() != Some(before) {
        return Err(format!("{key}: was {before}, now {now:?} after a refused incr"));
    }
    Ok(())
}

fn incr_refusals_are_typed_and_store_nothing() -> Outcome {
    let state = share(1, |_, hash| {
        let set = |key: &str, value: Value| hash.set(key, &value).map(|_| value).map_err(|e| e.to_string());
        let max = set("max", json!(u64::MAX))?;
        refused(&hash, "max", &max, "integer_overflow", hash.incr("max", -1))?;
        let top = set("top", json!(i64::MAX))?;
        refused(&hash, "top", &top, "integer_overflow", hash.incr("top", 1))?;
        let bottom = set("bottom", json!(i64::MIN))?;
        refused(
            &hash,
            "bottom",
            &bottom,
            "integer_overflow",
            hash.incr("bottom", -1),
        )?;
        let half = set("half", json!(1.5))?;
        refused(&hash, "half", &half, "not_an_integer", hash.incr("half", 1))?;
        refused(&hash, "max", &max, "inexact_float", hash.incr_f64("max", 0.5))?;
        let huge = set("huge", json!(f64::MAX))?;
        refused(
            &hash,
            "huge",
            &huge,
            "float_overflow",
            hash.incr_f64("huge", f64::MAX),
        )?;
        Ok::<_, String>(())
    })?;
    check(
        state == json!({"max": u64::MAX, "top": i64::MAX, "bottom": i64::MIN, "half": 1.5, "huge": f64::MAX}),
        format!("final state {state}"),
    )
}

fn refused_incr_in_a_batch_applies_nothing() -> Outcome {
    let state = share(1, |_, hash| {
        hash.set("max", &u64::MAX).map_err(|e| e.to_string())?;
        hash.set("half", &1.5).map_err(|e| e.to_string())?;
        for (key, id) in [("max", "integer_overflow"), ("half", "not_an_integer")] {
            let before = hash.get_value(key).map_err(|e| e.to_string())?.ok_or("stored")?;
            let result = hash.batch(|b| {
                b.set("x", &1).incr("n", 1).incr(key, -1).set("y", &2);
            });
            if let Err(Error::Remote { details, .. }) = &result {
                if details["op_index"] != json!(2) || details["applied"] != json!(false) {
                    return Err(format!("{key}: batch error details {details}"));
                }
            }
            refused(&hash, key, &before, id, result)?;
        }
        Ok::<_, String>(())
    })?;
    check(
        state == json!({"max": u64::MAX, "half": 1.5}),
        format!("a refused batch left {state}"),
    )
}

fn float_delta_adds_as_float() -> Outcome {
    let state = share(1, |_, hash| {
        hash.set("n", &3)?;
        let sum = hash.incr_f64("n", 0.5)?;
        assert_eq!(sum, 3.5);
        Ok::<_, Error>(())
    })?;
    check(state == json!({"n": 3.5}), format!("state {state}"))
}

fn integers_at_the_edges_round_trip_and_wider_ones_are_refused() -> Outcome {
    let state = share(1, |_, hash| {
        hash.set("u", &u64::MAX)?;
        hash.set("i", &i64::MIN)?;
        assert_eq!(hash.get_value("u")?, Some(json!(u64::MAX)));
        assert_eq!(hash.get_value("i")?, Some(json!(i64::MIN)));
        let wide = hash.set("wide", &(u128::from(u64::MAX) + 1));
        assert!(matches!(wide, Err(Error::InvalidValue { .. })), "{wide:?}");
        let low = hash.set("low", &(i128::from(i64::MIN) - 1));
        assert!(matches!(low, Err(Error::InvalidValue { .. })), "{low:?}");
        assert_eq!(hash.get_value("wide")?, None);
        Ok::<_, Error>(())
    })?;
    check(
        state == json!({"u": u64::MAX, "i": i64::MIN}),
        format!("state {state}"),
    )
}
