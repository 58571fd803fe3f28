//! Durable committed offsets of consumer groups, in their own redb file.
//!
//! One row per (group, topic, partition). Writes go through a bounded queue to one writer
//! thread, which drains everything queued and applies it in a single write transaction (one
//! fsync): 10,000 groups committing at once cost a handful of fsyncs, not 10,000 in a row
//! (group commit). A submitter learns the outcome through its completion callback, called
//! after the transaction is durable (or failed). The store knows nothing of group membership;
//! the coordinator in the binary keeps the in-memory view and validates commits.
//!
//! Values use our own format: version byte, fixed fields, length-prefixed metadata, CRC-32C
//! trailer; every length is checked against a limit before use.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use redb::{Database, ReadableTable, TableDefinition};
use thiserror::Error;

const OFFSETS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("committed_offsets");
const FORMAT_VERSION: u8 = 1;
const CRC_BYTES: usize = 4;
/// version + offset + leader epoch + commit timestamp + metadata length.
const FIXED_VALUE_BYTES: usize = 1 + 8 + 4 + 8 + 4;

/// Longest group id or topic name stored (Kafka strings have an i16 length).
pub const NAME_BYTES_MAX: usize = i16::MAX as usize;
/// Longest commit metadata stored; the coordinator enforces Kafka's much smaller
/// `offset.metadata.max.bytes` before anything reaches the store.
pub const METADATA_BYTES_MAX: usize = 1 << 20;
/// Submissions waiting for the writer; beyond this `submit` answers `Busy` at once.
pub const QUEUE_DEPTH_MAX: usize = 16 * 1024;
/// Writes applied in one transaction at most, so one transaction stays bounded in time.
pub const WRITES_PER_TRANSACTION_MAX: usize = 64 * 1024;

