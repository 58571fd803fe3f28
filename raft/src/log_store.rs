//! The Raft log, vote and commit index in redb.
//!
//! Every write is its own redb transaction committed with `Durability::Immediate` (an fsync)
//! on the blocking pool; `append` tells openraft the entries are durable only after that commit
//! has returned.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader, StorageIOError};
use redb::{Durability, ReadableTable, TableDefinition};

use crate::database::RaftDatabase;

use crate::raft_types::{Entry, LogId, StorageError, TypeConfig, Vote};

pub(crate) const LOG_TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");
const VOTE_KEY: &str = "vote";
const COMMITTED_KEY: &str = "committed";
const LAST_PURGED_KEY: &str = "last_purged";

/// openraft's log storage over one redb database (shared with the state machine's snapshot).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<RaftDatabase>,
}

use crate::store_error::StoreError as IoError;

impl LogStore {
    pub fn new(db: Arc<RaftDatabase>) -> Result<LogStore, IoError> {
        // Create the tables up front so that readers never meet a missing one.
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.open_table(LOG_TABLE)?;
        txn.open_table(META_TABLE)?;
        txn.commit()?;
        Ok(LogStore { db })
    }

    /// Runs a redb write on the blocking pool and commits it durably before returning.
    async fn write<F>(&self, change: F) -> Result<(), IoError>
    where
        F: FnOnce(&redb::WriteTransaction) -> Result<(), IoError> + Send + 'static,
    {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<(), IoError> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate);
            change(&txn)?;
            txn.commit()?;
            Ok(())
        })
        .await?
    }

    async fn read_meta<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &'static str,
    ) -> Result<Option<T>, IoError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || -> Result<Option<T>, IoError> {
            let txn = db.begin_read()?;
            let table = txn.open_table(META_TABLE)?;
            match table.get(key)? {
                None => Ok(None),
                Some(bytes) => Ok(Some(postcard::from_bytes(bytes.value())?)),
            }
        })
        .await?
    }

    async fn write_meta<T: serde::Serialize>(
        &self,
        key: &'static str,
        value: &T,
    ) -> Result<(), IoError> {
        let bytes = postcard::to_stdvec(value)?;
        self.write(move |txn| {
            txn.open_table(META_TABLE)?.insert(key, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId>, IoError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LOG_TABLE)?;
        let last = table.last()?;
        let log_id = match last {
            None => None,
            Some((_, bytes)) => Some(postcard::from_bytes::<Entry>(bytes.value())?.log_id),
        };
        Ok(log_id)
    }
}

fn to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let db = self.db.clone();
        let bounds = to_bounds(&range);
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<Entry>, IoError> {
            let txn = db.begin_read()?;
            let table = txn.open_table(LOG_TABLE)?;
            let mut entries = Vec::new();
            for item in table.range::<u64>(bounds)? {
                let (_, bytes) = item?;
                entries.push(postcard::from_bytes(bytes.value())?);
            }
            Ok(entries)
        });
        let entries = read.await.map_err(|e| StorageIOError::read_logs(&e))?;
        entries.map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self
            .read_meta(LAST_PURGED_KEY)
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let store = self.clone();
        let last = tokio::task::spawn_blocking(move || store.last_entry_log_id())
            .await
            .map_err(|e| StorageIOError::read_logs(&e))?
            .map_err(|e| StorageIOError::read_logs(&e))?;
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.write_meta(VOTE_KEY, vote)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        self.read_meta(VOTE_KEY)
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.write_meta(COMMITTED_KEY, &committed)
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let committed: Option<Option<LogId>> = self
            .read_meta(COMMITTED_KEY)
            .await
            .map_err(|e| StorageIOError::read(&e))?;
        Ok(committed.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        for entry in entries {
            let bytes = postcard::to_stdvec(&entry).map_err(|e| StorageIOError::write_logs(&e))?;
            encoded.push((entry.log_id.index, bytes));
        }
        let result = self
            .write(move |txn| {
                let mut table = txn.open_table(LOG_TABLE)?;
                for (index, bytes) in &encoded {
                    table.insert(*index, bytes.as_slice())?;
                }
                Ok(())
            })
            .await;
        // Only now, with the commit (and its fsync) returned, are the entries durable.
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                callback.log_io_completed(Err(std::io::Error::other(message)));
                Err(StorageIOError::write_logs(&e).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let since = log_id.index;
        self.write(move |txn| {
            let mut table = txn.open_table(LOG_TABLE)?;
            table.retain_in::<u64, _>(since.., |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(&log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        let upto = log_id.index;
        // The purge marker and the removal commit together: a crash leaves both or neither.
        self.write(move |txn| {
            txn.open_table(META_TABLE)?
                .insert(LAST_PURGED_KEY, bytes.as_slice())?;
            let mut table = txn.open_table(LOG_TABLE)?;
            table.retain_in::<u64, _>(0..=upto, |_, _| false)?;
            Ok(())
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
