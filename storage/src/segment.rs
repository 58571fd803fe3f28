//! One log segment: a `.log` file of record batches plus its offset and time indexes.
//!
//! Readers use positional reads only (`read_at`) against a byte limit they snapshotted, so they
//! never need the writer's lock and never see bytes past the committed end. The in-memory
//! indexes sit behind short `RwLock`s held only for a binary search or a push, never for I/O.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use bytes::Bytes;

use crate::batch::{
    batch_size_from_prefix, BatchHeader, BATCH_HEADER_BYTES, BATCH_LOG_OVERHEAD_BYTES, NO_TIMESTAMP,
};
use crate::fs_util::{
    segment_file_path, LOG_EXTENSION, OFFSET_INDEX_EXTENSION, TIME_INDEX_EXTENSION,
};
use crate::lock::{lock, read, write};
use crate::offset_index::{OffsetIndex, OffsetIndexEntry};
use crate::time_index::{TimeIndex, TimeIndexEntry};
use crate::txn_index::{self, TxnIndexEntry, TXN_INDEX_ENTRY_BYTES, TXN_INDEX_EXTENSION};

/// Positions are stored as u32 in the offset index, so a segment never grows past this.
pub const SEGMENT_BYTES_LIMIT: u64 = i32::MAX as u64;
/// Relative offsets are stored as u32 in both indexes.
pub const RELATIVE_OFFSET_MAX: i64 = u32::MAX as i64;

/// A timestamp and the base offset of the batch carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp_ms: i64,
    pub offset: i64,
}

/// Decides when a batch gets index entries: once `interval_bytes` were appended since the
/// previous entry (Kafka's `index.interval.bytes`).
#[derive(Debug, Clone, Copy)]
pub struct IndexTracker {
    pub interval_bytes: u32,
    pub bytes_since_entry: u64,
}

impl IndexTracker {
    pub fn new(interval_bytes: u32) -> IndexTracker {
        IndexTracker {
            interval_bytes,
            bytes_since_entry: 0,
        }
    }
}

/// Entries that `Segment::index_batch` added, for the caller to persist.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexUpdate {
    pub offset_entry: Option<OffsetIndexEntry>,
    pub time_entry: Option<TimeIndexEntry>,
}

/// Result of walking batch headers to the end of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TailWalk {
    pub end_position: u64,
    pub next_offset: i64,
}

pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: File,
    /// Bytes of complete batches; only the writer moves it.
    size_bytes: AtomicU64,
    offset_index: RwLock<OffsetIndex>,
    time_index: RwLock<TimeIndex>,
    max_timestamp: Mutex<Option<TimestampOffset>>,
    /// Transactions aborted by markers in this segment (`.txnindex`), in marker order.
    aborted_txns: RwLock<Vec<TxnIndexEntry>>,
}

