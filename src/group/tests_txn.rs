//! Transactional offset commits: pending until the marker, committed or dropped by it, the
//! same after a replay of the log, fenced producers refused, members validated as Kafka does.

use std::time::Duration;

use kafka_protocol::ResponseError;

use super::outcome::MemberRef;
use super::*;

const GROUP: &str = "eos";
const PRODUCER: i64 = 4_000;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: Duration::from_millis(0),
        group_size_max: 10,
        offsets_retention_ms: 60_000,
        consumer_heartbeat_interval: Duration::from_millis(5_000),
        consumer_session_timeout: Duration::from_millis(45_000),
    }
}

fn anonymous() -> MemberRef {
    MemberRef {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
    }
}

fn offset(partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: "in".into(),
        partition,
        committed: CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1_000,
        },
    }
}

fn txn(producer_epoch: i16, offsets: Vec<OffsetCommit>) -> TxnOffsetCommit {
    TxnOffsetCommit {
        producer_id: PRODUCER,
        producer_epoch,
        verification_guard: sluice_storage::VerificationGuard::NONE,
        member: anonymous(),
        offsets,
    }
}

/// (partition, offset or None, unstable) of "in" partitions 0 and 1.
fn view(coordinator: &GroupCoordinator, require_stable: bool) -> Vec<(i32, Option<i64>, bool)> {
    let wanted = [("in".to_string(), 0), ("in".to_string(), 1)];
    coordinator
        .fetch_offsets_stable(GROUP, Some(&wanted), require_stable)
        .unwrap()
        .into_iter()
        .map(|(_, partition, committed, error)| {
            let unstable = error == Some(ResponseError::UnstableOffsetCommit);
            (partition, committed.map(|c| c.offset), unstable)
        })
        .collect()
}

#[tokio::test]
async fn committed_transactions_become_visible_and_aborted_ones_never_do() {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = test_log::coordinator_over(config(), &log);
    let plain = coordinator.commit(GROUP, &anonymous(), vec![offset(0, 5)]);
    assert_eq!(plain.await, Ok(()));

    let first = coordinator.commit_transactional(GROUP, txn(0, vec![offset(0, 10), offset(1, 3)]));
    assert_eq!(first.await, Ok(()));
    // Pending: invisible; a stable fetch is told to retry.
    assert_eq!(
        view(&coordinator, false),
        [(0, Some(5), false), (1, None, false)]
    );
    assert_eq!(view(&coordinator, true), [(0, None, true), (1, None, true)]);
    let marker = log.append_marker(0, PRODUCER, 0, true);
    coordinator.complete_transaction(0, PRODUCER, true, marker);
    assert_eq!(
        view(&coordinator, true),
        [(0, Some(10), false), (1, Some(3), false)]
    );

    let second = coordinator.commit_transactional(GROUP, txn(0, vec![offset(0, 20)]));
    assert_eq!(second.await, Ok(()));
    assert_eq!(
        view(&coordinator, true),
        [(0, None, true), (1, Some(3), false)]
    );
    let marker = log.append_marker(0, PRODUCER, 0, false);
    coordinator.complete_transaction(0, PRODUCER, false, marker);
    // Completing again (a retried marker) changes nothing.
    coordinator.complete_transaction(0, PRODUCER, true, marker);
    assert_eq!(
        view(&coordinator, true),
        [(0, Some(10), false), (1, Some(3), false)]
    );

    // A new leader replaying the log sees the same.
    let reopened = test_log::coordinator_over(config(), &log);
    assert_eq!(
        view(&reopened, true),
        [(0, Some(10), false), (1, Some(3), false)]
    );
}

