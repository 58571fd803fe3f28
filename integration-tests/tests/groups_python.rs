//! librdkafka (confluent-kafka) and kafka-python consumers in classic groups: the
//! cooperative-sticky assignor, ten consumers converging at once, and kafka-python's group
//! consumer. The scripts live in `python/`.

use serde_json::json;
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_python, topic_name, Broker};

#[test]
fn confluent_cooperative_sticky_members_hand_partitions_over() {
    let _matrix = covers(
        "confluent-kafka",
        &["consume_group", "commit_fetch_offsets"],
        "confluent_cooperative_sticky_members_hand_partitions_over",
    );
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "500"]);
    let topic = topic_name("confluent-cooperative");
    let output = parse_output(&run_python(
        "confluent_groups.py",
        &[&broker.bootstrap(), &topic, "cooperative"],
    ));
    // One assignment when the group forms, one incremental one when a member leaves.
    assert_eq!(output["assign_calls"], json!([2, 2]));
    assert_eq!(output["distinct"], 600);
    assert_eq!(output["missing"], json!([]));
    assert_eq!(
        output["violations"],
        json!([]),
        "a partition had two owners"
    );
    assert_eq!(output["gaps"], json!([]));
    assert_eq!(output["committed"], json!(vec![100; 6]));
}

#[test]
fn ten_confluent_consumers_started_together_converge_in_at_most_two_rebalances() {
    // The default initial rebalance delay (3 s) is what lets them join one rebalance.
    let broker = Broker::start();
    let topic = topic_name("confluent-ten");
    let output = parse_output(&run_python(
        "confluent_groups.py",
        &[&broker.bootstrap(), &topic, "ten"],
    ));
    let calls = output["assign_calls_max"].as_i64().expect("assign calls");
    assert!((1..=2).contains(&calls), "{output}");
    assert_eq!(output["owned"], json!([1, 1, 1, 1, 1, 1, 1, 1, 2, 2]));
    assert_eq!(output["violations"], json!([]));
    assert_eq!(output["errors"], json!([]));
    assert_eq!(output["state"], "STABLE");
    assert_eq!(output["members"], 10);
}

#[test]
fn kafka_python_group_consumers_commit_every_record() {
    let _matrix = covers(
        "kafka-python",
        &["consume_group", "commit_fetch_offsets"],
        "kafka_python_group_consumers_commit_every_record",
    );
    let broker = Broker::start_with(&["--group-initial-rebalance-delay-ms", "500"]);
    let topic = topic_name("kafka-python-group");
    let output = parse_output(&run_python(
        "kafka_python_group.py",
        &[&broker.bootstrap(), &topic],
    ));
    assert_eq!(output["distinct"], 200);
    assert_eq!(output["committed"], json!([50, 50, 50, 50]));
    assert_eq!(output["listed"], true);
    assert_eq!(output["assignments"], json!([2, 2]));
}
