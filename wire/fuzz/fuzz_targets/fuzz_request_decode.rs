//! Feeds arbitrary bytes through framing and request decoding, as the broker does with bytes
//! read off a socket. Any panic or abort (e.g. an allocation sized by a hostile length) is a bug;
//! every outcome must be a value.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_wire::{check_frame, decode_request, FrameCheck, LENGTH_PREFIX_BYTES};

/// Small enough that libFuzzer's inputs (4 KiB by default) hit the limit both ways.
const REQUEST_BYTES_MAX: usize = 2048;

fuzz_target!(|data: &[u8]| {
    // As framed input: the prefix decides how much of `data` is the frame.
    if let Ok(FrameCheck::Complete { frame_bytes }) = check_frame(data, REQUEST_BYTES_MAX) {
        let frame = Bytes::copy_from_slice(&data[LENGTH_PREFIX_BYTES..][..frame_bytes]);
        let _ = decode_request(frame);
    }
    // As a frame body directly, so the fuzzer need not guess a matching prefix first.
    let _ = decode_request(Bytes::copy_from_slice(data));
});
