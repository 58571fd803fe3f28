//! The writer's handle on the active (last) segment: appends batches, keeps index files in
//! step with the in-memory indexes, and finishes the segment when it is rolled or closed.

use std::io;
use std::sync::Arc;

use crate::batch::{BatchIter, BATCH_HEADER_BYTES};
use crate::index_file::{IndexFile, INDEX_WRITE_BUFFER_BYTES};
use crate::segment::{IndexTracker, Segment, TailWalk};

pub(crate) struct ActiveSegment {
    pub segment: Arc<Segment>,
    offset_index_file: IndexFile,
    time_index_file: IndexFile,
    tracker: IndexTracker,
    /// Start of the `segment.ms` clock: wall time of the first append, or for a reopened
    /// segment its first batch's timestamp (so restarts do not reset the clock).
    pub rolling_base_ms: Option<i64>,
}

impl ActiveSegment {
    /// Makes `segment` the active one; its index files are made to match the in-memory
    /// indexes exactly.
    pub fn open(
        segment: Arc<Segment>,
        interval_bytes: u32,
        now_ms: i64,
    ) -> io::Result<ActiveSegment> {
        let offset_index_file = IndexFile::open(
            &segment.offset_index_path(),
            &segment.offset_index().encode(),
        )?;
        let time_index_file =
            IndexFile::open(&segment.time_index_path(), &segment.time_index().encode())?;
        let size = segment.size_bytes();
        // An unreadable first header only costs the time-based roll its memory.
        let rolling_base_ms = if size >= BATCH_HEADER_BYTES as u64 {
            let header = segment.read_header_at(0, size).ok();
            header.map(|header| header.max_timestamp.clamp(0, now_ms.max(0)))
        } else {
            None
        };
        Ok(ActiveSegment {
            segment,
            offset_index_file,
            time_index_file,
            tracker: IndexTracker::new(interval_bytes),
            rolling_base_ms,
        })
    }

    pub fn set_index_interval_bytes(&mut self, interval_bytes: u32) {
        self.tracker.interval_bytes = interval_bytes;
    }

    /// Writes already stamped and validated batches at the segment end and indexes them.
    /// On a write error the file is cut back, so the segment is unchanged.
    pub fn append(&mut self, batches: &[u8], now_ms: i64) -> io::Result<u64> {
        let position = self.segment.size_bytes();
        if let Err(error) = self.segment.write_at(batches, position) {
            if let Err(cut_error) = self.segment.truncate_to_position(position) {
                tracing::warn!(path = %self.segment.log_path().display(), %cut_error, "cannot cut back a failed append");
            }
            return Err(error);
        }
        for (at, header) in BatchIter::new(batches).flatten() {
            let update = self
                .segment
                .index_batch(&mut self.tracker, position + at as u64, &header);
            if let Some(entry) = update.offset_entry {
                self.offset_index_file.push(&entry.encode());
            }
            if let Some(entry) = update.time_entry {
                self.time_index_file.push(&entry.encode());
            }
        }
        self.rolling_base_ms.get_or_insert(now_ms);
        self.write_pending_index_bytes();
        let end = position + batches.len() as u64;
        self.segment.set_size_bytes(end);
        Ok(end)
    }

    /// Index files are rebuildable, so a failed index write must not fail an append whose
    /// data is written: the bytes stay pending and are retried later.
    fn write_pending_index_bytes(&mut self) {
        for file in [&mut self.offset_index_file, &mut self.time_index_file] {
            if file.pending_bytes() >= INDEX_WRITE_BUFFER_BYTES {
                if let Err(error) = file.write_pending() {
                    tracing::warn!(path = %file.path().display(), %error, "index write failed; will retry");
                }
            }
        }
    }

    /// fsyncs index files and the segment.
    pub fn sync(&mut self) -> io::Result<()> {
        self.offset_index_file.sync()?;
        self.time_index_file.sync()?;
        self.segment.sync()
    }

    /// Called when the segment stops being active (roll, close): appends the final time index
    /// entry and makes everything durable.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(entry) = self.segment.finish_time_index() {
            self.time_index_file.push(&entry.encode());
        }
        self.sync()
    }

    /// Recomputes the segment's tail state after it was cut: max timestamp from the time index
    /// plus the batches after the last offset index entry.
    pub fn walk_tail(segment: &Segment) -> io::Result<Option<TailWalk>> {
        let end = segment.size_bytes();
        let max = segment
            .time_index()
            .last()
            .map(|entry| crate::segment::TimestampOffset {
                timestamp_ms: entry.timestamp_ms,
                offset: segment.base_offset() + i64::from(entry.relative_offset),
            });
        segment.set_max_timestamp(max);
        let (position, offset) = match segment.offset_index().last() {
            Some(entry) => (
                u64::from(entry.position),
                segment.base_offset() + i64::from(entry.relative_offset),
            ),
            None => (0, segment.base_offset()),
        };
        if position >= end {
            return Ok(
                (position == end && offset == segment.base_offset()).then_some(TailWalk {
                    end_position: end,
                    next_offset: offset,
                }),
            );
        }
        segment.walk_tail(position, offset, end)
    }
}
