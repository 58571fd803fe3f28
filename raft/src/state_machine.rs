//! The Raft state machine: replays committed record batches into the metadata image and
//! publishes each new image; snapshots are the image written as records.
//!
//! The image lives in memory. What survives a restart is the last snapshot (in redb, next to
//! the log) plus the committed log after it, which openraft re-applies on start.

use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError};
use redb::{Database, Durability, TableDefinition};
use tokio::sync::watch;

use crate::database::RaftDatabase;

use crate::image::{decode_batch, encode_batch, MetadataDelta, MetadataImage, Provenance};
use crate::raft_types::{
    ApplyOutcome, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_snapshot");
const SNAPSHOT_META_KEY: &str = "meta";
const SNAPSHOT_DATA_KEY: &str = "data";
/// Largest snapshot accepted from a peer or read back from disk.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;
/// Most records in one snapshot; the byte bound applies too.
pub const SNAPSHOT_RECORDS_MAX: usize = 10_000_000;

use crate::store_error::StoreError as IoError;

/// The applied state: the image (which carries the last applied log position) and membership.
pub struct StateMachine {
    db: Arc<RaftDatabase>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<MetadataImage>,
    publisher: watch::Sender<Arc<MetadataImage>>,
}

impl StateMachine {
    /// Opens the state machine at the last stored snapshot, or empty.
    pub fn open(
        db: Arc<RaftDatabase>,
        publisher: watch::Sender<Arc<MetadataImage>>,
    ) -> Result<StateMachine, IoError> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate);
        txn.open_table(SNAPSHOT_TABLE)?;
        txn.commit()?;
        let mut machine = StateMachine {
            db,
            last_applied: None,
            membership: StoredMembership::default(),
            image: Arc::new(MetadataImage::empty()),
            publisher,
        };
        if let Some((meta, data)) = read_snapshot(&machine.db)? {
            machine.restore(&meta, &data)?;
        }
        machine.publisher.send_replace(machine.image.clone());
        Ok(machine)
    }

    fn restore(&mut self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), IoError> {
        let records = decode_batch(data, SNAPSHOT_RECORDS_MAX)?;
        let image = MetadataImage::from_records(&records, provenance(meta.last_log_id))?;
        self.image = Arc::new(image);
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    /// Applies one entry: a batch of records all or nothing, a membership, or a blank.
    fn apply_entry(&mut self, entry: &Entry) -> ApplyOutcome {
        let mut delta = MetadataDelta::new(self.image.clone());
        let mut outcome = ApplyOutcome::Applied;
        match &entry.payload {
            EntryPayload::Blank => {}
            EntryPayload::Membership(membership) => {
                self.membership = StoredMembership::new(Some(entry.log_id), membership.clone());
            }
            EntryPayload::Normal(batch) => {
                for record in &batch.0 {
                    if let Err(error) = delta.replay(record) {
                        tracing::warn!(index = entry.log_id.index, %error, "batch rejected");
                        outcome = ApplyOutcome::Rejected {
                            reason: error.to_string(),
                        };
                        delta = MetadataDelta::new(self.image.clone());
                        break;
                    }
                }
            }
        }
        delta.set_provenance(provenance(Some(entry.log_id)));
        self.image = Arc::new(delta.apply());
        self.last_applied = Some(entry.log_id);
        outcome
    }
}

fn provenance(log_id: Option<LogId>) -> Provenance {
    log_id.map_or(Provenance::default(), |log_id| Provenance {
        last_applied_index: log_id.index,
        last_applied_term: log_id.leader_id.term,
    })
}

fn read_snapshot(db: &Database) -> Result<Option<(SnapshotMeta, Vec<u8>)>, IoError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(SNAPSHOT_TABLE)?;
    let (Some(meta), Some(data)) = (table.get(SNAPSHOT_META_KEY)?, table.get(SNAPSHOT_DATA_KEY)?)
    else {
        return Ok(None);
    };
    if data.value().len() > SNAPSHOT_BYTES_MAX {
        return Err(IoError::Invalid(format!(
            "stored snapshot is over {SNAPSHOT_BYTES_MAX} bytes"
        )));
    }
    let meta: SnapshotMeta = postcard::from_bytes(meta.value())?;
    Ok(Some((meta, data.value().to_vec())))
}

/// Stores a snapshot durably; meta and data commit together.
fn write_snapshot(db: &Database, meta: &SnapshotMeta, data: &[u8]) -> Result<(), IoError> {
    let meta_bytes = postcard::to_stdvec(meta)?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate);
    {
        let mut table = txn.open_table(SNAPSHOT_TABLE)?;
        table.insert(SNAPSHOT_META_KEY, meta_bytes.as_slice())?;
        table.insert(SNAPSHOT_DATA_KEY, data)?;
    }
    txn.commit()?;
    Ok(())
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IoError> + Send + 'static,
) -> Result<T, IoError> {
    tokio::task::spawn_blocking(work).await?
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let outcomes: Vec<ApplyOutcome> = entries
            .into_iter()
            .map(|entry| self.apply_entry(&entry))
            .collect();
        // One publication per batch of entries: subscribers see whole batches, in order.
        self.publisher.send_replace(self.image.clone());
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            image: self.image.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let signature = Some(meta.signature());
        if data.len() > SNAPSHOT_BYTES_MAX {
            let error = std::io::Error::other("snapshot too large");
            return Err(StorageIOError::read_snapshot(signature, &error).into());
        }
        // Decode (and so validate) before anything is stored or replaced.
        self.restore(meta, &data)
            .map_err(|e| StorageIOError::read_snapshot(signature.clone(), &e))?;
        let db = self.db.clone();
        let meta_owned = meta.clone();
        blocking(move || write_snapshot(&db, &meta_owned, &data))
            .await
            .map_err(|e| StorageIOError::write_snapshot(signature, &e))?;
        self.publisher.send_replace(self.image.clone());
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let db = self.db.clone();
        let stored = blocking(move || read_snapshot(&db))
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}

/// Builds a snapshot from the image as it was when the builder was taken.
pub struct SnapshotBuilder {
    db: Arc<RaftDatabase>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    image: Arc<MetadataImage>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let data = encode_batch(&self.image.to_records());
        let snapshot_id = match self.last_applied {
            Some(log_id) => format!("{}-{}", log_id.leader_id.term, log_id.index),
            None => "empty".to_string(),
        };
        let meta = SnapshotMeta {
            last_log_id: self.last_applied,
            last_membership: self.membership.clone(),
            snapshot_id,
        };
        let db = self.db.clone();
        let (meta_owned, data_owned) = (meta.clone(), data.clone());
        blocking(move || write_snapshot(&db, &meta_owned, &data_owned))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}
