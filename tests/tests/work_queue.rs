//! The work-queue example (`runtime/examples/work_queue.rs`), a third shared resource built
//! from the public toolbox alone, under faults: the example's own code is included here and
//! run, so the guide's worked example is what is tested.

#[path = "../../runtime/examples/work_queue.rs"]
mod work_queue;

use caspian_ipc_tests::{check, check_nothing_left, run_serially, Failed, Trial};
use serde_json::Value;

type Outcome = Result<(), Failed>;

fn main() {
    run_serially(vec![
        Trial::test("every_item_is_done_once", every_item_is_done_once),
        Trial::test(
            "a_worker_killed_between_pop_and_ack_loses_no_item",
            a_worker_killed_between_pop_and_ack_loses_no_item,
        ),
    ])
}

/// Every pushed number 0..items has exactly one result, its square.
fn check_results(stats: &Value, items: u64) -> Outcome {
    check(
        stats["waiting"] == 0 && stats["taken"] == 0,
        format!("left over: {stats}"),
    )?;
    let results = stats["results"].as_object().cloned().unwrap_or_default();
    check(
        results.len() as u64 == items,
        format!("{} results for {items} items", results.len()),
    )?;
    let mut squares: Vec<u64> = results.values().filter_map(Value::as_u64).collect();
    squares.sort_unstable();
    let expected: Vec<u64> = (0..items).map(|n| n * n).collect();
    check(squares == expected, "each item's result is its square, once")
}

fn every_item_is_done_once() -> Outcome {
    let (stats, done) = work_queue::run(3, 200, false)?;
    check_results(&stats, 200)?;
    check(
        done.iter().all(Option::is_some),
        format!("every worker finished: {done:?}"),
    )?;
    let acked: u64 = done.iter().flatten().sum();
    check(acked == 200, format!("the workers acknowledged {acked} items"))?;
    check_nothing_left()
}

fn a_worker_killed_between_pop_and_ack_loses_no_item() -> Outcome {
    let (stats, done) = work_queue::run(3, 200, true)?;
    // Worker 0 died holding an item; its connection closed and the item went back.
    check(done[0].is_none(), format!("worker 0 was killed: {done:?}"))?;
    check_results(&stats, 200)?;
    let acked: u64 = done.iter().flatten().sum();
    check(
        acked == 199,
        format!("the survivors acknowledged {acked} items (worker 0 did one)"),
    )?;
    check_nothing_left()
}
