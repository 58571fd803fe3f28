//! The one redb database of a node (log, vote, snapshot, bootstrap marker), with a signal that
//! fires once the file is really closed.
//!
//! openraft's tasks hold store handles for a moment after `Raft::shutdown` returns, and redb's
//! `Drop` (which releases the file lock) runs after the last `Arc` is gone; a restart must wait
//! for that, not just for the `Arc` count.

use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use redb::Database;
use tokio::sync::watch;

use crate::store_error::StoreError;

/// A redb `Database` that reports when it has been dropped.
pub struct RaftDatabase {
    // Field order matters: `database` drops (closing the file) before `_closed` signals.
    database: Database,
    _closed: ClosedSignal,
}

struct ClosedSignal(watch::Sender<bool>);

impl Drop for ClosedSignal {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl RaftDatabase {
    /// Opens or creates the database file. redb locks it: a second open fails.
    pub fn create(path: &Path) -> Result<(Arc<RaftDatabase>, watch::Receiver<bool>), StoreError> {
        let database = Database::create(path)?;
        let (sender, closed) = watch::channel(false);
        let database = RaftDatabase {
            database,
            _closed: ClosedSignal(sender),
        };
        Ok((Arc::new(database), closed))
    }
}

impl Deref for RaftDatabase {
    type Target = Database;

    fn deref(&self) -> &Database {
        &self.database
    }
}
