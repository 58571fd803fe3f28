//! The transaction coordinator driven with raw requests against a real broker: transactional
//! ids get producer ids and epochs (each InitProducerId fences the previous instance), the
//! Kafka state table of AddPartitionsToTxn / EndTxn with its errors, KIP-890 verification of
//! transactional produces, timed-out transactions aborted by the coordinator, and the state
//! surviving a kill -9 of the broker.

use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, GroupId,
    ListTransactionsRequest, ProducerId, TransactionalId,
};
use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, code, describe, end_txn, find_coordinator, init, init_settled, kcat_values,
    produce_transactional, text, transactional_batch, wait_state, ADD_OFFSETS_VERSION, TIMEOUT_MS,
};
use sluice_integration_tests::{topic_name, Broker};

fn setup(broker: &Broker, test: &str) -> (RawClient, String, String) {
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name(test);
    assert_eq!(client.create_topic(&topic, 2, &[]), 0);
    let id = format!("{topic}-txn");
    find_coordinator(&mut client, &id);
    (client, topic, id)
}

#[test]
fn each_init_bumps_the_epoch_and_fences_the_previous_producer() {
    let broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "txn-fence");
    let (error, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    assert!(producer_id >= 0);
    let zombie = (producer_id, 0);
    assert_eq!(init(&mut client, &id, TIMEOUT_MS), (0, producer_id, 1));
    let current = (producer_id, 1);
    // The old instance can neither add partitions nor end a transaction.
    let fenced = code(ResponseError::ProducerFenced);
    assert_eq!(
        add_partitions(&mut client, &id, zombie, &[(&topic, 0)]),
        vec![fenced]
    );
    assert_eq!(end_txn(&mut client, &id, zombie, true), fenced);
    // Its transactional writes are refused: the partition is not in its transaction.
    let batch = transactional_batch(zombie, 0, &["zombie"]);
    assert_eq!(
        produce_transactional(&mut client, &id, &topic, batch),
        code(ResponseError::InvalidProducerEpoch)
    );
    assert_eq!(
        add_partitions(&mut client, &id, current, &[(&topic, 0)]),
        vec![0]
    );
    // Nothing the zombie sent is in the log.
    assert_eq!(client.fetch_all_from(&topic, 0, 0).len(), 0);
}

#[test]
fn bad_transactional_requests_get_kafkas_errors() {
    let broker = Broker::start_with(&["--transaction-max-timeout-ms", "100000"]);
    let (mut client, topic, id) = setup(&broker, "txn-bad");
    assert_eq!(
        init(&mut client, &id, 100_001).0,
        code(ResponseError::InvalidTransactionTimeout)
    );
    assert_eq!(
        init(&mut client, &id, 0).0,
        code(ResponseError::InvalidTransactionTimeout)
    );
    // Unknown id.
    assert_eq!(
        end_txn(&mut client, &id, (12345, 0), true),
        code(ResponseError::InvalidProducerIdMapping)
    );
    let (error, producer_id, epoch) = init(&mut client, &id, 100_000);
    assert_eq!((error, epoch), (0, 0));
    let producer = (producer_id, 0);
    // EndTxn with no transaction begun.
    assert_eq!(
        end_txn(&mut client, &id, producer, true),
        code(ResponseError::InvalidTxnState)
    );
    // Another producer id for the same transactional id.
    assert_eq!(
        add_partitions(&mut client, &id, (producer_id + 1, 0), &[(&topic, 0)]),
        vec![code(ResponseError::InvalidProducerIdMapping)]
    );
    // An unknown partition fails the request; the others are not attempted.
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0), (&topic, 7)]),
        vec![
            code(ResponseError::OperationNotAttempted),
            code(ResponseError::UnknownTopicOrPartition)
        ]
    );
    assert_eq!(describe(&mut client, &id).1, "Empty");
    // Commit, then abort of the same (completed) transaction.
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    assert_eq!(end_txn(&mut client, &id, producer, true), 0);
    wait_state(&mut client, &id, "CompleteCommit");
    assert_eq!(
        end_txn(&mut client, &id, producer, true),
        0,
        "a retried commit is OK"
    );
    assert_eq!(
        end_txn(&mut client, &id, producer, false),
        code(ResponseError::InvalidTxnState)
    );
    // Old versions say INVALID_PRODUCER_EPOCH for a fenced producer.
    let mut request = EndTxnRequest::default();
    request.transactional_id = TransactionalId(text(&id));
    request.producer_id = ProducerId(producer_id);
    request.producer_epoch = 9;
    assert_eq!(
        client.request(1, &request).error_code,
        code(ResponseError::InvalidProducerEpoch)
    );
    let mut unknown = DescribeTransactionsRequest::default();
    unknown.transactional_ids = vec![TransactionalId(text("never-used"))];
    let response = client.request(0, &unknown);
    let found = response.transaction_states[0].error_code;
    assert!(
        found == code(ResponseError::TransactionalIdNotFound)
            || found == code(ResponseError::NotCoordinator),
        "{found}"
    );
}

