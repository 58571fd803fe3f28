//! ListTransactions filters as Kafka's `TransactionStateManager.listTransactionStates`
//! applies them: v1's duration (KIP-994: transactions started more than that long ago) and
//! v2's transactional id pattern (KIP-1152: an RE2 regular expression the whole id matches).

use std::time::Instant;

use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, code, find_coordinator, init, list_ids, TIMEOUT_MS, WAIT,
};
use sluice_integration_tests::{topic_name, wait_until, Broker};

/// Starts a transaction of `id` on partition 0 of `topic`.
fn begin(client: &mut RawClient, id: &str, topic: &str) {
    find_coordinator(client, id);
    let (error, producer_id, epoch) = init(client, id, TIMEOUT_MS);
    assert_eq!(error, 0);
    assert_eq!(
        add_partitions(client, id, (producer_id, epoch), &[(topic, 0)]),
        vec![0]
    );
}

#[test]
fn list_transactions_filters_by_duration_and_id_pattern() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name("txn-list");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let [a1, a2, b1] = ["a1", "a2", "b1"].map(|suffix| format!("{topic}-{suffix}"));
    // Before the transactions start: their age is at most this long.
    let began = Instant::now();
    begin(&mut client, &a1, &topic);
    begin(&mut client, &b1, &topic);
    // a2 has a producer id but no transaction yet (Empty).
    find_coordinator(&mut client, &a2);
    assert_eq!(init(&mut client, &a2, TIMEOUT_MS).0, 0);
    let all = [a1.clone(), a2.clone(), b1.clone()];

    let prefix = format!("{topic}-a.*");
    assert_eq!(
        list_ids(&mut client, &[], -1, Some(&prefix)),
        (0, vec![a1.clone(), a2.clone()])
    );
    // The whole id must match, as Java's Matcher.matches.
    assert_eq!(list_ids(&mut client, &[], -1, Some("a1")), (0, vec![]));
    assert_eq!(
        list_ids(&mut client, &[], -1, Some(".*-b1")),
        (0, vec![b1.clone()])
    );
    assert_eq!(
        list_ids(&mut client, &["Ongoing"], -1, Some(&prefix)),
        (0, vec![a1.clone()])
    );
    // Empty pattern: no filter.
    let listed = list_ids(&mut client, &[], -1, Some(""));
    assert_eq!(listed.0, 0);
    assert!(all.iter().all(|id| listed.1.contains(id)), "{listed:?}");
    for invalid in ["(", "a)(b", "[z-a]"] {
        assert_eq!(
            list_ids(&mut client, &[], -1, Some(invalid)),
            (code(ResponseError::InvalidRegularExpression), vec![]),
            "{invalid}"
        );
    }

    // Duration: an hour-long filter lists no running transaction; an Empty id has no start
    // time (-1) and is always older, as in Kafka.
    let hour_ms = 3_600_000;
    assert_eq!(
        list_ids(
            &mut client,
            &["Ongoing"],
            hour_ms,
            Some(&format!("{topic}-.*"))
        ),
        (0, vec![])
    );
    assert_eq!(
        list_ids(&mut client, &[], hour_ms, Some(&format!("{topic}-.*"))),
        (0, vec![a2.clone()])
    );
    // Once both transactions are older than 300 ms they are listed.
    let duration_ms = 300;
    let listed = wait_until(WAIT, "transactions older than the filter", || {
        let listed = list_ids(&mut client, &["Ongoing"], duration_ms, None);
        (!listed.1.is_empty()).then_some(listed)
    });
    assert!(began.elapsed().as_millis() >= 300, "{:?}", began.elapsed());
    assert_eq!(listed, (0, vec![a1.clone(), b1.clone()]));
    // v0 has no duration or pattern.
    let request = kafka_protocol::messages::ListTransactionsRequest::default();
    let response = client.request(0, &request);
    assert_eq!(response.error_code, 0);
    assert_eq!(response.transaction_states.len(), 3, "{response:?}");
}
