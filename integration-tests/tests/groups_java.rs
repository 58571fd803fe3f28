//! The Java client (kafka-clients 4.1) in classic consumer groups: three members sharing a
//! 12-partition topic while a producer runs, a member leaving mid-stream, committed offsets
//! surviving a broker crash, and static membership. The programs live in
//! `java/src/main/java/sluice/it/GroupConsume.java` and `StaticMembers.java`.

use serde_json::{json, Value};
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_java, topic_name, Broker};

/// Short enough to keep the test quick, long enough for three JVM consumers to join together.
const REBALANCE_DELAY_FLAGS: [&str; 2] = ["--group-initial-rebalance-delay-ms", "500"];

#[test]
fn three_members_share_partitions_take_over_and_resume_after_a_crash() {
    let _matrix = covers(
        "java",
        &["consume_group", "commit_fetch_offsets"],
        "three_members_share_partitions_take_over_and_resume_after_a_crash",
    );
    let mut broker = Broker::start_with(&REBALANCE_DELAY_FLAGS);
    let topic = topic_name("java-group");
    let group = format!("{topic}-group");
    let count = 3000;
    let output = parse_output(&run_java(
        "GroupConsume",
        &[
            "run",
            &broker.bootstrap(),
            &topic,
            &group,
            &count.to_string(),
        ],
    ));
    assert_eq!(output["produced"], count);
    assert_eq!(output["distinct_consumed"], count);
    assert_eq!(
        output["violations"], 0,
        "a partition had two owners at once"
    );
    assert_eq!(output["took_over"], true);
    // 3000 records round-robin over 12 partitions: 250 each, all committed.
    let ends = json!(vec![250; 12]);
    assert_eq!(output["ends"], ends);
    assert_eq!(output["committed"], ends);

    broker.restart();
    let more = 120;
    let resumed = parse_output(&run_java(
        "GroupConsume",
        &[
            "resume",
            &broker.bootstrap(),
            &topic,
            &group,
            &more.to_string(),
        ],
    ));
    assert_eq!(resumed["produced"], more);
    assert_eq!(
        resumed["consumed"], more,
        "no record consumed twice after the restart"
    );
    assert_eq!(
        resumed["first_offsets"], ends,
        "started exactly at the committed offsets"
    );
}

#[test]
fn a_restarted_static_member_keeps_its_partitions_without_a_rebalance() {
    let broker = Broker::start_with(&REBALANCE_DELAY_FLAGS);
    let topic = topic_name("java-static");
    let group = format!("{topic}-group");
    let output = parse_output(&run_java(
        "GroupConsume",
        &["static", &broker.bootstrap(), &topic, &group],
    ));
    assert_eq!(output["same_partitions"], true, "{output}");
    assert_eq!(output["b_kept_partitions"], true, "{output}");
    let generation = output["generation_before"].as_i64().expect("generation");
    assert!(generation >= 1, "{output}");
    assert_eq!(output["generation_after"], generation, "{output}");
    assert_eq!(output["b_generation_after"], generation, "{output}");
    assert_eq!(output["b_assigned_calls_after_restart"], 0, "{output}");
    assert_eq!(output["b_revoked_calls"], 0, "{output}");
    let partitions: Vec<Value> = output["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .flat_map(|owned| owned.as_array().expect("list").clone())
        .collect();
    assert_eq!(partitions.len(), 12, "{output}");
}
