//! Request decoding: one frame (without its length prefix) into a header and a typed body.
//!
//! The api key and version are read by hand and checked against
//! [`SUPPORTED_APIS`](crate::versions::SUPPORTED_APIS) before anything else is decoded, so a
//! request the broker does not serve costs eight bytes of parsing. Header and body are decoded
//! from the frame's own `Bytes`: record payloads stay slices of the frame, nothing is copied.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::{Decodable, StrBytes};
use thiserror::Error;

use crate::frame::REQUEST_BYTES_MIN;
use crate::legacy::{decode_legacy_body, is_legacy, LegacyRequest};
use crate::versions::supported_api;

/// Who asked what, for logging and for building the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The API.
    pub api_key: ApiKey,
    /// Its version; the response uses the same one.
    pub api_version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
    /// As sent; `None` when the request header has none or was not decoded.
    pub client_id: Option<StrBytes>,
}

/// A frame the broker can answer.
// Not boxed: nearly every frame is a `Request`, so boxing would add an allocation per request
// to shrink the two rare variants.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A request the broker serves.
    Request {
        /// The decoded request header.
        header: RequestHeader,
        /// The decoded body.
        body: RequestKind,
    },
    /// ApiVersions at a version above our max (KIP-511): answer with
    /// [`encode_api_versions_unsupported`](crate::response::encode_api_versions_unsupported).
    /// Its body is not decoded: its format may be newer than this code.
    ApiVersionsTooNew {
        /// Echoed in the response header.
        correlation_id: i32,
        /// The version the client asked for.
        api_version: i16,
    },
    /// A version kafka-protocol cannot decode (Kafka 0.8-0.10 clients), decoded by
    /// [`legacy`](crate::legacy); answer with
    /// [`encode_legacy_response`](crate::legacy::encode_legacy_response).
    Legacy {
        /// The decoded request header (v1: every legacy version is non-flexible).
        header: RequestHeader,
        /// The decoded body.
        request: LegacyRequest,
    },
}

impl Decoded {
    /// The context of this request.
    pub fn context(&self) -> RequestContext {
        match self {
            Decoded::Request { header, .. } => header_context(header),
            Decoded::ApiVersionsTooNew {
                correlation_id,
                api_version,
            } => RequestContext {
                api_key: ApiKey::ApiVersions,
                api_version: *api_version,
                correlation_id: *correlation_id,
                client_id: None,
            },
            Decoded::Legacy { header, .. } => header_context(header),
        }
    }
}

fn header_context(header: &RequestHeader) -> RequestContext {
    let api_key = ApiKey::try_from(header.request_api_key);
    // decode_request only produces headers whose key is in SUPPORTED_APIS.
    assert!(api_key.is_ok(), "api key {}", header.request_api_key);
    RequestContext {
        api_key: api_key.unwrap_or(ApiKey::ApiVersions),
        api_version: header.request_api_version,
        correlation_id: header.correlation_id,
        client_id: header.client_id.clone(),
    }
}

/// A frame the broker cannot answer. Every variant means: log it and close the connection
/// (what Kafka does for unknown keys, unsupported versions and unparsable requests).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The api key is not in the table (unknown to Kafka, or not served by this broker).
    #[error("api key {api_key} is not supported (correlation id {correlation_id})")]
    UnknownApiKey {
        /// As sent.
        api_key: i16,
        /// As sent.
        correlation_id: i32,
    },
    /// The version is outside the served range.
    #[error("api key {api_key} version {api_version} is not supported (correlation id {correlation_id})")]
    UnsupportedVersion {
        /// As sent.
        api_key: i16,
        /// As sent.
        api_version: i16,
        /// As sent.
        correlation_id: i32,
    },
    /// The header or body does not parse.
    #[error("api key {api_key} version {api_version} is malformed (correlation id {correlation_id}): {reason}")]
    Malformed {
        /// As sent.
        api_key: i16,
        /// As sent.
        api_version: i16,
        /// As sent.
        correlation_id: i32,
        /// What did not parse.
        reason: String,
    },
    /// The frame cannot hold api key, version and correlation id.
    #[error("request is shorter than the {REQUEST_BYTES_MIN}-byte fixed header")]
    TooShort,
}

/// The first eight bytes of every request, read before anything is decoded.
#[derive(Debug, Clone, Copy)]
struct FixedHeader {
    api_key: i16,
    api_version: i16,
    correlation_id: i32,
}

impl FixedHeader {
    fn read(frame: &[u8]) -> Result<Self, DecodeError> {
        let Some(fixed) = frame.first_chunk::<REQUEST_BYTES_MIN>() else {
            return Err(DecodeError::TooShort);
        };
        Ok(FixedHeader {
            api_key: i16::from_be_bytes([fixed[0], fixed[1]]),
            api_version: i16::from_be_bytes([fixed[2], fixed[3]]),
            correlation_id: i32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        })
    }

    fn malformed(&self, part: &str, reason: impl std::fmt::Display) -> DecodeError {
        DecodeError::Malformed {
            api_key: self.api_key,
            api_version: self.api_version,
            correlation_id: self.correlation_id,
            reason: format!("{part}: {reason:#}"),
        }
    }
}

/// Decodes one frame (without the length prefix).
///
/// Trailing bytes after the body are tolerated, as Kafka does: neither
/// `RequestContext.parseRequest` nor `AbstractRequest.parseRequest` checks that the buffer was
/// consumed, so a stricter broker would reject requests Kafka accepts.
pub fn decode_request(frame: Bytes) -> Result<Decoded, DecodeError> {
    let fixed = FixedHeader::read(&frame)?;
    let Some(api) = supported_api(fixed.api_key) else {
        return Err(DecodeError::UnknownApiKey {
            api_key: fixed.api_key,
            correlation_id: fixed.correlation_id,
        });
    };
    if api.api_key == ApiKey::ApiVersions && fixed.api_version > api.max_version {
        return Ok(Decoded::ApiVersionsTooNew {
            correlation_id: fixed.correlation_id,
            api_version: fixed.api_version,
        });
    }
    if !(api.min_version..=api.max_version).contains(&fixed.api_version) {
        return Err(DecodeError::UnsupportedVersion {
            api_key: fixed.api_key,
            api_version: fixed.api_version,
            correlation_id: fixed.correlation_id,
        });
    }

    let mut buffer = frame;
    let header_version = api.api_key.request_header_version(fixed.api_version);
    let header = RequestHeader::decode(&mut buffer, header_version)
        .map_err(|error| fixed.malformed("request header", error))?;
    if is_legacy(api.api_key, fixed.api_version) {
        let request = decode_legacy_body(api.api_key, fixed.api_version, buffer)
            .map_err(|error| fixed.malformed("request body", error))?;
        return Ok(Decoded::Legacy { header, request });
    }
    let body = RequestKind::decode(api.api_key, &mut buffer, fixed.api_version)
        .map_err(|error| fixed.malformed("request body", error))?;
    Ok(Decoded::Request { header, body })
}