#[tokio::test]
async fn a_replay_keeps_open_transactions_pending_and_a_later_plain_commit_wins() {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = test_log::coordinator_over(config(), &log);
    let pending = coordinator.commit_transactional(GROUP, txn(2, vec![offset(0, 10)]));
    assert_eq!(pending.await, Ok(()));
    // A plain commit written after the transactional record is newer: the commit marker
    // does not bring the transaction's older offset back (Kafka's record-offset rule).
    let plain = coordinator.commit(GROUP, &anonymous(), vec![offset(0, 15)]);
    assert_eq!(plain.await, Ok(()));

    let reopened = test_log::coordinator_over(config(), &log);
    assert_eq!(view(&reopened, true), [(0, None, true), (1, None, false)]);
    assert_eq!(
        view(&reopened, false),
        [(0, Some(15), false), (1, None, false)]
    );
    let marker = log.append_marker(0, PRODUCER, 2, true);
    reopened.complete_transaction(0, PRODUCER, true, marker);
    assert_eq!(
        view(&reopened, true),
        [(0, Some(15), false), (1, None, false)]
    );
    let again = test_log::coordinator_over(config(), &log);
    assert_eq!(view(&again, true), [(0, Some(15), false), (1, None, false)]);
}

#[tokio::test]
async fn a_marker_arriving_while_the_partition_loads_is_applied_after_the_load() {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = test_log::coordinator_over(config(), &log);
    let pending = coordinator.commit_transactional(GROUP, txn(0, vec![offset(1, 8)]));
    assert_eq!(pending.await, Ok(()));

    let next = GroupCoordinator::new(config(), 1);
    next.attach_log(Box::new(test_log::Shared(log.clone())));
    assert!(next.begin_load(0, 1));
    // The replay read the log before the marker was written...
    let mut loaded = HashMap::new();
    offset_records::replay(log.bytes(0), &mut loaded).unwrap();
    let marker = log.append_marker(0, PRODUCER, 0, true);
    next.complete_transaction(0, PRODUCER, true, marker);
    next.finish_load(0, 1, loaded);
    assert_eq!(view(&next, true), [(0, None, false), (1, Some(8), false)]);
    // A partition this node does not lead ignores markers.
    next.complete_transaction(5, PRODUCER, false, marker + 1);
}

#[tokio::test]
async fn a_fenced_producer_commits_nothing() {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = test_log::coordinator_over(config(), &log);
    let current = coordinator.commit_transactional(GROUP, txn(3, vec![offset(0, 1)]));
    assert_eq!(current.await, Ok(()));
    let zombie = coordinator.commit_transactional(GROUP, txn(2, vec![offset(0, 99)]));
    assert_eq!(zombie.await, Err(ResponseError::InvalidProducerEpoch));
    let marker = log.append_marker(0, PRODUCER, 3, true);
    coordinator.complete_transaction(0, PRODUCER, true, marker);
    assert_eq!(
        view(&coordinator, true),
        [(0, Some(1), false), (1, None, false)]
    );
    // Sequences continue across commits of one epoch (the log checks them).
    let next = coordinator.commit_transactional(GROUP, txn(3, vec![offset(0, 2), offset(1, 2)]));
    assert_eq!(next.await, Ok(()));
    let more = coordinator.commit_transactional(GROUP, txn(3, vec![offset(0, 3)]));
    assert_eq!(more.await, Ok(()));
}

#[tokio::test]
async fn members_are_checked_only_when_named() {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = test_log::coordinator_over(config(), &log);
    let unknown_generation = TxnOffsetCommit {
        member: MemberRef {
            member_id: "m".into(),
            group_instance_id: None,
            generation_id: 3,
        },
        ..txn(0, vec![offset(0, 1)])
    };
    // No such group and a generation: Kafka's ILLEGAL_GENERATION.
    let refused = coordinator.commit_transactional(GROUP, unknown_generation.clone());
    assert_eq!(refused.await, Err(ResponseError::IllegalGeneration));
    // An anonymous commit creates the (simple) group; then a named unknown member is refused.
    let created = coordinator.commit_transactional(GROUP, txn(0, vec![offset(0, 1)]));
    assert_eq!(created.await, Ok(()));
    let refused = coordinator.commit_transactional(GROUP, unknown_generation);
    assert_eq!(refused.await, Err(ResponseError::UnknownMemberId));
    let empty_group_id = coordinator.commit_transactional("", txn(0, Vec::new()));
    assert_eq!(empty_group_id.await, Err(ResponseError::InvalidGroupId));
    // Deleting the group writes tombstones for pending offsets too.
    assert_eq!(coordinator.delete(GROUP).await, Ok(()));
    let reopened = test_log::coordinator_over(config(), &log);
    assert_eq!(view(&reopened, true), [(0, None, false), (1, None, false)]);
}