#[test]
fn a_transaction_commits_only_the_partitions_added_to_it() {
    let broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "txn-commit");
    let (_, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, epoch);
    // KIP-890: a transactional write before the partition is added is refused.
    let early = transactional_batch(producer, 0, &["early"]);
    assert_eq!(
        produce_transactional(&mut client, &id, &topic, early),
        code(ResponseError::InvalidTxnState)
    );
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    let mut offsets = AddOffsetsToTxnRequest::default();
    offsets.transactional_id = TransactionalId(text(&id));
    offsets.producer_id = ProducerId(producer_id);
    offsets.producer_epoch = epoch;
    offsets.group_id = GroupId(text("txn-group"));
    assert_eq!(client.request(ADD_OFFSETS_VERSION, &offsets).error_code, 0);
    let batch = transactional_batch(producer, 0, &["a", "b"]);
    assert_eq!(produce_transactional(&mut client, &id, &topic, batch), 0);
    let (error, state, described_epoch, partitions) = describe(&mut client, &id);
    assert_eq!(
        (error, state.as_str(), described_epoch),
        (0, "Ongoing", epoch)
    );
    assert_eq!(partitions.len(), 2, "{partitions:?}");
    assert!(partitions.contains(&(topic.clone(), 0)));
    assert!(partitions
        .iter()
        .any(|(name, _)| name == "__consumer_offsets"));
    let mut ongoing = ListTransactionsRequest::default();
    ongoing.state_filters = vec![text("Ongoing")];
    let listed = client.request(1, &ongoing);
    assert_eq!(listed.transaction_states.len(), 1, "{listed:?}");
    assert_eq!(listed.transaction_states[0].transactional_id.0.as_str(), id);
    assert_eq!(end_txn(&mut client, &id, producer, true), 0);
    let (_, _, _, partitions) = wait_state(&mut client, &id, "CompleteCommit");
    assert!(partitions.is_empty());
    // The next transaction starts fresh: partition 0 must be added again.
    let again = transactional_batch(producer, 2, &["c"]);
    assert_eq!(
        produce_transactional(&mut client, &id, &topic, again),
        code(ResponseError::InvalidTxnState)
    );
}

#[test]
fn the_coordinator_aborts_a_transaction_past_its_timeout() {
    // Transaction version 2 (the default): the fence and the abort each bump the epoch, as
    // Kafka's coordinator does at its own level even for a version 1 client.
    coordinator_aborts_past_timeout(&[], 2);
}

#[test]
fn the_coordinator_aborts_a_transaction_past_its_timeout_at_transaction_version_1() {
    coordinator_aborts_past_timeout(&["--transaction-version", "1"], 1);
}

fn coordinator_aborts_past_timeout(broker_args: &[&str], aborted_epoch: i16) {
    let mut args = vec!["--transaction-abort-interval-ms", "100"];
    args.extend_from_slice(broker_args);
    let broker = Broker::start_with(&args);
    let (mut client, topic, id) = setup(&broker, "txn-timeout");
    let (_, producer_id, _) = init(&mut client, &id, 500);
    let producer = (producer_id, 0);
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 1)]),
        vec![0]
    );
    let (_, _, epoch, partitions) = wait_state(&mut client, &id, "CompleteAbort");
    // Aborted with a bumped epoch: the timed-out producer is fenced.
    assert_eq!(epoch, aborted_epoch);
    assert!(partitions.is_empty());
    assert_eq!(
        end_txn(&mut client, &id, producer, true),
        code(ResponseError::ProducerFenced)
    );
    assert_eq!(
        init(&mut client, &id, 500),
        (0, producer_id, aborted_epoch + 1)
    );
}

#[test]
fn init_aborts_an_ongoing_transaction_before_granting_a_new_epoch() {
    let broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "txn-init-abort");
    let (_, producer_id, _) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!(
        add_partitions(&mut client, &id, (producer_id, 0), &[(&topic, 0)]),
        vec![0]
    );
    // The first answer is CONCURRENT_TRANSACTIONS (the abort is under way), then epoch 2:
    // 1 went to the abort's fence.
    assert_eq!(
        init(&mut client, &id, TIMEOUT_MS).0,
        code(ResponseError::ConcurrentTransactions)
    );
    assert_eq!(init_settled(&mut client, &id), (producer_id, 2));
    assert_eq!(describe(&mut client, &id).1, "Empty");
}

