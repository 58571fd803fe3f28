//! The Apache Kafka Java client (kafka-clients 4.1) against sluice; the programs live in
//! `java/src/main/java/sluice/it/` and check every record themselves.

use serde_json::json;
use sluice_integration_tests::compat::covers;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_java, topic_name, Broker};

#[test]
fn java_default_producer_and_groupless_consumer() {
    let _matrix = covers(
        "java",
        &["produce_none", "consume_assign"],
        "java_default_producer_and_groupless_consumer",
    );
    let broker = Broker::start();
    let topic = topic_name("java-produce-consume");
    let output = parse_output(&run_java(
        "ProduceConsume",
        &[&broker.bootstrap(), &topic, "90"],
    ));
    // Partition 0 holds records 0, 3, 6, …: 30 of them; the seek goes to its middle.
    let expected = json!({
        "produced": 90,
        "consumed": 90,
        "seek_offset": 15,
        "after_seek": 15,
        "first_after_seek": 15,
    });
    assert_eq!(output, expected);
}

#[test]
fn java_admin() {
    let _matrix = covers(
        "java",
        &[
            "admin_create_topics",
            "admin_describe_topics",
            "admin_describe_configs",
            "admin_delete_topics",
        ],
        "java_admin",
    );
    let broker = Broker::start();
    let topic = topic_name("java-admin");
    let output = parse_output(&run_java("AdminOps", &[&broker.bootstrap(), &topic]));
    assert_eq!(output["cluster"]["nodes"], json!([[1, broker.bootstrap()]]));
    assert_eq!(output["cluster"]["has_cluster_id"], true);
    assert_eq!(output["create_again"], "TopicExistsException");
    assert_eq!(
        output["partitions"],
        json!([[0, 1, [1], [1]], [1, 1, [1], [1]]])
    );
    assert_eq!(output["retention_ms"], "86400000");
    assert_eq!(output["deleted"], true);
}
