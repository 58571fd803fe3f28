//! The records inside a v2 batch (uncompressed form): parsing and encoding, for the cleaner.
//!
//! A record is `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! key (varint length, -1 = null), value (same), headers (count varint, then key/value)`.
//! The cleaner needs the key, whether the value is null (a tombstone), the offset and the
//! timestamp; everything else (headers) is copied through untouched.

use thiserror::Error;

/// A varint never takes more than this many bytes (64-bit zigzag).
const VARINT_BYTES_MAX: usize = 10;
/// The smallest encoded record: length, attributes, two deltas, null key, null value, no
/// headers (one byte each). Bounds the record count trusted before allocating.
const RECORD_BYTES_MIN: usize = 7;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("record section truncated")]
    Truncated,
    #[error("malformed varint")]
    BadVarint,
    #[error("negative or oversized length")]
    BadLength,
    #[error("record count does not match the records")]
    CountMismatch,
}

/// One record, borrowing from the records section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The header count and headers, exactly as stored.
    pub headers: &'a [u8],
}

/// Parses exactly `count` records filling `bytes`.
pub fn parse_records(bytes: &[u8], count: i32) -> Result<Vec<Record<'_>>, RecordError> {
    let count = usize::try_from(count).map_err(|_| RecordError::CountMismatch)?;
    if count > bytes.len() / RECORD_BYTES_MIN {
        return Err(RecordError::CountMismatch);
    }
    let mut records = Vec::with_capacity(count);
    let mut reader = Reader { bytes, at: 0 };
    for _ in 0..count {
        let length = reader.length()?.ok_or(RecordError::BadLength)?;
        let body = reader.take(length)?;
        records.push(parse_record(body)?);
    }
    if reader.at != bytes.len() {
        return Err(RecordError::CountMismatch);
    }
    Ok(records)
}

fn parse_record(body: &[u8]) -> Result<Record<'_>, RecordError> {
    let mut reader = Reader { bytes: body, at: 0 };
    let attributes = reader.take(1)?[0];
    let timestamp_delta = reader.varint()?;
    let offset_delta = i32::try_from(reader.varint()?).map_err(|_| RecordError::BadLength)?;
    let key = reader.nullable_bytes()?;
    let value = reader.nullable_bytes()?;
    let headers = &body[reader.at..];
    Ok(Record {
        attributes,
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    })
}

/// Appends `record` with `timestamp_delta` (which changes when the batch's base timestamp
/// becomes a delete horizon).
pub fn encode_record(out: &mut Vec<u8>, record: &Record<'_>, timestamp_delta: i64) {
    let mut body = Vec::with_capacity(
        VARINT_BYTES_MAX * 4
            + record.key.map_or(0, <[u8]>::len)
            + record.value.map_or(0, <[u8]>::len)
            + record.headers.len()
            + 1,
    );
    body.push(record.attributes);
    put_varint(&mut body, timestamp_delta);
    put_varint(&mut body, i64::from(record.offset_delta));
    put_nullable_bytes(&mut body, record.key);
    put_nullable_bytes(&mut body, record.value);
    body.extend_from_slice(record.headers);
    put_varint(out, body.len() as i64);
    out.extend_from_slice(&body);
}

fn put_nullable_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(bytes) => {
            put_varint(out, bytes.len() as i64);
            out.extend_from_slice(bytes);
        }
    }
}

/// Zigzag varint (Kafka's varint and varlong share the encoding).
pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8 & 0x7f) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .at
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(RecordError::Truncated)?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn varint(&mut self) -> Result<i64, RecordError> {
        let mut raw: u64 = 0;
        for shift in 0..VARINT_BYTES_MAX {
            let byte = *self.bytes.get(self.at).ok_or(RecordError::Truncated)?;
            self.at += 1;
            raw |= u64::from(byte & 0x7f) << (7 * shift);
            if byte & 0x80 == 0 {
                return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        Err(RecordError::BadVarint)
    }

    /// A varint length: `None` for -1 (null), an error for other negatives.
    fn length(&mut self) -> Result<Option<usize>, RecordError> {
        match self.varint()? {
            -1 => Ok(None),
            length if length < 0 => Err(RecordError::BadLength),
            length => usize::try_from(length)
                .map(Some)
                .map_err(|_| RecordError::BadLength),
        }
    }

    fn nullable_bytes(&mut self) -> Result<Option<&'a [u8]>, RecordError> {
        match self.length()? {
            None => Ok(None),
            Some(length) => self.take(length).map(Some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            Record {
                attributes: 0,
                timestamp_delta: -5,
                offset_delta: 0,
                key: Some(b"k1"),
                value: Some(b"v"),
                headers: &[2, 2, b'h', 0],
            },
            Record {
                attributes: 0,
                timestamp_delta: 1 << 40,
                offset_delta: 7,
                key: Some(b""),
                value: None,
                headers: &[0],
            },
        ];
        let mut bytes = Vec::new();
        for record in &records {
            encode_record(&mut bytes, record, record.timestamp_delta);
        }
        assert_eq!(parse_records(&bytes, 2).unwrap(), records.to_vec());
        assert_eq!(parse_records(&bytes, 1), Err(RecordError::CountMismatch));
        assert_eq!(parse_records(&bytes, 3), Err(RecordError::Truncated));
        assert_eq!(
            parse_records(&bytes[..bytes.len() - 1], 2),
            Err(RecordError::Truncated)
        );
        assert_eq!(
            parse_records(&bytes, i32::MAX),
            Err(RecordError::CountMismatch)
        );
    }

    #[test]
    fn varints_match_kafka() {
        let mut out = Vec::new();
        put_varint(&mut out, -1);
        put_varint(&mut out, 300);
        assert_eq!(out, [0x01, 0xd8, 0x04]);
        let mut reader = Reader { bytes: &out, at: 0 };
        assert_eq!(reader.varint(), Ok(-1));
        assert_eq!(reader.varint(), Ok(300));
        let mut bad = Reader {
            bytes: &[0xff; 11],
            at: 0,
        };
        assert_eq!(bad.varint(), Err(RecordError::BadVarint));
    }
}
