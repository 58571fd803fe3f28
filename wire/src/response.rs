//! Response encoding: length prefix, response header and body appended to the caller's buffer.
//!
//! The length prefix is reserved and patched once the frame is written, so the body is encoded
//! once, in place, with no second copy.

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::frame::LENGTH_PREFIX_BYTES;
use crate::versions::api_versions_keys;

/// A frame that could not be encoded. `out` is left as it was before the call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// kafka-protocol refused the message (usually: a field set that `api_version` lacks, or a
    /// version it does not know).
    #[error("{part} for api key {api_key} version {api_version} cannot be encoded: {reason}")]
    Message {
        /// "header" or "body".
        part: &'static str,
        /// The API.
        api_key: i16,
        /// The version asked for.
        api_version: i16,
        /// kafka-protocol's explanation.
        reason: String,
    },
    /// The frame does not fit the `i32` length prefix.
    #[error("frame of {frame_bytes} bytes does not fit the i32 length prefix")]
    TooLarge {
        /// Encoded length without the prefix.
        frame_bytes: usize,
    },
}

/// Appends `LENGTH_PREFIX_BYTES` of placeholder, runs `encode`, then patches the prefix with the
/// number of bytes `encode` appended. On error `out` is truncated back to where it was.
pub(crate) fn encode_framed(
    out: &mut BytesMut,
    encode: impl FnOnce(&mut BytesMut) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_i32(0);
    let result = encode(out).and_then(|()| {
        let frame_bytes = out.len() - start - LENGTH_PREFIX_BYTES;
        let length =
            i32::try_from(frame_bytes).map_err(|_| EncodeError::TooLarge { frame_bytes })?;
        out[start..start + LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
        Ok(())
    });
    if result.is_err() {
        out.truncate(start);
    }
    result
}

/// Appends length prefix + response header (version from `ApiKey::response_header_version`;
/// ApiVersions is always v0) + body. `body` must be `api_key`'s response.
pub fn encode_response(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &ResponseKind,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    encode_framed(out, |out| {
        let header_version = api_key.response_header_version(api_version);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(out, header_version)
            .map_err(|error| message_error("header", api_key as i16, api_version, error))?;
        body.encode(out, api_version)
            .map_err(|error| message_error("body", api_key as i16, api_version, error))
    })
}

pub(crate) fn message_error(
    part: &'static str,
    api_key: i16,
    api_version: i16,
    error: impl std::fmt::Display,
) -> EncodeError {
    EncodeError::Message {
        part,
        api_key,
        api_version,
        reason: format!("{error:#}"),
    }
}

/// Appends the v0 ApiVersions reply with error UNSUPPORTED_VERSION (35) and our key list: what
/// Kafka sends when a client asks for an ApiVersions version above our max (KIP-511), so the
/// client can retry with a version both sides know.
///
/// Written by hand because v0 is fixed forever (`error_code i16, [api_key i16, min_version i16,
/// max_version i16]`, response header v0) and this way it cannot fail.
pub fn encode_api_versions_unsupported(correlation_id: i32, out: &mut BytesMut) {
    const KEY_BYTES: usize = 3 * 2;
    let keys = api_versions_keys();
    let frame_bytes = 4 + 2 + 4 + keys.len() * KEY_BYTES;
    out.reserve(LENGTH_PREFIX_BYTES + frame_bytes);
    // The table is a short constant; its size fitting an i32 is checked by tests.
    out.put_u32(frame_bytes as u32);
    out.put_i32(correlation_id);
    out.put_i16(ResponseError::UnsupportedVersion.code());
    out.put_u32(keys.len() as u32);
    for key in &keys {
        out.put_i16(key.api_key);
        out.put_i16(key.min_version);
        out.put_i16(key.max_version);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes};
    use kafka_protocol::messages::{ApiVersionsResponse, MetadataResponse};
    use kafka_protocol::protocol::Decodable;

    /// Splits a frame appended after `skip` bytes into (declared length, header+body bytes).
    fn split_frame(out: &BytesMut, skip: usize) -> (usize, Bytes) {
        let mut frame = Bytes::copy_from_slice(&out[skip..]);
        let length = frame.get_i32() as usize;
        (length, frame)
    }

    #[test]
    fn api_versions_uses_header_v0_even_when_flexible() {
        let body = ApiVersionsResponse::default()
            .with_api_keys(api_versions_keys())
            .with_throttle_time_ms(5);
        let mut out = BytesMut::from(&b"abc"[..]);
        encode_response(
            ApiKey::ApiVersions,
            3,
            42,
            &ResponseKind::ApiVersions(body.clone()),
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..3], b"abc");
        let (length, mut frame) = split_frame(&out, 3);
        assert_eq!(length, frame.len());
        let header = ResponseHeader::decode(&mut frame, 0).unwrap();
        assert_eq!(header.correlation_id, 42);
        assert_eq!(ApiVersionsResponse::decode(&mut frame, 3).unwrap(), body);
        assert!(frame.is_empty());
    }

    #[test]
    fn flexible_responses_use_header_v1() {
        let body = MetadataResponse::default().with_cluster_id(Some("sluice".into()));
        let mut out = BytesMut::new();
        encode_response(
            ApiKey::Metadata,
            12,
            -7,
            &ResponseKind::Metadata(body.clone()),
            &mut out,
        )
        .unwrap();
        let (length, mut frame) = split_frame(&out, 0);
        assert_eq!(length, frame.len());
        assert_eq!(&frame[..5], &[0xff, 0xff, 0xff, 0xf9, 0x00], "id, no tags");
        let header = ResponseHeader::decode(&mut frame, 1).unwrap();
        assert_eq!(header.correlation_id, -7);
        assert_eq!(MetadataResponse::decode(&mut frame, 12).unwrap(), body);
        assert!(frame.is_empty());
    }

    #[test]
    fn failed_encoding_leaves_the_buffer_unchanged() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let body = ResponseKind::Metadata(MetadataResponse::default());
        let error = encode_response(ApiKey::Metadata, 99, 1, &body, &mut out).unwrap_err();
        assert!(
            matches!(
                error,
                EncodeError::Message {
                    part: "body",
                    api_key: 3,
                    api_version: 99,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(&out[..], b"keep");
    }

    #[test]
    fn unsupported_api_versions_reply_is_v0_with_error_35() {
        let mut out = BytesMut::from(&b"q"[..]);
        encode_api_versions_unsupported(0x0a0b_0c0d, &mut out);
        let keys = SUPPORTED_APIS_LEN;
        let mut expected = vec![b'q'];
        expected.extend_from_slice(&((4 + 2 + 4 + keys * 6) as i32).to_be_bytes());
        expected.extend_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d, 0x00, 35]);
        expected.extend_from_slice(&(keys as i32).to_be_bytes());
        // First entry: Produce 0-13.
        expected.extend_from_slice(&[0, 0, 0, 0, 0, 13]);
        assert_eq!(&out[..expected.len()], &expected[..]);

        let (length, mut frame) = split_frame(&out, 1);
        assert_eq!(length, frame.len());
        assert_eq!(
            ResponseHeader::decode(&mut frame, 0)
                .unwrap()
                .correlation_id,
            0x0a0b_0c0d
        );
        let body = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
        assert_eq!(body.error_code, 35);
        assert_eq!(body.api_keys, api_versions_keys());
        assert!(frame.is_empty());
    }

    const SUPPORTED_APIS_LEN: usize = crate::versions::SUPPORTED_APIS.len();
}
