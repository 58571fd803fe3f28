//! Scanning a segment file batch by batch: used to recover unflushed segments after a crash
//! (CRC checked) and to rebuild damaged indexes (headers only).

use std::fs::File;
use std::io::{self, BufReader, Read};

use crate::batch::{BatchHeader, BATCH_HEADER_BYTES, CRC_COVERED_FROM};
use crate::offset_index::OffsetIndex;
use crate::segment::{IndexTracker, Segment, RELATIVE_OFFSET_MAX, SEGMENT_BYTES_LIMIT};
use crate::time_index::TimeIndex;

/// Sequential read buffer of a scan.
const SCAN_READ_BUFFER_BYTES: usize = 1 << 20;
/// Chunk in which batch bodies are fed to the CRC, so a scan allocates a fixed amount
/// whatever the batch sizes are.
const SCAN_CHUNK_BYTES: usize = 64 * 1024;

/// Where and why a scan stopped before the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanDamage {
    TornBatch,
    BadHeader,
    OffsetNotConsecutive,
    BadCounts,
    CrcMismatch,
    SegmentTooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanOutcome {
    /// Bytes of the leading run of good batches.
    pub valid_bytes: u64,
    pub file_bytes: u64,
    /// Offset after the last good batch (the segment base if none).
    pub next_offset: i64,
    pub batch_count: u64,
    pub damage: Option<ScanDamage>,
}

/// Scans the segment from the start, rebuilding its in-memory indexes and maximum timestamp
/// for the good prefix. Does not modify the file.
pub fn scan_segment(
    segment: &Segment,
    interval_bytes: u32,
    verify_crc: bool,
) -> io::Result<ScanOutcome> {
    let file_bytes = segment.file_len()?;
    segment.replace_indexes(OffsetIndex::new(), TimeIndex::new());
    segment.set_max_timestamp(None);
    let mut tracker = IndexTracker::new(interval_bytes);
    let file = File::open(segment.log_path())?;
    let mut reader = BufReader::with_capacity(SCAN_READ_BUFFER_BYTES, file);
    let mut chunk = vec![0u8; SCAN_CHUNK_BYTES];
    let mut outcome = ScanOutcome {
        valid_bytes: 0,
        file_bytes,
        next_offset: segment.base_offset(),
        batch_count: 0,
        damage: None,
    };
    while outcome.valid_bytes < file_bytes {
        let expected = Expected {
            remaining_bytes: file_bytes - outcome.valid_bytes,
            position: outcome.valid_bytes,
            base_offset: outcome.next_offset,
            segment_base_offset: segment.base_offset(),
        };
        match scan_batch(&mut reader, &mut chunk, expected, verify_crc)? {
            Ok(header) => {
                segment.index_batch(&mut tracker, outcome.valid_bytes, &header);
                outcome.valid_bytes += header.size_bytes() as u64;
                outcome.next_offset = header.last_offset() + 1;
                outcome.batch_count += 1;
            }
            Err(damage) => {
                outcome.damage = Some(damage);
                break;
            }
        }
    }
    Ok(outcome)
}

struct Expected {
    remaining_bytes: u64,
    position: u64,
    base_offset: i64,
    segment_base_offset: i64,
}

fn scan_batch(
    reader: &mut BufReader<File>,
    chunk: &mut [u8],
    expected: Expected,
    verify_crc: bool,
) -> io::Result<Result<BatchHeader, ScanDamage>> {
    if expected.remaining_bytes < BATCH_HEADER_BYTES as u64 {
        return Ok(Err(ScanDamage::TornBatch));
    }
    let mut raw = [0u8; BATCH_HEADER_BYTES];
    if let Err(damage) = read_exact_or_torn(reader, &mut raw)? {
        return Ok(Err(damage));
    }
    let Ok(header) = BatchHeader::parse(&raw) else {
        return Ok(Err(ScanDamage::BadHeader));
    };
    let size = header.size_bytes() as u64;
    if size > expected.remaining_bytes {
        return Ok(Err(ScanDamage::TornBatch));
    }
    if expected.position + size > SEGMENT_BYTES_LIMIT
        || header.last_offset() - expected.segment_base_offset > RELATIVE_OFFSET_MAX
    {
        return Ok(Err(ScanDamage::SegmentTooLarge));
    }
    // Compaction leaves gaps between batches, never overlaps.
    if header.base_offset < expected.base_offset {
        return Ok(Err(ScanDamage::OffsetNotConsecutive));
    }
    if header.check_stored_counts().is_err() {
        return Ok(Err(ScanDamage::BadCounts));
    }
    let mut body_bytes = size - BATCH_HEADER_BYTES as u64;
    if !verify_crc {
        reader.seek_relative(body_bytes as i64)?;
        return Ok(Ok(header));
    }
    let mut crc = crc32c::crc32c(&raw[CRC_COVERED_FROM..]);
    while body_bytes > 0 {
        let take = body_bytes.min(chunk.len() as u64) as usize;
        if let Err(damage) = read_exact_or_torn(reader, &mut chunk[..take])? {
            return Ok(Err(damage));
        }
        crc = crc32c::crc32c_append(crc, &chunk[..take]);
        body_bytes -= take as u64;
    }
    if crc != header.crc {
        return Ok(Err(ScanDamage::CrcMismatch));
    }
    Ok(Ok(header))
}

/// A short read means the file shrank under us; treat it like a torn batch.
fn read_exact_or_torn(
    reader: &mut BufReader<File>,
    buffer: &mut [u8],
) -> io::Result<Result<(), ScanDamage>> {
    match reader.read_exact(buffer) {
        Ok(()) => Ok(Ok(())),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Ok(Err(ScanDamage::TornBatch))
        }
        Err(error) => Err(error),
    }
}
