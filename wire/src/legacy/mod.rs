//! The protocol versions and message formats Kafka 4.x dropped (KIP-896), for clients of the
//! Kafka 0.8-0.10 era: codecs for the request/response versions kafka-protocol 0.18 cannot
//! decode ([`LEGACY_APIS`]), the v0/v1 message-set format, and conversion to and from the v2
//! batches the broker stores.
//!
//! Everything here is pure and bounded: no I/O, no clocks, no broker state; every length read
//! is checked against the bytes present, and every decompression stops at a caller-given limit.
//! The broker up-converts a legacy request into the modern request struct, serves it with the
//! modern handler and down-converts the answer (`src/handlers/legacy/`).

mod codec;
pub mod compression;
pub mod convert;
pub mod fetch;
pub mod list_offsets;
pub mod message_set;
pub mod offset_commit;
pub mod offset_fetch;
pub mod produce;
mod xxhash32;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::ApiKey;

pub use codec::LegacyDecodeError;
pub use fetch::{LegacyFetchRequest, LegacyFetchResponse};
pub use list_offsets::{LegacyListOffsetsRequest, LegacyListOffsetsResponse};
pub use offset_commit::{LegacyOffsetCommitRequest, LegacyOffsetCommitResponse};
pub use offset_fetch::{LegacyOffsetFetchRequest, LegacyOffsetFetchResponse};
pub use produce::{LegacyProduceRequest, LegacyProduceResponse};

use crate::response::{encode_framed, EncodeError};

/// The APIs with versions below kafka-protocol's decode floor, and the highest such version.
/// Versions `0..=max` of these go through this module; a unit test checks that `max + 1` is
/// exactly the crate's floor, so the two decoders never overlap or leave a gap.
pub const LEGACY_APIS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 2),
    (ApiKey::Fetch, 3),
    (ApiKey::ListOffsets, 0),
    (ApiKey::OffsetCommit, 1),
    (ApiKey::OffsetFetch, 0),
];

/// The highest version of `api_key` this module decodes, if any.
pub fn legacy_version_max(api_key: ApiKey) -> Option<i16> {
    LEGACY_APIS
        .iter()
        .find(|(key, _)| *key == api_key)
        .map(|&(_, max)| max)
}

/// Whether `api_key` at `api_version` is decoded here rather than by kafka-protocol.
pub fn is_legacy(api_key: ApiKey, api_version: i16) -> bool {
    legacy_version_max(api_key).is_some_and(|max| (0..=max).contains(&api_version))
}

/// A topic with its per-partition entries, the shape of every legacy request and response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyTopic<P> {
    /// The topic name.
    pub name: String,
    /// Per-partition entries in request order.
    pub partitions: Vec<P>,
}

/// A decoded legacy request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyRequest {
    /// Produce v0-v2.
    Produce(LegacyProduceRequest),
    /// Fetch v0-v3.
    Fetch(LegacyFetchRequest),
    /// ListOffsets v0.
    ListOffsets(LegacyListOffsetsRequest),
    /// OffsetCommit v0-v1.
    OffsetCommit(LegacyOffsetCommitRequest),
    /// OffsetFetch v0.
    OffsetFetch(LegacyOffsetFetchRequest),
}

/// A legacy response body, the counterpart of [`LegacyRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyResponse {
    /// Produce v0-v2.
    Produce(LegacyProduceResponse),
    /// Fetch v0-v3.
    Fetch(LegacyFetchResponse),
    /// ListOffsets v0.
    ListOffsets(LegacyListOffsetsResponse),
    /// OffsetCommit v0-v1.
    OffsetCommit(LegacyOffsetCommitResponse),
    /// OffsetFetch v0.
    OffsetFetch(LegacyOffsetFetchResponse),
}

impl LegacyResponse {
    fn api_key(&self) -> ApiKey {
        match self {
            LegacyResponse::Produce(_) => ApiKey::Produce,
            LegacyResponse::Fetch(_) => ApiKey::Fetch,
            LegacyResponse::ListOffsets(_) => ApiKey::ListOffsets,
            LegacyResponse::OffsetCommit(_) => ApiKey::OffsetCommit,
            LegacyResponse::OffsetFetch(_) => ApiKey::OffsetFetch,
        }
    }
}

/// Decodes the body (after the request header) of a request for which [`is_legacy`] holds.
pub fn decode_legacy_body(
    api_key: ApiKey,
    api_version: i16,
    body: Bytes,
) -> Result<LegacyRequest, LegacyDecodeError> {
    assert!(
        is_legacy(api_key, api_version),
        "{api_key:?} v{api_version}"
    );
    let request = match api_key {
        ApiKey::Produce => LegacyRequest::Produce(produce::decode_produce(body)?),
        ApiKey::Fetch => LegacyRequest::Fetch(fetch::decode_fetch(api_version, body)?),
        ApiKey::ListOffsets => LegacyRequest::ListOffsets(list_offsets::decode_list_offsets(body)?),
        ApiKey::OffsetCommit => {
            LegacyRequest::OffsetCommit(offset_commit::decode_offset_commit(api_version, body)?)
        }
        ApiKey::OffsetFetch => LegacyRequest::OffsetFetch(offset_fetch::decode_offset_fetch(body)?),
        other => unreachable!("{other:?} is in LEGACY_APIS without a decoder"),
    };
    Ok(request)
}

/// Appends a complete legacy response frame: length prefix, response header v0 (correlation
/// id only; every legacy version is non-flexible) and body.
pub fn encode_legacy_response(
    correlation_id: i32,
    api_version: i16,
    response: &LegacyResponse,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    assert!(
        is_legacy(response.api_key(), api_version),
        "{:?} v{api_version}",
        response.api_key()
    );
    encode_framed(out, |out| {
        out.put_i32(correlation_id);
        match response {
            LegacyResponse::Produce(body) => {
                produce::encode_produce_response(api_version, body, out)
            }
            LegacyResponse::Fetch(body) => fetch::encode_fetch_response(api_version, body, out),
            LegacyResponse::ListOffsets(body) => {
                list_offsets::encode_list_offsets_response(body, out)
            }
            LegacyResponse::OffsetCommit(body) => {
                offset_commit::encode_offset_commit_response(body, out)
            }
            LegacyResponse::OffsetFetch(body) => {
                offset_fetch::encode_offset_fetch_response(body, out)
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_ranges_end_exactly_at_the_crate_floors() {
        for &(api_key, max) in LEGACY_APIS {
            assert_eq!(max + 1, api_key.valid_versions().min, "{api_key:?}");
            assert!(is_legacy(api_key, 0) && is_legacy(api_key, max));
            assert!(!is_legacy(api_key, max + 1) && !is_legacy(api_key, -1));
        }
        assert!(
            !is_legacy(ApiKey::Metadata, 0),
            "the crate decodes Metadata v0"
        );
        assert!(!is_legacy(ApiKey::FindCoordinator, 0));
    }

    #[test]
    fn responses_are_framed_with_header_v0() {
        let mut out = BytesMut::from(&b"z"[..]);
        let response = LegacyResponse::OffsetCommit(LegacyOffsetCommitResponse::default());
        encode_legacy_response(0x0102_0304, 1, &response, &mut out).unwrap();
        assert_eq!(&out[..], &[b'z', 0, 0, 0, 8, 1, 2, 3, 4, 0, 0, 0, 0]);
    }
}
