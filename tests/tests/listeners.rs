//! Listeners of the shared Mikobase's server, driven in-process: the generated client →
//! the dispatch table → `MikobaseServer` (the same code a forked run serves).

use std::cell::RefCell;
use std::rc::Rc;

use caspian_ipc::mikobase::engine::Engine;
use caspian_ipc::mikobase::{
    Change, CommitRequest, CreateRequest, DeleteRequest, InProcess, MikobaseClient, MikobaseServer,
    RollbackRequest, SetFieldsRequest, TransactionRequest,
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
        assert_eq!(before[0].pk, None, "a create has no pk before it happens");
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
