//! sluice-wire: the Kafka wire protocol as the broker speaks it, without I/O.
//!
//! What this crate owns:
//! - framing ([`frame`]): is a whole length-prefixed request buffered, or can it never be valid;
//! - the API version table ([`versions`]): what the broker serves and advertises, nothing more;
//! - request decoding ([`request`]) over the `kafka-protocol` crate, plus the old versions it
//!   cannot decode and the v0/v1 message formats ([`legacy`]);
//! - response encoding ([`response`]), and request encoding for tests ([`client`]).
//!
//! What it must not do: touch sockets, files, clocks or async runtimes, or know any broker state
//! (topics, offsets, configs). Every function maps bytes to values or values to bytes, so it can
//! be unit tested and fuzzed in isolation (`wire/fuzz/`). Bytes from the network are never
//! trusted: every length is bounded by the bytes actually present before anything is allocated,
//! and no input makes these functions panic.

pub mod client;
pub mod frame;
pub mod legacy;
pub mod request;
pub mod response;
pub mod throttle;
pub mod versions;

pub use frame::{
    check_frame, FrameCheck, FrameError, LENGTH_PREFIX_BYTES, REQUEST_BYTES_MAX_DEFAULT,
};
pub use legacy::{encode_legacy_response, LegacyRequest, LegacyResponse};
pub use request::{decode_request, DecodeError, Decoded, RequestContext};
pub use response::{encode_api_versions_unsupported, encode_response, EncodeError};
pub use throttle::raise_throttle_time_ms;
pub use versions::{api_versions_keys, supported_range, SupportedApi, SUPPORTED_APIS};
