//! Writes a few valid framed requests into the directory given as the only argument, as the seed
//! corpus for `wire/fuzz` (see wire/fuzz/run.sh). One file per request, named after it.

use std::path::PathBuf;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::ApiKey;
use sluice_wire::client::{default_request_body, encode_request, request_header};
use sluice_wire::{decode_request, LENGTH_PREFIX_BYTES, SUPPORTED_APIS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        return Err("usage: fuzz_seed_corpus <corpus dir>".into());
    };
    std::fs::create_dir_all(&dir)?;
    let mut written = 0;
    // The lowest and highest version of every API: one non-flexible and one flexible encoding
    // for most of them.
    for api in SUPPORTED_APIS {
        let min_version = if api.api_key == ApiKey::Produce {
            3
        } else {
            api.min_version
        };
        for version in [min_version, api.max_version] {
            let header = request_header(api.api_key, version, 1, "seed");
            let body = default_request_body(api.api_key).ok_or("table key without a body")?;
            let mut frame = BytesMut::new();
            encode_request(&header, &body, &mut frame)?;
            let name = format!("{:?}_v{version}", api.api_key);
            write_seed(&dir, &name, frame)?;
            written += 1;
        }
    }
    // Produce v0 with one topic and partition (hand-framed: kafka-protocol cannot encode it).
    let mut body = BytesMut::new();
    body.put_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 0, 4, b's', b'e', b'e', b'd']); // key, v0, id, "seed"
    body.put_i16(1); // acks
    body.put_i32(1000); // timeout_ms
    body.put_i32(1); // topics
    body.put_slice(&[0, 1, b't']);
    body.put_i32(1); // partitions
    body.put_i32(0); // partition 0
    body.put_i32(-1); // null record set
    let mut frame = BytesMut::new();
    frame.put_i32(i32::try_from(body.len())?);
    frame.put_slice(&body);
    write_seed(&dir, "Produce_v0", frame)?;
    written += 1;
    println!("wrote {written} seeds to {}", dir.display());
    Ok(())
}

/// Writes one framed request, after checking that it decodes: a seed that is rejected up front
/// would only exercise the error paths.
fn write_seed(
    dir: &std::path::Path,
    name: &str,
    frame: BytesMut,
) -> Result<(), Box<dyn std::error::Error>> {
    let frame = frame.freeze();
    decode_request(frame.slice(LENGTH_PREFIX_BYTES..))
        .map_err(|error| format!("seed {name} does not decode: {error}"))?;
    std::fs::write(dir.join(name), &frame)?;
    Ok(())
}
