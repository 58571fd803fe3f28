//! openraft's own storage test suite against the redb log store and the state machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use sluice_raft::image::MetadataImage;
use sluice_raft::log_store::LogStore;
use sluice_raft::raft_types::{StorageError, TypeConfig};
use sluice_raft::state_machine::StateMachine;
use tokio::sync::watch;

struct RedbBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for RedbBuilder {
    async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().unwrap();
        let (db, _closed) =
            sluice_raft::database::RaftDatabase::create(&dir.path().join("raft.redb")).unwrap();
        let log_store = LogStore::new(db.clone()).unwrap();
        let (publisher, _) = watch::channel(Arc::new(MetadataImage::empty()));
        let state_machine = StateMachine::open(db, publisher).unwrap();
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn openraft_storage_suite_passes() {
    Suite::test_all(RedbBuilder).unwrap();
}
