//! Request framing: every Kafka request is an `i32` big-endian length prefix followed by that
//! many bytes. This module only *looks* at buffered bytes and says whether a whole frame is
//! there; it never allocates or consumes anything, so the caller keeps ownership of its buffer.
//!
//! "Incomplete" (wait for more bytes) is kept apart from "invalid" (close the connection): a
//! frame that can never become valid is reported as soon as its prefix is readable, without
//! waiting for (or buffering) its body.

use thiserror::Error;

/// Size of the `i32` length prefix in front of every request and response.
pub const LENGTH_PREFIX_BYTES: usize = 4;

/// Kafka's `socket.request.max.bytes` default.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 100 * 1024 * 1024;

/// The smallest possible request: api key (i16), api version (i16) and correlation id (i32).
pub const REQUEST_BYTES_MIN: usize = 8;

/// What the buffered bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameCheck {
    /// Fewer than [`LENGTH_PREFIX_BYTES`] bytes, or the prefix says more than is buffered.
    Incomplete,
    /// A whole frame is buffered: `LENGTH_PREFIX_BYTES + frame_bytes` bytes from the start.
    Complete {
        /// Length of the frame without the prefix.
        frame_bytes: usize,
    },
}

/// A length prefix that no amount of further bytes can make valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The prefix is negative.
    #[error("request length prefix is negative ({0})")]
    NegativeLength(i32),
    /// The frame cannot hold the fixed request header (see [`REQUEST_BYTES_MIN`]).
    #[error("request of {0} bytes is smaller than the {REQUEST_BYTES_MIN}-byte header")]
    TooSmall(usize),
    /// The frame is larger than the configured limit.
    #[error("request of {frame_bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Length the prefix claims, without the prefix.
        frame_bytes: usize,
        /// The limit it exceeds.
        max: usize,
    },
}

/// Looks at the buffered bytes; never allocates.
///
/// `Incomplete` covers "fewer than 4 bytes" and "prefix says N but fewer than 4 + N bytes are
/// buffered". Errors are returned as soon as the prefix is readable.
pub fn check_frame(buffered: &[u8], request_bytes_max: usize) -> Result<FrameCheck, FrameError> {
    check_prefixed(buffered, REQUEST_BYTES_MIN, request_bytes_max)
}

/// Like [`check_frame`], for a raw SASL token after a v0 SaslHandshake: the same `i32`
/// length prefix, but no request header, so any length from zero to `token_bytes_max`.
pub fn check_token_frame(
    buffered: &[u8],
    token_bytes_max: usize,
) -> Result<FrameCheck, FrameError> {
    check_prefixed(buffered, 0, token_bytes_max)
}

fn check_prefixed(
    buffered: &[u8],
    frame_bytes_min: usize,
    request_bytes_max: usize,
) -> Result<FrameCheck, FrameError> {
    let Some(prefix) = buffered.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return Ok(FrameCheck::Incomplete);
    };
    let length = i32::from_be_bytes(*prefix);
    let Ok(frame_bytes) = usize::try_from(length) else {
        return Err(FrameError::NegativeLength(length));
    };
    if frame_bytes < frame_bytes_min {
        return Err(FrameError::TooSmall(frame_bytes));
    }
    if frame_bytes > request_bytes_max {
        return Err(FrameError::TooLarge {
            frame_bytes,
            max: request_bytes_max,
        });
    }
    if buffered.len() - LENGTH_PREFIX_BYTES < frame_bytes {
        return Ok(FrameCheck::Incomplete);
    }
    Ok(FrameCheck::Complete { frame_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixed(length: i32, body_bytes: usize) -> Vec<u8> {
        let mut buffered = length.to_be_bytes().to_vec();
        buffered.resize(LENGTH_PREFIX_BYTES + body_bytes, 0xAB);
        buffered
    }

    #[test]
    fn fewer_than_four_bytes_is_incomplete() {
        let full = prefixed(8, 8);
        for len in 0..LENGTH_PREFIX_BYTES {
            assert_eq!(check_frame(&full[..len], 100), Ok(FrameCheck::Incomplete));
        }
    }

    #[test]
    fn partial_body_is_incomplete_until_the_last_byte() {
        let full = prefixed(10, 10);
        for len in LENGTH_PREFIX_BYTES..full.len() {
            assert_eq!(check_frame(&full[..len], 100), Ok(FrameCheck::Incomplete));
        }
        assert_eq!(
            check_frame(&full, 100),
            Ok(FrameCheck::Complete { frame_bytes: 10 })
        );
    }

    #[test]
    fn raw_tokens_may_be_empty_or_short_but_not_over_their_limit() {
        assert_eq!(
            check_token_frame(&prefixed(0, 0), 100),
            Ok(FrameCheck::Complete { frame_bytes: 0 })
        );
        assert_eq!(
            check_token_frame(&prefixed(3, 3), 100),
            Ok(FrameCheck::Complete { frame_bytes: 3 })
        );
        assert_eq!(
            check_token_frame(&prefixed(3, 2), 100),
            Ok(FrameCheck::Incomplete)
        );
        assert_eq!(
            check_token_frame(&prefixed(101, 0), 100),
            Err(FrameError::TooLarge {
                frame_bytes: 101,
                max: 100
            })
        );
        assert_eq!(
            check_token_frame(&prefixed(-1, 0), 100),
            Err(FrameError::NegativeLength(-1))
        );
        assert_eq!(
            check_frame(&prefixed(3, 3), 100),
            Err(FrameError::TooSmall(3))
        );
    }

    #[test]
    fn bytes_after_the_frame_are_left_alone() {
        let buffered = prefixed(8, 20);
        assert_eq!(
            check_frame(&buffered, 100),
            Ok(FrameCheck::Complete { frame_bytes: 8 })
        );
    }

    #[test]
    fn limit_is_inclusive() {
        assert_eq!(
            check_frame(&prefixed(100, 100), 100),
            Ok(FrameCheck::Complete { frame_bytes: 100 })
        );
    }

    #[test]
    fn too_large_is_reported_from_the_prefix_alone() {
        assert_eq!(
            check_frame(&prefixed(101, 0), 100),
            Err(FrameError::TooLarge {
                frame_bytes: 101,
                max: 100
            })
        );
        assert_eq!(
            check_frame(&prefixed(i32::MAX, 0), REQUEST_BYTES_MAX_DEFAULT),
            Err(FrameError::TooLarge {
                frame_bytes: i32::MAX as usize,
                max: REQUEST_BYTES_MAX_DEFAULT
            })
        );
    }

    #[test]
    fn negative_length_is_an_error() {
        assert_eq!(
            check_frame(&prefixed(-1, 0), 100),
            Err(FrameError::NegativeLength(-1))
        );
        assert_eq!(
            check_frame(&prefixed(i32::MIN, 0), 100),
            Err(FrameError::NegativeLength(i32::MIN))
        );
    }

    #[test]
    fn frames_without_room_for_a_header_are_too_small() {
        for length in 0..REQUEST_BYTES_MIN as i32 {
            assert_eq!(
                check_frame(&prefixed(length, 0), 100),
                Err(FrameError::TooSmall(length as usize))
            );
        }
        assert_eq!(
            check_frame(&prefixed(8, 0), 100),
            Ok(FrameCheck::Incomplete)
        );
    }
}
