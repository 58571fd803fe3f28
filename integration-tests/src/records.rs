//! Checks over the records the client scripts report as JSON.
//!
//! A record is `{"partition", "offset", "key", "value", "headers", "timestamp"}` with bytes as
//! hex strings (`null` for a null key, value or header value); see `python/common.py`.

use serde_json::Value;

/// Parses a client program's stdout: its last non-empty line is one JSON document.
pub fn parse_output(stdout: &str) -> Value {
    let line = stdout.lines().rev().find(|line| !line.trim().is_empty());
    let line = line.unwrap_or_else(|| panic!("client printed nothing on stdout"));
    serde_json::from_str(line).unwrap_or_else(|error| panic!("bad JSON ({error}): {line}"))
}

/// The array at `document[name]`.
pub fn array<'a>(document: &'a Value, name: &str) -> &'a Vec<Value> {
    let value = document
        .get(name)
        .unwrap_or_else(|| panic!("no {name:?} in {document}"));
    value
        .as_array()
        .unwrap_or_else(|| panic!("{name:?} is not an array: {value}"))
}

/// `consumed` is every `produced` record exactly once: per partition in produce order, at
/// offsets 0, 1, 2, … (the topic was fresh), with identical key, value, headers and timestamp.
/// With `offsets_known`, the producer's reported offsets are where the records were found.
pub fn assert_exact_round_trip(produced: &[Value], consumed: &[Value], offsets_known: bool) {
    assert!(!produced.is_empty(), "nothing was produced");
    assert_eq!(consumed.len(), produced.len(), "consumed record count");
    let mut partitions: Vec<i64> = produced.iter().map(partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    for partition_id in partitions {
        let sent: Vec<&Value> = produced
            .iter()
            .filter(|r| partition(r) == partition_id)
            .collect();
        let got: Vec<&Value> = consumed
            .iter()
            .filter(|r| partition(r) == partition_id)
            .collect();
        assert_eq!(
            got.len(),
            sent.len(),
            "partition {partition_id}: record count"
        );
        for (position, (expected, actual)) in sent.iter().zip(&got).enumerate() {
            let position = i64::try_from(position).expect("record count fits i64");
            assert_eq!(
                offset(actual),
                Some(position),
                "partition {partition_id}: {actual}"
            );
            if offsets_known {
                assert_eq!(
                    offset(expected),
                    offset(actual),
                    "partition {partition_id}: {expected}"
                );
            } else {
                assert_eq!(offset(expected), None, "no offset was reported: {expected}");
            }
            assert_eq!(
                content(expected),
                content(actual),
                "partition {partition_id} offset {position}"
            );
        }
    }
}

fn partition(record: &Value) -> i64 {
    let partition = record.get("partition").and_then(Value::as_i64);
    partition.unwrap_or_else(|| panic!("record without partition: {record}"))
}

fn offset(record: &Value) -> Option<i64> {
    record.get("offset").and_then(Value::as_i64)
}

/// Everything that must round-trip: the record without its offset.
fn content(record: &Value) -> Value {
    let mut content = record.clone();
    let object = content
        .as_object_mut()
        .unwrap_or_else(|| panic!("record is not an object"));
    object.remove("offset");
    for field in ["partition", "key", "value", "headers", "timestamp"] {
        assert!(
            object.contains_key(field),
            "record without {field}: {record}"
        );
    }
    content
}
