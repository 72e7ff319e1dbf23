//! Listeners of the shared Mikobase's server, driven in-process: the generated client →
//! the dispatch table → `MikobaseServer` (the same code a forked run serves).

use std::cell::RefCell;
use std::rc::Rc;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    CallContext, Change, ClassFilter, CommitRequest, CreateRequest, DeleteRequest, ImportWorldletRequest,
    InProcess, MikobaseClient, MikobaseServer, MikobaseService, RollbackRequest, SelectRequest,
    SetFieldsRequest, Target, TransactionRequest, VetoScope, Worldlet,
};
use serde_json::{json, Map, Value};

type Log = Rc<RefCell<Vec<Change>>>;

const OFFICER: &str = "example.org/crew/officer";

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// A server whose `after_save` listener logs every change it is told about, and whose
/// `before_save` refuses a `rank` of "Admiral".
fn served() -> (MikobaseClient<InProcess<MikobaseServer>>, Log, Log) {
    let (before, after): (Log, Log) = Default::default();
    let (seen_before, seen_after) = (before.clone(), after.clone());
    let server = MikobaseServer::new(Engine::memory())
        .before_save(move |change| {
            seen_before.borrow_mut().push(change.clone());
            match change.bucket.as_ref().and_then(|b| b.get("rank")) {
                Some(rank) if rank == "Admiral" => Err("no admirals aboard".into()),
                _ => Ok(()),
            }
        })
        .after_save(move |change| seen_after.borrow_mut().push(change.clone()));
    let db = MikobaseClient::new(InProcess::new(server));
    db.create(&CreateRequest {
        class: Some("puck.uno/class".into()),
        bucket: object(json!({"name": OFFICER, "fields": {"rank": {"class": "string"}}})),
        ..Default::default()
    })
    .unwrap();
    before.borrow_mut().clear();
    after.borrow_mut().clear();
    (db, before, after)
}

fn officer(db: &MikobaseClient<InProcess<MikobaseServer>>, name: &str, transaction: Option<&str>) -> String {
    db.create(&CreateRequest {
        class: Some(OFFICER.into()),
        bucket: object(json!({"name": name, "rank": "Corporal"})),
        transaction: transaction.map(str::to_owned),
        ..Default::default()
    })
    .unwrap()
    .results
    .pk
}

fn begin(db: &MikobaseClient<InProcess<MikobaseServer>>) -> String {
    db.transaction(&TransactionRequest::default())
        .unwrap()
        .results
        .transaction
}