/// Which committed offset: a group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed position with what the client sent along.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// One change submitted to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetWrite {
    Commit(OffsetKey, CommittedOffset),
    DeleteOffset(OffsetKey),
    /// Every offset of the group.
    DeleteGroup(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OffsetStoreError {
    /// redb failed; the message is kept as text so that every waiter of a batch gets a copy.
    #[error("offset database: {0}")]
    Database(String),
    #[error("damaged committed offset record: {0}")]
    Damaged(&'static str),
    #[error("invalid offset write: {0}")]
    Invalid(&'static str),
    #[error("the offset writer queue is full")]
    Busy,
    #[error("the offset store is closed")]
    Closed,
}

fn db<E: Into<redb::Error>>(error: E) -> OffsetStoreError {
    OffsetStoreError::Database(error.into().to_string())
}

/// Called once the submission is durable (`Ok`) or failed.
pub type Completion = Box<dyn FnOnce(Result<(), OffsetStoreError>) + Send>;

struct Job {
    writes: Vec<OffsetWrite>,
    done: Completion,
}

pub struct OffsetStore {
    database: Arc<Database>,
    queue: Mutex<Option<SyncSender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    transactions: Arc<AtomicU64>,
}

impl OffsetStore {
    /// Opens (or creates) the database file and starts the writer thread.
    pub fn open(path: &Path) -> Result<OffsetStore, OffsetStoreError> {
        let database = Database::create(path).map_err(db)?;
        let transaction = database.begin_write().map_err(db)?;
        transaction.open_table(OFFSETS).map_err(db)?;
        transaction.commit().map_err(db)?;
        let database = Arc::new(database);
        let transactions = Arc::new(AtomicU64::new(0));
        let (sender, receiver) = sync_channel(QUEUE_DEPTH_MAX);
        let writer = {
            let database = database.clone();
            let transactions = transactions.clone();
            std::thread::Builder::new()
                .name("sluice-offsets".into())
                .spawn(move || run_writer(&database, &receiver, &transactions))
                .map_err(|e| OffsetStoreError::Database(format!("spawning the writer: {e}")))?
        };
        Ok(OffsetStore {
            database,
            queue: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            transactions,
        })
    }

    /// Every stored offset, in key order (group, topic, partition).
    pub fn load_all(&self) -> Result<Vec<(OffsetKey, CommittedOffset)>, OffsetStoreError> {
        let transaction = self.database.begin_read().map_err(db)?;
        let table = transaction.open_table(OFFSETS).map_err(db)?;
        let mut offsets = Vec::new();
        for entry in table.iter().map_err(db)? {
            let (key, value) = entry.map_err(db)?;
            offsets.push((decode_key(key.value())?, decode_value(value.value())?));
        }
        Ok(offsets)
    }

    /// Queues `writes` to be applied atomically, in submission order relative to other
    /// submissions; `done` runs on the writer thread once they are durable. Never blocks:
    /// a full queue is `Busy` (and `done` is not called).
    pub fn submit(
        &self,
        writes: Vec<OffsetWrite>,
        done: Completion,
    ) -> Result<(), OffsetStoreError> {
        for write in &writes {
            check_write(write)?;
        }
        let queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        let Some(sender) = queue.as_ref() else {
            return Err(OffsetStoreError::Closed);
        };
        match sender.try_send(Job { writes, done }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(OffsetStoreError::Busy),
            Err(TrySendError::Disconnected(_)) => Err(OffsetStoreError::Closed),
        }
    }

    /// Write transactions committed so far (each is one fsync).
    pub fn transactions_committed(&self) -> u64 {
        self.transactions.load(Ordering::Relaxed)
    }

    /// Applies everything queued, then stops the writer. Later submissions get `Closed`.
    pub fn close(&self) {
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            if writer.join().is_err() {
                tracing::error!("the offset writer thread panicked");
            }
        }
    }
}

impl Drop for OffsetStore {
    fn drop(&mut self) {
        self.close();
    }
}

fn check_write(write: &OffsetWrite) -> Result<(), OffsetStoreError> {
    let (group, topic) = match write {
        OffsetWrite::Commit(key, value) => {
            if value.metadata.len() > METADATA_BYTES_MAX {
                return Err(OffsetStoreError::Invalid("metadata too long"));
            }
            (key.group.as_str(), key.topic.as_str())
        }
        OffsetWrite::DeleteOffset(key) => (key.group.as_str(), key.topic.as_str()),
        OffsetWrite::DeleteGroup(group) => (group.as_str(), ""),
    };
    if group.len() > NAME_BYTES_MAX || topic.len() > NAME_BYTES_MAX {
        return Err(OffsetStoreError::Invalid("name too long"));
    }
    Ok(())
}

/// Takes the first job (blocking), then whatever else is queued, and commits them together.
fn run_writer(database: &Database, receiver: &Receiver<Job>, transactions: &AtomicU64) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        let mut write_count = jobs[0].writes.len();
        while write_count < WRITES_PER_TRANSACTION_MAX {
            match receiver.try_recv() {
                Ok(job) => {
                    write_count += job.writes.len();
                    jobs.push(job);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        let outcome = apply(database, &jobs);
        if outcome.is_ok() {
            transactions.fetch_add(1, Ordering::Relaxed);
        } else if let Err(error) = &outcome {
            tracing::error!(%error, jobs = jobs.len(), "committing offsets failed");
        }
        for job in jobs {
            (job.done)(outcome.clone());
        }
    }
}

fn apply(database: &Database, jobs: &[Job]) -> Result<(), OffsetStoreError> {
    let transaction = database.begin_write().map_err(db)?;
    {
        let mut table = transaction.open_table(OFFSETS).map_err(db)?;
        for write in jobs.iter().flat_map(|job| &job.writes) {
            match write {
                OffsetWrite::Commit(key, value) => {
                    let value = encode_value(value);
                    table
                        .insert(encode_key(key).as_slice(), value.as_slice())
                        .map_err(db)?;
                }
                OffsetWrite::DeleteOffset(key) => {
                    table.remove(encode_key(key).as_slice()).map_err(db)?;
                }
                OffsetWrite::DeleteGroup(group) => {
                    let prefix = group_prefix(group);
                    let mut doomed = Vec::new();
                    for entry in table.range(prefix.as_slice()..).map_err(db)? {
                        let (key, _) = entry.map_err(db)?;
                        if !key.value().starts_with(&prefix) {
                            break;
                        }
                        doomed.push(key.value().to_vec());
                    }
                    for key in doomed {
                        table.remove(key.as_slice()).map_err(db)?;
                    }
                }
            }
        }
    }
    transaction.commit().map_err(db)
}

/// `u16 length | group`: a prefix shared by exactly the keys of one group.
fn group_prefix(group: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + group.len());
    push_name(&mut out, group);
    out
}

fn push_name(out: &mut Vec<u8>, name: &str) {
    // check_write bounded names to NAME_BYTES_MAX, which fits a u16.
    let length = u16::try_from(name.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(name.as_bytes());
}

fn encode_key(key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.group.len() + key.topic.len());
    push_name(&mut out, &key.group);
    push_name(&mut out, &key.topic);
    out.extend_from_slice(&key.partition.to_be_bytes());
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], OffsetStoreError> {
        if self.bytes.len() < count {
            return Err(OffsetStoreError::Damaged("truncated"));
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], OffsetStoreError> {
        let bytes = self.take(N)?;
        bytes
            .try_into()
            .map_err(|_| OffsetStoreError::Damaged("truncated"))
    }

    fn string(&mut self, length: usize, max: usize) -> Result<String, OffsetStoreError> {
        if length > max {
            return Err(OffsetStoreError::Damaged("length above its limit"));
        }
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| OffsetStoreError::Damaged("invalid UTF-8"))
    }

    fn name(&mut self) -> Result<String, OffsetStoreError> {
        let length = usize::from(u16::from_be_bytes(self.array()?));
        self.string(length, NAME_BYTES_MAX)
    }
}

fn decode_key(bytes: &[u8]) -> Result<OffsetKey, OffsetStoreError> {
    let mut reader = Reader { bytes };
    let group = reader.name()?;
    let topic = reader.name()?;
    let partition = i32::from_be_bytes(reader.array()?);
    if !reader.bytes.is_empty() {
        return Err(OffsetStoreError::Damaged("trailing key bytes"));
    }
    Ok(OffsetKey {
        group,
        topic,
        partition,
    })
}

fn encode_value(value: &CommittedOffset) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_VALUE_BYTES + value.metadata.len() + CRC_BYTES);
    out.push(FORMAT_VERSION);
    out.extend_from_slice(&value.offset.to_be_bytes());
    out.extend_from_slice(&value.leader_epoch.to_be_bytes());
    out.extend_from_slice(&value.commit_timestamp_ms.to_be_bytes());
    // check_write bounded the metadata to METADATA_BYTES_MAX, which fits a u32.
    let length = u32::try_from(value.metadata.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(value.metadata.as_bytes());
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn decode_value(bytes: &[u8]) -> Result<CommittedOffset, OffsetStoreError> {
    if bytes.len() < FIXED_VALUE_BYTES + CRC_BYTES {
        return Err(OffsetStoreError::Damaged("truncated"));
    }
    let (body, crc) = bytes.split_at(bytes.len() - CRC_BYTES);
    let stored_crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored_crc {
        return Err(OffsetStoreError::Damaged("checksum mismatch"));
    }
    let mut reader = Reader { bytes: body };
    let [version] = reader.array()?;
    if version != FORMAT_VERSION {
        return Err(OffsetStoreError::Damaged("unknown format version"));
    }
    let offset = i64::from_be_bytes(reader.array()?);
    let leader_epoch = i32::from_be_bytes(reader.array()?);
    let commit_timestamp_ms = i64::from_be_bytes(reader.array()?);
    let length = u32::from_be_bytes(reader.array()?);
    let length = usize::try_from(length).unwrap_or(usize::MAX);
    let metadata = reader.string(length, METADATA_BYTES_MAX)?;
    if !reader.bytes.is_empty() {
        return Err(OffsetStoreError::Damaged("trailing value bytes"));
    }
    Ok(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    fn key(group: &str, topic: &str, partition: i32) -> OffsetKey {
        OffsetKey {
            group: group.into(),
            topic: topic.into(),
            partition,
        }
    }

    fn value(offset: i64, metadata: &str) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: 3,
            metadata: metadata.into(),
            commit_timestamp_ms: 1_700_000_000_000 + offset,
        }
    }

    /// Submits and waits for durability.
    fn write(store: &OffsetStore, writes: Vec<OffsetWrite>) {
        let (sender, receiver) = channel();
        store
            .submit(
                writes,
                Box::new(move |outcome| sender.send(outcome).unwrap()),
            )
            .unwrap();
        receiver.recv().unwrap().unwrap();
    }

    #[test]
    fn commits_survive_reopen_and_deletes_apply() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offsets.redb");
        {
            let store = OffsetStore::open(&path).unwrap();
            write(
                &store,
                vec![
                    OffsetWrite::Commit(key("g1", "t", 0), value(10, "meta")),
                    OffsetWrite::Commit(key("g1", "t", 1), value(11, "")),
                    OffsetWrite::Commit(key("g10", "t", 0), value(12, "x")),
                    OffsetWrite::Commit(key("g2", "u", 5), value(13, "y")),
                ],
            );
            write(
                &store,
                vec![
                    OffsetWrite::Commit(key("g1", "t", 0), value(20, "newer")),
                    OffsetWrite::DeleteOffset(key("g2", "u", 5)),
                ],
            );
            store.close();
        }
        let store = OffsetStore::open(&path).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(
            loaded,
            vec![
                (key("g1", "t", 0), value(20, "newer")),
                (key("g1", "t", 1), value(11, "")),
                (key("g10", "t", 0), value(12, "x")),
            ]
        );
        // Deleting g1 must not touch g10, whose name starts with "g1".
        write(&store, vec![OffsetWrite::DeleteGroup("g1".into())]);
        assert_eq!(
            store.load_all().unwrap(),
            vec![(key("g10", "t", 0), value(12, "x"))]
        );
    }

    #[test]
    fn concurrent_submissions_share_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(OffsetStore::open(&dir.path().join("o.redb")).unwrap());
        let submissions = 2000;
        let (sender, receiver) = channel();
        for index in 0..submissions {
            let sender = sender.clone();
            let group = format!("group-{index}");
            let writes = vec![OffsetWrite::Commit(key(&group, "t", 0), value(index, ""))];
            store
                .submit(
                    writes,
                    Box::new(move |outcome| sender.send(outcome).unwrap()),
                )
                .unwrap();
        }
        for _ in 0..submissions {
            receiver.recv().unwrap().unwrap();
        }
        let transactions = store.transactions_committed();
        assert!(transactions >= 1);
        assert!(
            transactions < submissions as u64 / 4,
            "{transactions} transactions for {submissions} submissions"
        );
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), submissions as usize);
        for (stored_key, stored) in loaded {
            let index: i64 = stored_key.group["group-".len()..].parse().unwrap();
            assert_eq!(stored, value(index, ""));
        }
    }

    #[test]
    fn damaged_values_and_bad_writes_are_errors() {
        let mut bytes = encode_value(&value(1, "meta"));
        assert_eq!(decode_value(&bytes), Ok(value(1, "meta")));
        bytes[3] ^= 1;
        assert_eq!(
            decode_value(&bytes),
            Err(OffsetStoreError::Damaged("checksum mismatch"))
        );
        assert!(decode_value(&bytes[..5]).is_err());
        assert!(decode_key(&[0, 200, b'a']).is_err());
        let encoded = encode_key(&key("g", "t", 7));
        assert_eq!(decode_key(&encoded), Ok(key("g", "t", 7)));

        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(&dir.path().join("o.redb")).unwrap();
        let huge = "x".repeat(NAME_BYTES_MAX + 1);
        let refused = store.submit(
            vec![OffsetWrite::DeleteGroup(huge)],
            Box::new(|_| panic!("not called")),
        );
        assert_eq!(refused, Err(OffsetStoreError::Invalid("name too long")));
        store.close();
        let closed = store.submit(Vec::new(), Box::new(|_| panic!("not called")));
        assert_eq!(closed, Err(OffsetStoreError::Closed));
    }
}
