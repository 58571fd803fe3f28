//! Bounded big-endian reading and writing of the non-flexible (pre-KIP-482) wire types the
//! legacy APIs use: fixed-width integers, `i16`-length strings, `i32`-length bytes and
//! `i32`-count arrays.
//!
//! Every length and count read is checked against the bytes that remain before anything is
//! allocated, so a frame cannot make the decoder reserve more than the frame's own size.

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

/// Why legacy bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LegacyDecodeError {
    /// The input ends inside `field`.
    #[error("legacy body ends inside {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// A length or count is negative where it cannot be.
    #[error("legacy {field} is negative ({value})")]
    Negative {
        /// The field being read.
        field: &'static str,
        /// The value read.
        value: i32,
    },
    /// A count claims more elements than the remaining bytes could hold.
    #[error("legacy {field} count {count} exceeds what {remaining_bytes} bytes can hold")]
    CountTooLarge {
        /// The field being read.
        field: &'static str,
        /// The count read.
        count: usize,
        /// Bytes left in the input.
        remaining_bytes: usize,
    },
    /// A string is not UTF-8.
    #[error("legacy {field} is not UTF-8")]
    NotUtf8 {
        /// The field being read.
        field: &'static str,
    },
}

/// Reads fields off a `Bytes`, never past its end; byte fields are slices, not copies.
pub(crate) struct Reader {
    bytes: Bytes,
}

impl Reader {
    pub(crate) fn new(bytes: Bytes) -> Reader {
        Reader { bytes }
    }

    pub(crate) fn remaining_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub(crate) fn take(
        &mut self,
        count: usize,
        field: &'static str,
    ) -> Result<Bytes, LegacyDecodeError> {
        if self.bytes.len() < count {
            return Err(LegacyDecodeError::Truncated { field });
        }
        Ok(self.bytes.split_to(count))
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], LegacyDecodeError> {
        let Some(bytes) = self.bytes.first_chunk::<N>().copied() else {
            return Err(LegacyDecodeError::Truncated { field });
        };
        let _ = self.bytes.split_to(N);
        Ok(bytes)
    }

    pub(crate) fn i8(&mut self, field: &'static str) -> Result<i8, LegacyDecodeError> {
        self.array::<1>(field).map(i8::from_be_bytes)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, LegacyDecodeError> {
        self.array::<2>(field).map(i16::from_be_bytes)
    }

    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, LegacyDecodeError> {
        self.array::<4>(field).map(i32::from_be_bytes)
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, LegacyDecodeError> {
        self.array::<4>(field).map(u32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, LegacyDecodeError> {
        self.array::<8>(field).map(i64::from_be_bytes)
    }

    /// An array count, bounded by the bytes left so a hostile count cannot make us allocate.
    pub(crate) fn count(
        &mut self,
        field: &'static str,
        element_bytes_min: usize,
    ) -> Result<usize, LegacyDecodeError> {
        assert!(element_bytes_min > 0);
        let value = self.i32(field)?;
        let count =
            usize::try_from(value).map_err(|_| LegacyDecodeError::Negative { field, value })?;
        let remaining_bytes = self.bytes.len();
        if count > remaining_bytes / element_bytes_min {
            return Err(LegacyDecodeError::CountTooLarge {
                field,
                count,
                remaining_bytes,
            });
        }
        Ok(count)
    }

    /// A nullable `i16`-length string (-1 is null).
    pub(crate) fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, LegacyDecodeError> {
        let value = i32::from(self.i16(field)?);
        if value == -1 {
            return Ok(None);
        }
        let length =
            usize::try_from(value).map_err(|_| LegacyDecodeError::Negative { field, value })?;
        let bytes = self.take(length, field)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| LegacyDecodeError::NotUtf8 { field })?;
        Ok(Some(text.to_owned()))
    }

    /// A non-nullable string; Kafka reads a null here as the empty string's absence, an error.
    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, LegacyDecodeError> {
        self.nullable_string(field)?
            .ok_or(LegacyDecodeError::Negative { field, value: -1 })
    }

    /// Nullable `i32`-length bytes (-1 is null), as a slice of the input.
    pub(crate) fn nullable_bytes(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Bytes>, LegacyDecodeError> {
        let value = self.i32(field)?;
        if value == -1 {
            return Ok(None);
        }
        let length =
            usize::try_from(value).map_err(|_| LegacyDecodeError::Negative { field, value })?;
        self.take(length, field).map(Some)
    }
}

/// Converts a length the broker built itself to its wire type. Sizes that do not fit are
/// programmer errors: every legacy response is built from a decoded request or bounded reads.
pub(crate) fn wire_i32(value: usize) -> i32 {
    let converted = i32::try_from(value);
    assert!(converted.is_ok(), "{value} does not fit an i32 on the wire");
    converted.unwrap_or(i32::MAX)
}

pub(crate) fn put_string(out: &mut BytesMut, text: &str) {
    let length = i16::try_from(text.len());
    assert!(length.is_ok(), "string of {} bytes", text.len());
    out.put_i16(length.unwrap_or(i16::MAX));
    out.put_slice(text.as_bytes());
}

pub(crate) fn put_nullable_string(out: &mut BytesMut, text: Option<&str>) {
    match text {
        Some(text) => put_string(out, text),
        None => out.put_i16(-1),
    }
}

pub(crate) fn put_nullable_bytes(out: &mut BytesMut, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => {
            out.put_i32(wire_i32(bytes.len()));
            out.put_slice(bytes);
        }
        None => out.put_i32(-1),
    }
}

pub(crate) fn put_count(out: &mut BytesMut, count: usize) {
    out.put_i32(wire_i32(count));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_bytes_round_trip() {
        let mut out = BytesMut::new();
        put_string(&mut out, "topic");
        put_nullable_string(&mut out, None);
        put_nullable_bytes(&mut out, Some(b"abc"));
        put_nullable_bytes(&mut out, None);
        put_count(&mut out, 3);
        let mut reader = Reader::new(out.freeze());
        assert_eq!(reader.string("s").unwrap(), "topic");
        assert_eq!(reader.nullable_string("n").unwrap(), None);
        assert_eq!(
            reader.nullable_bytes("b").unwrap(),
            Some(Bytes::from_static(b"abc"))
        );
        assert_eq!(reader.nullable_bytes("b").unwrap(), None);
        assert_eq!(
            reader.count("c", 1),
            Err(LegacyDecodeError::CountTooLarge {
                field: "c",
                count: 3,
                remaining_bytes: 0
            })
        );
    }

    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        let mut reader = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff, 1]));
        assert_eq!(
            reader.nullable_bytes("records"),
            Err(LegacyDecodeError::Truncated { field: "records" })
        );
        let mut reader = Reader::new(Bytes::from_static(&[0xff, 0xfe]));
        assert_eq!(
            reader.nullable_string("name"),
            Err(LegacyDecodeError::Negative {
                field: "name",
                value: -2
            })
        );
        let mut reader = Reader::new(Bytes::from_static(&[0xff, 0xff]));
        assert!(
            reader.string("name").is_err(),
            "null where a string must be"
        );
    }
}
