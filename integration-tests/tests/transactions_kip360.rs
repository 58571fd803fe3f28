//! InitProducerId naming the producer id and epoch the client already has (KIP-360, v3+), as
//! Kafka's `TransactionCoordinator.handleInitProducerId` answers it: the named epoch is bumped
//! (a producer recovering from an abortable error), a retry whose answer was lost gets the
//! same answer again, any other epoch is fenced; an idempotent producer always gets a fresh id.

use kafka_protocol::ResponseError;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::transactions::{
    add_partitions, code, end_txn, end_txn_v2, find_coordinator, init, init_as, wait_state,
    TIMEOUT_MS, WAIT,
};
use sluice_integration_tests::{topic_name, wait_until, Broker};

/// The first version with producer id and epoch, and the first that says PRODUCER_FENCED.
const KIP_360_VERSION: i16 = 3;
const FENCED_VERSION: i16 = 4;

fn setup(broker: &Broker, test: &str) -> (RawClient, String, String) {
    let mut client = RawClient::connect(&broker.bootstrap());
    let topic = topic_name(test);
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let id = format!("{topic}-txn");
    find_coordinator(&mut client, &id);
    (client, topic, id)
}

/// InitProducerId v4 retried while the coordinator completes an abort.
fn init_settled_as(client: &mut RawClient, id: &str, producer: (i64, i16)) -> (i16, i64, i16) {
    wait_until(WAIT, "InitProducerId", || {
        let answer = init_as(client, Some(id), producer, FENCED_VERSION);
        (answer.0 != code(ResponseError::ConcurrentTransactions)).then_some(answer)
    })
}

#[test]
fn the_named_epoch_is_bumped_a_lost_answer_is_repeated_and_others_are_fenced() {
    let broker = Broker::start();
    let (mut client, _, id) = setup(&broker, "kip360");
    let (error, producer_id, epoch) = init(&mut client, &id, TIMEOUT_MS);
    assert_eq!((error, epoch), (0, 0));
    let id = Some(id.as_str());
    let fenced = code(ResponseError::ProducerFenced);

    // The producer recovers from an abortable error: its epoch is bumped, not fenced.
    let bumped = (0, producer_id, 1);
    assert_eq!(init_as(&mut client, id, (producer_id, 0), 4), bumped);
    // Its answer was lost: the retry gets the same answer, no second bump.
    assert_eq!(init_as(&mut client, id, (producer_id, 0), 4), bumped);
    assert_eq!(
        init_as(&mut client, id, (producer_id, 1), 4),
        (0, producer_id, 2)
    );
    for stale in [(producer_id, 0), (producer_id, 3), (producer_id + 1, 2)] {
        assert_eq!(
            init_as(&mut client, id, stale, FENCED_VERSION),
            (fenced, -1, -1),
            "{stale:?}"
        );
    }
    // Before v4 the same answer is INVALID_PRODUCER_EPOCH.
    assert_eq!(
        init_as(&mut client, id, (producer_id, 0), KIP_360_VERSION),
        (code(ResponseError::InvalidProducerEpoch), -1, -1)
    );
    // A new instance (no producer id) fences the old one's retry too.
    assert_eq!(
        init_as(&mut client, id, (-1, -1), FENCED_VERSION),
        (0, producer_id, 3)
    );
    assert_eq!(
        init_as(&mut client, id, (producer_id, 2), FENCED_VERSION),
        (fenced, -1, -1)
    );
    // An id without an epoch is malformed.
    assert_eq!(
        init_as(&mut client, id, (producer_id, -1), FENCED_VERSION),
        (code(ResponseError::InvalidRequest), -1, -1)
    );
}

#[test]
fn kip_360_after_a_version_1_abort_a_version_2_end_and_a_fenced_transaction() {
    let broker = Broker::start();
    let (mut client, topic, id) = setup(&broker, "kip360-ends");
    let (_, producer_id, _) = init(&mut client, &id, TIMEOUT_MS);
    let producer = (producer_id, 0);
    // Version 1: the client aborts (EndTxn v3), then bumps its epoch with InitProducerId.
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    assert_eq!(end_txn(&mut client, &id, producer, false), 0);
    wait_state(&mut client, &id, "CompleteAbort");
    assert_eq!(
        init_settled_as(&mut client, &id, producer),
        (0, producer_id, 1)
    );

    // Version 2: EndTxn v5 already moved the producer to the next epoch; InitProducerId
    // continues from that one, and the epoch before it is fenced.
    assert_eq!(
        end_txn_v2(&mut client, &id, (producer_id, 1), false),
        (0, producer_id, 2)
    );
    wait_state(&mut client, &id, "CompleteAbort");
    let fenced = code(ResponseError::ProducerFenced);
    assert_eq!(
        init_as(&mut client, Some(&id), (producer_id, 1), FENCED_VERSION),
        (fenced, -1, -1)
    );
    assert_eq!(
        init_settled_as(&mut client, &id, (producer_id, 2)),
        (0, producer_id, 3)
    );

    // A transaction still ongoing at the coordinator is fenced and aborted first
    // (CONCURRENT_TRANSACTIONS); the retry then finds the epoch moved on by the fence.
    let producer = (producer_id, 3);
    assert_eq!(
        add_partitions(&mut client, &id, producer, &[(&topic, 0)]),
        vec![0]
    );
    assert_eq!(
        init_as(&mut client, Some(&id), producer, FENCED_VERSION),
        (code(ResponseError::ConcurrentTransactions), -1, -1)
    );
    assert_eq!(
        init_settled_as(&mut client, &id, producer),
        (fenced, -1, -1)
    );
    // A new instance takes over.
    assert_eq!(init(&mut client, &id, TIMEOUT_MS), (0, producer_id, 5));
}

#[test]
fn an_idempotent_producer_naming_its_id_gets_a_fresh_one() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let (error, first, epoch) = init_as(&mut client, None, (-1, -1), FENCED_VERSION);
    assert_eq!((error, epoch), (0, 0));
    // Kafka never bumps an idempotent producer's epoch here (the client does that itself).
    let (error, second, epoch) = init_as(&mut client, None, (first, 0), FENCED_VERSION);
    assert_eq!((error, epoch), (0, 0));
    assert_ne!(second, first);
    let (error, third, epoch) = init_as(&mut client, None, (first, 7), KIP_360_VERSION);
    assert_eq!((error, epoch), (0, 0));
    assert!(
        third != first && third != second,
        "{first} {second} {third}"
    );
    assert_eq!(
        init_as(&mut client, None, (-1, 0), FENCED_VERSION),
        (code(ResponseError::InvalidRequest), -1, -1)
    );
}
