//! The store conformance suite on the embedded SQLite store, each test on a
//! fresh database file in its own temporary directory.

use tollgate::store::sqlite::SqliteStore;
use tollgate_tests::conformance::Fixture;

async fn fresh() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = SqliteStore::open(&dir.path().join("tollgate.db")).expect("open the store");
    Fixture::new(store, dir)
}

tollgate_tests::conformance_suite!(fresh);
