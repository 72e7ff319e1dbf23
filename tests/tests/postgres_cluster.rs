//! A real PostgreSQL for tests (`caspian_ipc_tests::postgres`): a throwaway cluster on a
//! Unix socket, queried through the `postgres` crate. Skipped, saying so, when PostgreSQL
//! is not installed; on CI (`CI=true`, where `.ci/run` installs it) a missing PostgreSQL
//! fails instead.

use caspian_ipc_tests::postgres::{
    find_binaries_in, Cluster, Postgres, Skipped, NOT_INSTALLED, START_DEADLINE,
};
use postgres::{Client, NoTls};

/// A running cluster, or `None` after reporting the skip.
fn cluster() -> Option<Cluster> {
    match Cluster::start().unwrap_or_else(|e| panic!("{e}")) {
        Postgres::Running(cluster) => Some(cluster),
        Postgres::Skipped(skipped) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{skipped}: .ci/run installs PostgreSQL before the tests, so on CI it must be there"
            );
            skipped.report();
            None
        }
    }
}

fn connect(cluster: &Cluster) -> Client {
    Client::connect(&cluster.config(), NoTls)
        .unwrap_or_else(|e| panic!("connect with {}: {e}", cluster.config()))
}

#[test]
fn a_cluster_answers_queries_and_isolates_uncommitted_transactions() {
    let Some(cluster) = cluster() else { return };
    let mut a = connect(&cluster);

    // Only the Unix socket, and no durability: what the helper promises.
    let setting = |client: &mut Client, name: &str| -> String {
        client.query_one(&format!("SHOW {name}"), &[]).unwrap().get(0)
    };
    assert_eq!(setting(&mut a, "listen_addresses"), "");
    assert_eq!(setting(&mut a, "fsync"), "off");
    assert_eq!(
        setting(&mut a, "unix_socket_directories"),
        cluster.socket_dir().display().to_string()
    );

    // Create, insert, select.
    a.batch_execute("CREATE TABLE crew (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .unwrap();
    let inserted = a
        .execute(
            "INSERT INTO crew (id, name) VALUES ($1, $2), ($3, $4)",
            &[&1i32, &"Ada", &2i32, &"Grace"],
        )
        .unwrap();
    assert_eq!(inserted, 2);
    let names: Vec<String> = a
        .query("SELECT name FROM crew ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(names, ["Ada", "Grace"]);

    // Two connections at once: b does not see a's uncommitted insert, then sees it
    // committed.
    let mut b = connect(&cluster);
    let count =
        |client: &mut Client| -> i64 { client.query_one("SELECT count(*) FROM crew", &[]).unwrap().get(0) };
    let mut transaction = a.transaction().unwrap();
    transaction
        .execute("INSERT INTO crew (id, name) VALUES (3, 'Hedy')", &[])
        .unwrap();
    let seen_inside: i64 = transaction
        .query_one("SELECT count(*) FROM crew", &[])
        .unwrap()
        .get(0);
    assert_eq!(seen_inside, 3, "a sees its own insert");
    assert_eq!(count(&mut b), 2, "b does not see a's uncommitted insert");
    transaction.commit().unwrap();
    assert_eq!(count(&mut b), 3, "b sees it once committed");
}

#[test]
fn a_dropped_cluster_is_stopped_and_removed() {
    let Some(cluster) = cluster() else { return };
    let (root, config) = (cluster.socket_dir().to_owned(), cluster.config());
    let mut client = connect(&cluster);
    client.batch_execute("SELECT 1").unwrap();
    drop(client);
    drop(cluster);
    assert!(!root.exists(), "{} is removed", root.display());
    assert!(
        Client::connect(&config, NoTls).is_err(),
        "nothing answers on the socket any more"
    );
}

#[test]
fn missing_binaries_are_a_skip_that_says_how_to_install() {
    let empty = std::env::temp_dir().join(format!("caspian-pg-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    assert_eq!(find_binaries_in([empty.clone()]), None);
    std::fs::remove_dir(&empty).unwrap();
    match Cluster::start_with(None, START_DEADLINE).unwrap() {
        Postgres::Skipped(skipped) => {
            assert_eq!(
                skipped,
                Skipped {
                    reason: NOT_INSTALLED.to_owned()
                }
            );
            assert_eq!(
                skipped.to_string(),
                "skipped: PostgreSQL not installed (apt-get install postgresql)"
            );
        }
        Postgres::Running(cluster) => panic!("started without binaries: {cluster:?}"),
    }
}