#[test]
fn transaction_state_survives_kill_9() {
    let mut broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "txn-restart");
    let (_, producer_id, _) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, 0);
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0), (&topic, 1)]),
        vec![0, 0]
    );
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    find_coordinator(&mut client, &id);
    let (_, state, epoch, partitions) = wait_state(&mut client, &id, "Ongoing");
    assert_eq!((state.as_str(), epoch), ("Ongoing", 0));
    assert_eq!(partitions, vec![(topic.clone(), 0), (topic.clone(), 1)]);
    // The producer carries on after the restart and commits.
    assert_eq!(end_txn(&mut client, &id, producer, true), 0);
    wait_state(&mut client, &id, "CompleteCommit");
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    find_coordinator(&mut client, &id);
    wait_state(&mut client, &id, "CompleteCommit");
    // Epochs continue from the log: never handed out twice.
    assert_eq!(init(&mut client, &id, TIMEOUT_MS), (0, producer_id, 1));
}

/// kill -9 right after EndTxn (the markers may not all be written yet) and mid-transaction:
/// after each restart the coordinator completes or keeps the transaction, and read_committed
/// readers see exactly the committed records.
#[test]
fn kill_9_after_commit_and_mid_transaction_keeps_exactly_the_committed_records() {
    let mut broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "txn-kill-commit");
    let (_, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, epoch);
    let mut sequence = 0;
    for round in 0..3 {
        assert_eq!(
            add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
            vec![0]
        );
        let first = format!("r{round}-a");
        let second = format!("r{round}-b");
        let batch = transactional_batch(producer, sequence, &[&first, &second]);
        sequence += 2;
        assert_eq!(produce_transactional(&mut client, &id, &topic, batch), 0);
        // Round 1 is aborted, the others committed; the broker dies right after the answer.
        assert_eq!(end_txn(&mut client, &id, producer, round != 1), 0);
        broker.kill9();
        broker.restart();
        client = RawClient::connect(&broker.bootstrap());
        find_coordinator(&mut client, &id);
        let done = if round == 1 {
            "CompleteAbort"
        } else {
            "CompleteCommit"
        };
        wait_state(&mut client, &id, done);
    }
    // A fourth transaction is left open by the crash, then aborted by the producer.
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    let batch = transactional_batch(producer, sequence, &["open"]);
    assert_eq!(produce_transactional(&mut client, &id, &topic, batch), 0);
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    find_coordinator(&mut client, &id);
    wait_state(&mut client, &id, "Ongoing");
    assert_eq!(end_txn(&mut client, &id, producer, false), 0);
    wait_state(&mut client, &id, "CompleteAbort");
    let committed: Vec<String> = ["r0-a", "r0-b", "r2-a", "r2-b"].map(String::from).to_vec();
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 0, "read_committed"),
        committed
    );
    let everything: Vec<String> = ["r0-a", "r0-b", "r1-a", "r1-b", "r2-a", "r2-b", "open"]
        .map(String::from)
        .to_vec();
    assert_eq!(
        kcat_values(&broker.bootstrap(), &topic, 0, "read_uncommitted"),
        everything
    );
}

#[test]
fn an_idle_transactional_id_expires_and_starts_over_with_a_new_producer_id() {
    let mut broker = Broker::start_with(&[
        "--transactional-id-expiration-ms",
        "500",
        "--transaction-abort-interval-ms",
        "100",
    ]);
    let (mut client, _topic, id) = setup(&broker, "txn-expire");
    let (error, producer_id, _) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!(error, 0);
    let not_found = code(ResponseError::TransactionalIdNotFound);
    sluice_integration_tests::wait_until(
        sluice_integration_tests::transactions::WAIT,
        "the id to expire",
        || (describe(&mut client, &id).0 == not_found).then_some(()),
    );
    // The tombstone is durable: still gone after a restart.
    broker.kill9();
    broker.restart();
    let mut client = RawClient::connect(&broker.bootstrap());
    find_coordinator(&mut client, &id);
    sluice_integration_tests::wait_until(
        sluice_integration_tests::transactions::WAIT,
        "the coordinator to load",
        || {
            let found = describe(&mut client, &id).0;
            (found != code(ResponseError::CoordinatorLoadInProgress)
                && found != code(ResponseError::NotCoordinator))
            .then_some(found)
        },
    );
    assert_eq!(describe(&mut client, &id).0, not_found);
    let (error, fresh_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    assert_ne!(fresh_id, producer_id);
}
