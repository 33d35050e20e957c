//! The store contract against the embedded local store.

dispatcher_store::contract_tests!(|| async {
    // Leaked on purpose: the directory must outlive the test's store handles.
    let dir = tempfile::tempdir().expect("temporary directory").keep();
    Some(dispatcher_store::local::open(&dir).expect("local store"))
});
