//! The Java client (kafka-clients 4.1) with `group.protocol=consumer` (KIP-848): the broker
//! assigns partitions with its `uniform` or `range` assignor. Three members share a 12-partition
//! topic while a producer runs, a fourth joins and leaves and one of the three is closed under
//! load; no partition ever has two owners, every record is consumed, and after a broker restart
//! a new member resumes at the committed offsets. The program is
//! `java/src/main/java/sluice/it/ConsumerProtocolGroup.java`.

use serde_json::json;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_java, topic_name, Broker};

/// A short heartbeat interval lets members see new assignments (and released partitions)
/// quickly; Kafka's default of 5 s would only slow the test down.
const HEARTBEAT_FLAGS: [&str; 2] = ["--group-consumer-heartbeat-interval-ms", "500"];

fn share_take_over_and_resume(assignor: &str) {
    let mut broker = Broker::start_with(&HEARTBEAT_FLAGS);
    let topic = topic_name(&format!("kip848-{assignor}"));
    let group = format!("{topic}-group");
    let count = 3000;
    let output = parse_output(&run_java(
        "ConsumerProtocolGroup",
        &[
            "run",
            &broker.bootstrap(),
            &topic,
            &group,
            &count.to_string(),
            assignor,
        ],
    ));
    assert_eq!(output["produced"], count, "{output}");
    assert_eq!(output["distinct_consumed"], count, "{output}");
    assert_eq!(
        output["violations"], 0,
        "a partition had two owners at once"
    );
    assert_eq!(output["took_over"], true, "{output}");
    // 3000 records round-robin over 12 partitions: 250 each, all committed.
    let ends = json!(vec![250; 12]);
    assert_eq!(output["ends"], ends);
    assert_eq!(output["committed"], ends);
    // Admin's describeConsumerGroups went through ConsumerGroupDescribe.
    assert_eq!(output["group_type"], "Consumer", "{output}");
    assert_eq!(output["assignor"], assignor, "{output}");
    assert_eq!(output["described_members"], 3, "{output}");
    assert_eq!(output["described_partitions"], 12, "{output}");

    broker.restart();
    let more = 120;
    let resumed = parse_output(&run_java(
        "ConsumerProtocolGroup",
        &[
            "resume",
            &broker.bootstrap(),
            &topic,
            &group,
            &more.to_string(),
            assignor,
        ],
    ));
    assert_eq!(resumed["produced"], more);
    assert_eq!(resumed["consumed"], more, "no record consumed twice");
    assert_eq!(
        resumed["first_offsets"], ends,
        "started exactly at the committed offsets"
    );
}

#[test]
fn uniform_assignor_members_share_take_over_and_resume() {
    share_take_over_and_resume("uniform");
}

#[test]
fn range_assignor_members_share_take_over_and_resume() {
    share_take_over_and_resume("range");
}
