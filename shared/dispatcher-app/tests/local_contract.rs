//! The store contract against the embedded local store.

dispatcher_app::contract_tests!(|| async {
    // Kept: the directory must outlive the test's store handles. Under cargo's scratch
    // directory for tests, not the system's temporary directory.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("temporary directory")
        .keep();
    Some(dispatcher_app::local::open(&dir).expect("local store"))
});