fn names(log: &Log) -> Vec<String> {
    log.borrow()
        .iter()
        .map(|c| c.bucket.as_ref().map_or(Value::Null, |b| b["name"].clone()))
        .map(|n| n.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn after_save_waits_for_the_outermost_commit_and_never_sees_a_rollback() {
    let (db, _, after) = served();
    officer(&db, "Apone", None);
    assert_eq!(names(&after), ["Apone"], "outside a transaction: at once");

    let outer = begin(&db);
    officer(&db, "Hicks", Some(&outer));
    let inner = begin(&db);
    officer(&db, "Hudson", Some(&inner));
    db.rollback(&RollbackRequest { transaction: inner }).unwrap();
    let committed_inner = begin(&db);
    officer(&db, "Vasquez", Some(&committed_inner));
    db.commit(&CommitRequest {
        transaction: committed_inner,
    })
    .unwrap();
    let later = begin(&db); // a committed inner write must outlive a later inner rollback
    officer(&db, "Drake", Some(&later));
    db.rollback(&RollbackRequest { transaction: later }).unwrap();
    assert_eq!(names(&after), ["Apone"], "nothing before the outermost commit");
    db.commit(&CommitRequest { transaction: outer }).unwrap();
    assert_eq!(
        names(&after),
        ["Apone", "Hicks", "Vasquez"],
        "committed writes in order; the rolled-back one never"
    );

    let doomed = begin(&db);
    officer(&db, "Gorman", Some(&doomed));
    db.rollback(&RollbackRequest { transaction: doomed }).unwrap();
    assert_eq!(
        names(&after).len(),
        3,
        "a rolled-back transaction is never reported"
    );
}

#[test]
fn changes_carry_the_record_its_class_and_what_its_fields_were() {
    let (db, before, after) = served();
    let pk = officer(&db, "Hicks", None);
    {
        let before = before.borrow();
        assert_eq!(before[0].action, "create");
        assert_eq!(
            before[0].pk.as_deref(),
            Some(pk.as_str()),
            "before_save runs inside the write, before it is kept: a create's pk is known"
        );
        assert_eq!(after.borrow()[0].pk.as_deref(), Some(pk.as_str()));
    }

    db.set_fields(&SetFieldsRequest {
        pk: pk.clone(),
        fields: object(json!({"rank": "Sergeant"})),
        transaction: None,
    })
    .unwrap();
    let update = after.borrow()[1].clone();
    assert_eq!(update.action, "update");
    assert_eq!(update.class.as_deref(), Some(OFFICER), "the record's own class");
    assert_eq!(
        update.fields().into_iter().collect::<Vec<_>>(),
        [(
            "rank".to_owned(),
            (Some(json!("Corporal")), Some(json!("Sergeant")))
        )],
        "only the changed field"
    );

    db.delete(&DeleteRequest {
        pk: pk.clone(),
        ..Default::default()
    })
    .unwrap();
    let delete = after.borrow()[2].clone();
    assert_eq!(
        (delete.action, delete.class.as_deref(), delete.bucket.is_none()),
        ("delete", Some(OFFICER), true)
    );
    assert_eq!(
        delete.old.as_ref().map(|b| b["rank"].clone()),
        Some(json!("Sergeant"))
    );
    assert_eq!(
        delete.fields().len(),
        2,
        "every field goes: {:?}",
        delete.fields()
    );
}

#[test]
fn a_veto_refuses_the_write_and_reports_nothing_after() {
    let (db, _, after) = served();
    let pk = officer(&db, "Gorman", None);
    let refused = db
        .set_fields(&SetFieldsRequest {
            pk: pk.clone(),
            fields: object(json!({"rank": "Admiral"})),
            transaction: None,
        })
        .unwrap_err();
    assert_eq!(refused.id(), Some("rejected-by-listener"));
    assert!(refused.to_string().contains("no admirals aboard"), "{refused}");
    let stored = db
        .record_by_pk(&caspian_ipc::mikobase::RecordByPkRequest { pk })
        .unwrap()
        .results;
    assert_eq!(stored.bucket["rank"], "Corporal", "nothing written");
    assert_eq!(after.borrow().len(), 1, "only the create was reported");
}

/// A server with the officer class and a `before_save` refusing admirals, with `scope`.
fn strict(scope: VetoScope) -> MikobaseClient<InProcess<MikobaseServer>> {
    let server = MikobaseServer::new(Engine::memory())
        .before_save(
            |change| match change.bucket.as_ref().and_then(|b| b.get("rank")) {
                Some(rank) if rank == "Admiral" => Err("no admirals aboard".into()),
                _ => Ok(()),
            },
        )
        .veto_scope(scope);
    let db = MikobaseClient::new(InProcess::new(server));
    db.create(&CreateRequest {
        class: Some("puck.uno/class".into()),
        bucket: object(json!({"name": OFFICER, "fields": {"rank": {"class": "string"}}})),
        ..Default::default()
    })
    .unwrap();
    db
}

fn count(db: &MikobaseClient<InProcess<MikobaseServer>>) -> u64 {
    db.select(&SelectRequest {
        class: Some(ClassFilter::One(OFFICER.into())),
        ..Default::default()
    })
    .unwrap()
    .results
    .count
}

#[test]
fn a_veto_rolls_the_whole_transaction_back_by_default() {
    let db = strict(VetoScope::default());
    let tx = begin(&db);
    officer(&db, "Apone", Some(&tx));
    let refused = db
        .create(&CreateRequest {
            class: Some(OFFICER.into()),
            bucket: object(json!({"name": "Ripley", "rank": "Admiral"})),
            transaction: Some(tx.clone()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(refused.id(), Some("rejected-by-listener"));
    assert!(
        refused.to_string().contains("rolled_back_transaction\":true"),
        "{refused}"
    );
    assert_eq!(count(&db), 0, "the transaction's earlier write is gone too");
    let commit = db.commit(&CommitRequest { transaction: tx }).unwrap_err();
    assert_eq!(
        commit.id(),
        Some("transaction-not-found"),
        "the transaction is over"
    );
}

#[test]
fn a_write_scoped_veto_keeps_the_transaction() {
    let db = strict(VetoScope::Write);
    let tx = begin(&db);
    officer(&db, "Apone", Some(&tx));
    let refused = db
        .create(&CreateRequest {
            class: Some(OFFICER.into()),
            bucket: object(json!({"name": "Ripley", "rank": "Admiral"})),
            transaction: Some(tx.clone()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(refused.id(), Some("rejected-by-listener"));
    db.commit(&CommitRequest { transaction: tx }).unwrap();
    assert_eq!(count(&db), 1, "only the vetoed write was undone");
}

#[test]
fn targets_pick_a_record_a_class_or_a_query_matched_after_the_change() {
    let (on_record, on_class, on_query): (Log, Log, Log) = Default::default();
    let (r, c, q) = (on_record.clone(), on_class.clone(), on_query.clone());
    let server = MikobaseServer::new(Engine::memory())
        .after_save_on(Target::Class(OFFICER.into()), move |change| {
            c.borrow_mut().push(change.clone())
        })
        .after_save_on(
            Target::Query(Box::new(SelectRequest {
                path: Some(vec![json!("rank"), json!("Sergeant")]),
                ..Default::default()
            })),
            move |change| q.borrow_mut().push(change.clone()),
        );
    let db = MikobaseClient::new(InProcess::new(server));
    for (name, inherits) in [(OFFICER, None), ("example.org/crew/pilot", Some(OFFICER))] {
        let mut definition =
            json!({"name": name, "fields": {"rank": {"class": "string"}, "name": {"class": "string"}}});
        if let Some(parent) = inherits {
            definition["inherits"] = json!(parent);
        }
        db.create(&CreateRequest {
            class: Some("puck.uno/class".into()),
            bucket: object(definition),
            ..Default::default()
        })
        .unwrap();
    }
    let hicks = officer(&db, "Hicks", None);
    let pilot = db
        .create(&CreateRequest {
            class: Some("example.org/crew/pilot".into()),
            bucket: object(json!({"name": "Ferro", "rank": "Corporal"})),
            ..Default::default()
        })
        .unwrap()
        .results
        .pk;
    // Registered while serving: applies from the next write on.
    db.transport()
        .with(|server| {
            server.add_after_save(Target::Record(hicks.clone()), move |change| {
                r.borrow_mut().push(change.clone())
            })
        })
        .unwrap();
    for pk in [&hicks, &pilot] {
        db.set_fields(&SetFieldsRequest {
            pk: pk.clone(),
            fields: object(json!({"rank": "Sergeant"})),
            transaction: None,
        })
        .unwrap();
    }
    let pks = |log: &Log| {
        log.borrow()
            .iter()
            .map(|c| c.pk.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(pks(&on_record), std::slice::from_ref(&hicks), "one record only");
    assert_eq!(
        pks(&on_class),
        [hicks.clone(), pilot.clone(), hicks.clone(), pilot.clone()],
        "the class and its subclass, every write"
    );
    assert_eq!(
        pks(&on_query),
        [hicks.clone(), pilot.clone()],
        "only writes after which the record matches: both entered the set"
    );
}

#[test]
fn imports_do_not_run_listeners() {
    let (db, before, after) = served();
    let worldlet: Worldlet = serde_json::from_value(json!({
        "format": "worldlet/1.0",
        "records": {"k1": {"bucket": {"name": "Vasquez", "rank": "Admiral"}, "stack": {"a": {"class": OFFICER}}}}
    }))
    .unwrap();
    let imported = db
        .transport()
        .with(|server| {
            MikobaseService::import_worldlet(
                server,
                &CallContext::default(),
                ImportWorldletRequest { worldlet },
            )
        })
        .unwrap()
        .unwrap();
    assert_eq!(imported.results.imported, 1, "the import is not vetoed");
    assert!(
        before.borrow().is_empty() && after.borrow().is_empty(),
        "no listener ran (D-M12)"
    );
}
