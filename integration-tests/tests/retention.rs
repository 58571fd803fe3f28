//! Time-based retention on a live broker: after retention.ms is lowered, whole old segments go,
//! everything from the new earliest offset on stays exact, and the latest offset stays put.

use serde_json::json;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_python, topic_name, Broker};

const RECORD_COUNT: i64 = 300;
const RECENT_COUNT: i64 = 60;

#[test]
fn retention_ms_deletes_old_segments_only() {
    let broker = Broker::start_with(&[
        "--segment-bytes",
        "4096",
        "--retention-check-interval-ms",
        "200",
    ]);
    let topic = topic_name("retention");
    let (count, recent) = (RECORD_COUNT.to_string(), RECENT_COUNT.to_string());
    // ~150-byte records in batches of 10: about 20 segments of 4 KiB.
    let bootstrap = broker.bootstrap();
    let args = [
        bootstrap.as_str(),
        topic.as_str(),
        count.as_str(),
        recent.as_str(),
        "100",
    ];
    let output = parse_output(&run_python("confluent_retention.py", &args));
    let first_recent = RECORD_COUNT - RECENT_COUNT;
    assert_eq!(output["first_recent"], first_recent);
    let earliest = output["earliest_final"].as_i64().expect("earliest_final");
    assert!(earliest > 0, "nothing was deleted: {output}");
    assert!(
        earliest <= first_recent,
        "recent records were deleted: {output}"
    );
    // Whole segments only: with ~27 records per segment, at most one segment of old records
    // may remain (the one holding the first recent record).
    assert!(
        first_recent - earliest < 60,
        "too little was deleted: {output}"
    );
    assert_eq!(output["first_consumed"], earliest);
    assert_eq!(output["consumed"], json!(RECORD_COUNT - earliest));
    assert_eq!(output["latest_final"], RECORD_COUNT);
}