fn invalid_data(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl Segment {
    /// Creates an empty segment (an existing file of that name is emptied).
    pub fn create(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = segment_file_path(dir, base_offset, LOG_EXTENSION);
        // A leftover index of an earlier segment at this base describes none of its batches.
        crate::fs_util::remove_file_if_exists(&log_path.with_extension(TXN_INDEX_EXTENSION))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)?;
        Ok(Segment::new(base_offset, log_path, file, 0))
    }

    /// Opens an existing segment file; `size_bytes` starts at the file length and indexes
    /// start empty (the loader fills both).
    pub fn open(dir: &Path, base_offset: i64) -> io::Result<Segment> {
        let log_path = segment_file_path(dir, base_offset, LOG_EXTENSION);
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let length = file.metadata()?.len();
        let segment = Segment::new(base_offset, log_path, file, length);
        // An abort marker takes at least a batch header, so a longer index is damaged.
        let bytes_max = (length / BATCH_HEADER_BYTES as u64 + 1) * TXN_INDEX_ENTRY_BYTES as u64;
        let entries = txn_index::read_entries(&segment.txn_index_path(), bytes_max)?;
        *write(&segment.aborted_txns) = entries;
        Ok(segment)
    }

    fn new(base_offset: i64, log_path: PathBuf, file: File, size_bytes: u64) -> Segment {
        Segment {
            base_offset,
            log_path,
            file,
            size_bytes: AtomicU64::new(size_bytes),
            offset_index: RwLock::new(OffsetIndex::new()),
            time_index: RwLock::new(TimeIndex::new()),
            max_timestamp: Mutex::new(None),
            aborted_txns: RwLock::new(Vec::new()),
        }
    }

    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn offset_index_path(&self) -> PathBuf {
        self.log_path.with_extension(OFFSET_INDEX_EXTENSION)
    }

    pub fn time_index_path(&self) -> PathBuf {
        self.log_path.with_extension(TIME_INDEX_EXTENSION)
    }

    pub fn txn_index_path(&self) -> PathBuf {
        self.log_path.with_extension(TXN_INDEX_EXTENSION)
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    /// The transactions aborted in this segment, in marker order.
    pub fn aborted_txns(&self) -> Vec<TxnIndexEntry> {
        read(&self.aborted_txns).clone()
    }

    /// Records (durably) a transaction aborted by a marker just written to this segment.
    /// Only the log's writer calls this (and the replace below), so the file and the list
    /// change in the same order; readers never wait for the file I/O.
    pub(crate) fn push_aborted_txn(&self, entry: TxnIndexEntry) -> io::Result<()> {
        txn_index::append_entry(&self.txn_index_path(), &entry)?;
        write(&self.aborted_txns).push(entry);
        Ok(())
    }

    /// Keeps the entries whose marker lies below `offset` and appends `replayed` (rebuilt
    /// from the log from `offset` on); rewrites the file only if that changes anything.
    pub(crate) fn replace_aborted_txns_from(
        &self,
        offset: i64,
        replayed: &[TxnIndexEntry],
    ) -> io::Result<()> {
        let current = self.aborted_txns();
        let mut rebuilt: Vec<TxnIndexEntry> = current
            .iter()
            .filter(|entry| entry.last_offset < offset)
            .copied()
            .collect();
        rebuilt.extend_from_slice(replayed);
        if rebuilt != current {
            txn_index::rewrite(&self.txn_index_path(), &rebuilt)?;
            *write(&self.aborted_txns) = rebuilt;
        }
        Ok(())
    }

    pub(crate) fn set_size_bytes(&self, size_bytes: u64) {
        self.size_bytes.store(size_bytes, Ordering::Release);
    }

    pub fn file_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn relative_offset(&self, offset: i64) -> u32 {
        let relative = offset - self.base_offset;
        assert!((0..=RELATIVE_OFFSET_MAX).contains(&relative));
        relative as u32
    }

    pub fn offset_index(&self) -> OffsetIndex {
        read(&self.offset_index).clone()
    }

    pub fn time_index(&self) -> TimeIndex {
        read(&self.time_index).clone()
    }

    pub(crate) fn replace_indexes(&self, offset_index: OffsetIndex, time_index: TimeIndex) {
        *write(&self.offset_index) = offset_index;
        *write(&self.time_index) = time_index;
    }

    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        *lock(&self.max_timestamp)
    }

    pub(crate) fn set_max_timestamp(&self, max: Option<TimestampOffset>) {
        *lock(&self.max_timestamp) = max;
    }

    /// Largest timestamp for retention: the batches' maximum, or the file's modification time
    /// when no batch carries a timestamp (as Kafka does).
    pub fn largest_timestamp_ms(&self) -> io::Result<i64> {
        if let Some(max) = self.max_timestamp() {
            return Ok(max.timestamp_ms);
        }
        let modified = self.file.metadata()?.modified()?;
        let since_epoch = modified
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX))
    }

    /// Writes `bytes` at `position` (the writer's end of file).
    pub fn write_at(&self, bytes: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(bytes, position)
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Cuts the file and the in-memory indexes at `position` (a batch boundary).
    pub(crate) fn truncate_to_position(&self, position: u64) -> io::Result<()> {
        self.file.set_len(position)?;
        self.set_size_bytes(position);
        write(&self.offset_index).truncate_to_position(position);
        Ok(())
    }

    /// Drops time index entries naming batches at or after `cut_offset`.
    pub(crate) fn truncate_time_index(&self, cut_offset: i64) {
        let relative = self.relative_offset(cut_offset);
        write(&self.time_index).truncate_to_offset(relative);
    }

    /// Records a batch just written (or scanned) at `position`: updates the running maximum
    /// timestamp and adds index entries when the interval is reached.
    pub fn index_batch(
        &self,
        tracker: &mut IndexTracker,
        position: u64,
        header: &BatchHeader,
    ) -> IndexUpdate {
        let max = {
            let mut max = lock(&self.max_timestamp);
            if header.max_timestamp > max.map_or(NO_TIMESTAMP, |max| max.timestamp_ms) {
                *max = Some(TimestampOffset {
                    timestamp_ms: header.max_timestamp,
                    offset: header.base_offset,
                });
            }
            *max
        };
        let mut update = IndexUpdate::default();
        if tracker.bytes_since_entry >= u64::from(tracker.interval_bytes) {
            assert!(position <= SEGMENT_BYTES_LIMIT);
            let entry = OffsetIndexEntry {
                relative_offset: self.relative_offset(header.base_offset),
                position: position as u32,
            };
            write(&self.offset_index).push(entry);
            update.offset_entry = Some(entry);
            if let Some(max) = max {
                update.time_entry = self.push_time_entry(max);
            }
            tracker.bytes_since_entry = 0;
        }
        tracker.bytes_since_entry += header.size_bytes() as u64;
        update
    }

    /// Appends the segment's maximum timestamp to the time index if it is not there yet;
    /// done when the segment stops being active so the last entry is the segment maximum.
    pub fn finish_time_index(&self) -> Option<TimeIndexEntry> {
        self.max_timestamp()
            .and_then(|max| self.push_time_entry(max))
    }

    fn push_time_entry(&self, max: TimestampOffset) -> Option<TimeIndexEntry> {
        let entry = TimeIndexEntry {
            timestamp_ms: max.timestamp_ms,
            relative_offset: self.relative_offset(max.offset),
        };
        write(&self.time_index).maybe_push(entry).then_some(entry)
    }

    /// Reads and parses the 61-byte header at `position`, which must lie below `end`.
    pub fn read_header_at(&self, position: u64, end: u64) -> io::Result<BatchHeader> {
        if position + BATCH_HEADER_BYTES as u64 > end {
            return Err(invalid_data("batch header past the segment end"));
        }
        let mut raw = [0u8; BATCH_HEADER_BYTES];
        self.file.read_exact_at(&mut raw, position)?;
        let header = BatchHeader::parse(&raw).map_err(|_| invalid_data("bad batch header"))?;
        if position + header.size_bytes() as u64 > end {
            return Err(invalid_data("batch past the segment end"));
        }
        Ok(header)
    }

    /// Position of the batch containing `target` (or the first batch after it), using the
    /// offset index and then a forward scan of headers below `end`. `None` if the segment
    /// holds no batch whose last offset is >= target.
    pub fn translate_offset(&self, target: i64, end: u64) -> io::Result<Option<u64>> {
        let relative = (target - self.base_offset).clamp(0, RELATIVE_OFFSET_MAX) as u32;
        let start = read(&self.offset_index)
            .lookup(relative)
            .map_or(0, |entry| u64::from(entry.position));
        let mut position = start.min(end);
        while position < end {
            let header = self.read_header_at(position, end)?;
            if header.last_offset() >= target {
                return Ok(Some(position));
            }
            position += header.size_bytes() as u64;
        }
        Ok(None)
    }

    /// Whole batches from `position`, at most `max_bytes` of them unless `min_one_batch` and
    /// the first batch alone is larger. One buffer is allocated; records are not touched.
    pub fn read_batches(
        &self,
        position: u64,
        end: u64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> io::Result<Bytes> {
        let first_size = self.read_header_at(position, end)?.size_bytes();
        let available = usize::try_from(end - position).unwrap_or(usize::MAX);
        let want = if first_size > max_bytes {
            if !min_one_batch {
                return Ok(Bytes::new());
            }
            first_size
        } else {
            max_bytes.min(available)
        };
        let mut buffer = vec![0u8; want];
        self.file.read_exact_at(&mut buffer, position)?;
        let keep = whole_batches_prefix(&buffer);
        assert!(keep >= first_size);
        buffer.truncate(keep);
        Ok(Bytes::from(buffer))
    }

    /// The whole batch at `position`.
    pub fn read_batch(&self, position: u64, end: u64) -> io::Result<Bytes> {
        let size = self.read_header_at(position, end)?.size_bytes();
        let mut buffer = vec![0u8; size];
        self.file.read_exact_at(&mut buffer, position)?;
        Ok(Bytes::from(buffer))
    }

    /// First batch (ending at or after `offset_min`) whose `maxTimestamp >= target_ms`. The
    /// time index gives the last batch known to be older; the scan starts there.
    pub fn find_batch_by_timestamp(
        &self,
        target_ms: i64,
        offset_min: i64,
        end: u64,
    ) -> io::Result<Option<Bytes>> {
        let older = read(&self.time_index).lookup_last_before(target_ms);
        let mut position = match older {
            Some(entry) => {
                let offset = self.base_offset + i64::from(entry.relative_offset);
                self.translate_offset(offset.max(offset_min), end)?
            }
            None => self.translate_offset(offset_min.max(self.base_offset), end)?,
        };
        while let Some(at) = position.filter(|at| *at < end) {
            let header = self.read_header_at(at, end)?;
            if header.max_timestamp >= target_ms && header.last_offset() >= offset_min {
                return self.read_batch(at, end).map(Some);
            }
            position = Some(at + header.size_bytes() as u64);
        }
        Ok(None)
    }

    /// Walks headers from `position` (where the batch with base `next_offset` starts) to
    /// `end`, updating the maximum timestamp. Returns `None` if the walk does not land exactly
    /// on `end` with increasing offsets (the caller then recovers the segment by a full scan).
    pub fn walk_tail(
        &self,
        mut position: u64,
        mut next_offset: i64,
        end: u64,
    ) -> io::Result<Option<TailWalk>> {
        while position < end {
            let header = match self.read_header_at(position, end) {
                Ok(header) => header,
                Err(error) if error.kind() == io::ErrorKind::InvalidData => return Ok(None),
                Err(error) => return Err(error),
            };
            // Compaction leaves gaps between batches, never overlaps.
            if header.base_offset < next_offset || header.check_stored_counts().is_err() {
                return Ok(None);
            }
            let mut max = lock(&self.max_timestamp);
            if header.max_timestamp > max.map_or(NO_TIMESTAMP, |max| max.timestamp_ms) {
                *max = Some(TimestampOffset {
                    timestamp_ms: header.max_timestamp,
                    offset: header.base_offset,
                });
            }
            drop(max);
            next_offset = header.last_offset() + 1;
            position += header.size_bytes() as u64;
        }
        Ok(Some(TailWalk {
            end_position: position,
            next_offset,
        }))
    }
}

/// Length of the longest prefix of `bytes` made of whole batches.
pub fn whole_batches_prefix(bytes: &[u8]) -> usize {
    let mut position = 0;
    while bytes.len() - position >= BATCH_LOG_OVERHEAD_BYTES {
        match batch_size_from_prefix(&bytes[position..]) {
            Some(size) if size <= bytes.len() - position => position += size,
            _ => break,
        }
    }
    position
}
