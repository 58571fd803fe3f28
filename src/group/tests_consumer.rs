//! KIP-848 consumer groups under tokio's paused clock: joining, convergence of the target
//! assignment, revocation before assignment, leaving, session and revocation timeouts, epoch
//! fencing, static members, assignors, topic growth, offsets, and the classic/consumer split.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use super::assignor::{Assignment, TopicMetadata};
use super::consumer_member::as_owned;
use super::consumer_outcome::{ConsumerHeartbeat, ConsumerHeartbeatOutcome};
use super::outcome::{JoinRequest, MemberRef};
use super::*;

const GROUP: &str = "cgroup";
const TOPIC: &str = "t";
const TOPIC_ID: Uuid = Uuid::from_u128(0xABCD);
const SESSION: Duration = Duration::from_millis(45_000);
const REBALANCE_MS: i32 = 30_000;

struct Fixture {
    coordinator: Arc<GroupCoordinator>,
    log: Arc<super::test_log::MemoryLog>,
    config: GroupConfig,
    topics: Mutex<BTreeMap<String, TopicMetadata>>,
}

fn fixture() -> Fixture {
    let config = GroupConfig {
        initial_rebalance_delay: Duration::from_millis(0),
        group_size_max: 10,
        offsets_retention_ms: 60_000,
        consumer_heartbeat_interval: Duration::from_millis(5_000),
        consumer_session_timeout: SESSION,
    };
    let log = Arc::new(super::test_log::MemoryLog::default());
    let coordinator = Arc::new(super::test_log::coordinator_over(config.clone(), &log));
    let topics = BTreeMap::from([(
        TOPIC.to_string(),
        TopicMetadata {
            id: TOPIC_ID,
            partition_count: 12,
        },
    )]);
    Fixture {
        coordinator,
        log,
        config,
        topics: Mutex::new(topics),
    }
}

/// A consumer as the Java client behaves: it adopts each assignment it is sent at once
/// (dropping revoked partitions, taking new ones) and reports what it owns.
struct Client {
    member_id: String,
    instance_id: Option<String>,
    epoch: i32,
    owned: Assignment,
    assignor: Option<&'static str>,
}

fn client(member_id: &str) -> Client {
    Client {
        member_id: member_id.to_string(),
        instance_id: None,
        epoch: 0,
        owned: Assignment::new(),
        assignor: None,
    }
}

fn request(c: &Client) -> ConsumerHeartbeat {
    let joining = c.epoch == 0;
    ConsumerHeartbeat {
        member_id: c.member_id.clone(),
        member_epoch: c.epoch,
        instance_id: c.instance_id.clone(),
        rack_id: None,
        rebalance_timeout_ms: if joining { REBALANCE_MS } else { -1 },
        subscribed_topic_names: joining.then(|| vec![TOPIC.to_string()]),
        subscribed_topic_regex: None,
        server_assignor: c.assignor.map(str::to_string),
        owned: Some(as_owned(&c.owned)),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
    }
}

fn send(f: &Fixture, request: ConsumerHeartbeat) -> Result<ConsumerHeartbeatOutcome, ApiError> {
    let topics = f.topics.lock().unwrap().clone();
    let lookup = |name: &str| topics.get(name).copied();
    f.coordinator.consumer_heartbeat(GROUP, request, 1, &lookup)
}

fn beat(f: &Fixture, c: &mut Client) -> ConsumerHeartbeatOutcome {
    let outcome = send(f, request(c)).unwrap_or_else(|e| panic!("{}: {e:?}", c.member_id));
    c.member_id = outcome.member_id.clone();
    c.epoch = outcome.member_epoch;
    if let Some(assignment) = &outcome.assignment {
        c.owned = assignment.clone();
    }
    outcome
}

fn partitions(c: &Client) -> BTreeSet<i32> {
    c.owned.get(&TOPIC_ID).cloned().unwrap_or_default()
}

fn code(result: Result<ConsumerHeartbeatOutcome, ApiError>) -> ResponseError {
    result.expect_err("an error").code
}

/// No partition is owned by two clients; returns how many are owned in all.
fn assert_exclusive(clients: &[&Client]) -> usize {
    let mut seen = BTreeSet::new();
    for c in clients {
        for p in partitions(c) {
            assert!(seen.insert(p), "partition {p} owned twice");
        }
    }
    seen.len()
}

/// Heartbeats every client in turn until the group is Stable, checking exclusivity after
/// every heartbeat. Returns the rounds it took.
fn converge(f: &Fixture, clients: &mut [&mut Client]) -> usize {
    for round in 1..=10 {
        for index in 0..clients.len() {
            beat(f, clients[index]);
            let view: Vec<&Client> = clients.iter().map(|c| &**c).collect();
            assert_exclusive(&view);
        }
        if state(f) == "Stable" {
            return round;
        }
    }
    panic!("not stable after 10 rounds: {}", state(f));
}

fn state(f: &Fixture) -> &'static str {
    f.coordinator.consumer_describe(GROUP).unwrap().0.state
}

fn group_epoch(f: &Fixture) -> i32 {
    let slot = f.coordinator.slot_for_test(GROUP).unwrap();
    let mut group = lock_group(&slot);
    group.consumer().unwrap().group_epoch()
}

#[tokio::test(start_paused = true)]
async fn a_member_joins_and_gets_every_partition() {
    let f = fixture();
    // v0: the coordinator makes the member id up.
    let mut first = request(&client(""));
    first.member_id.clear();
    let topics = f.topics.lock().unwrap().clone();
    let lookup = |name: &str| topics.get(name).copied();
    let outcome = f
        .coordinator
        .consumer_heartbeat(GROUP, first.clone(), 0, &lookup)
        .unwrap();
    assert!(
        Uuid::parse_str(&outcome.member_id).is_ok(),
        "{}",
        outcome.member_id
    );
    assert_eq!(outcome.member_epoch, 1);
    assert_eq!(outcome.heartbeat_interval_ms, 5_000);
    let all: BTreeSet<i32> = (0..12).collect();
    assert_eq!(
        outcome.assignment,
        Some(Assignment::from([(TOPIC_ID, all)]))
    );
    assert_eq!(state(&f), "Stable");
    // v1: the client must name itself.
    let refused = f.coordinator.consumer_heartbeat(GROUP, first, 1, &lookup);
    let error = refused.unwrap_err();
    assert_eq!(error.code, ResponseError::InvalidRequest);
    assert_eq!(error.message.as_deref(), Some("MemberId can't be empty."));
    let listing = f.coordinator.list();
    assert_eq!(listing.len(), 1);
    assert_eq!(
        (
            listing[0].group_type,
            listing[0].state,
            listing[0].protocol_type.as_str()
        ),
        (GROUP_TYPE_CONSUMER, "Stable", "consumer")
    );
}

#[tokio::test(start_paused = true)]
async fn three_members_converge_to_a_balanced_assignment() {
    let f = fixture();
    let (mut a, mut b, mut c) = (client("a"), client("b"), client("c"));
    beat(&f, &mut a);
    assert_eq!(partitions(&a).len(), 12);
    beat(&f, &mut b);
    beat(&f, &mut c);
    assert_eq!(group_epoch(&f), 3);
    let rounds = converge(&f, &mut [&mut a, &mut b, &mut c]);
    assert!(rounds <= 3, "took {rounds} rounds");
    for member in [&a, &b, &c] {
        assert_eq!(partitions(member).len(), 4, "{}", member.member_id);
        assert_eq!(member.epoch, 3);
    }
    assert_eq!(assert_exclusive(&[&a, &b, &c]), 12);
    let (description, names) = f.coordinator.consumer_describe(GROUP).unwrap();
    assert_eq!(
        (description.group_epoch, description.assignment_epoch),
        (3, 3)
    );
    assert_eq!(description.assignor_name, "uniform");
    assert_eq!(names[&TOPIC_ID], TOPIC);
    for member in &description.members {
        assert_eq!(member.assignment, member.target_assignment);
    }
}

#[tokio::test(start_paused = true)]
async fn partitions_are_revoked_before_they_are_given_to_another_member() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    // b joins: the target splits 6/6, but a still owns everything.
    let outcome = beat(&f, &mut b);
    assert_eq!(outcome.member_epoch, 2);
    assert_eq!(outcome.assignment, Some(Assignment::new()));
    // a keeps owning all 12 in this heartbeat (it did not process the revocation yet).
    let mut stale = request(&a);
    stale.owned = Some(as_owned(&a.owned));
    let told = send(&f, stale).unwrap();
    assert_eq!(
        told.member_epoch, 1,
        "a stays at its epoch while it revokes"
    );
    let kept = told.assignment.expect("a is told what it keeps");
    assert_eq!(kept[&TOPIC_ID].len(), 6);
    // b heartbeats: the six are still a's.
    assert_eq!(beat(&f, &mut b).assignment, None);
    assert!(partitions(&b).is_empty());
    assert_eq!(state(&f), "Reconciling");
    // a revokes and says so: it moves to epoch 2; then b gets the six.
    a.owned = kept;
    let outcome = beat(&f, &mut a);
    assert_eq!(outcome.member_epoch, 2);
    beat(&f, &mut b);
    assert_eq!(partitions(&b).len(), 6);
    assert_eq!(assert_exclusive(&[&a, &b]), 12);
    assert_eq!(state(&f), "Stable");
}

#[tokio::test(start_paused = true)]
async fn a_leaving_member_hands_its_partitions_over() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    let epoch = group_epoch(&f);
    let mut leave = request(&b);
    leave.member_epoch = -1;
    let left = send(&f, leave.clone()).unwrap();
    assert_eq!((left.member_id.as_str(), left.member_epoch), ("b", -1));
    assert_eq!(group_epoch(&f), epoch + 1);
    beat(&f, &mut a);
    assert_eq!(partitions(&a).len(), 12);
    assert_eq!(state(&f), "Stable");
    // Leaving twice: b is unknown now; so is its heartbeat.
    assert_eq!(code(send(&f, leave)), ResponseError::UnknownMemberId);
    assert_eq!(code(send(&f, request(&b))), ResponseError::UnknownMemberId);
    // The last member leaving empties the group.
    let mut leave = request(&a);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    assert_eq!(state(&f), "Empty");
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_is_fenced_after_the_session_timeout() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    // a keeps heartbeating, b goes silent.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        beat(&f, &mut a);
    }
    assert_eq!(
        f.coordinator
            .consumer_describe(GROUP)
            .unwrap()
            .0
            .members
            .len(),
        2
    );
    tokio::time::sleep(Duration::from_millis(6_000)).await;
    let members = f.coordinator.consumer_describe(GROUP).unwrap().0.members;
    assert_eq!(members.len(), 1, "b fenced after 45 s of silence");
    beat(&f, &mut a);
    assert_eq!(partitions(&a).len(), 12);
    assert_eq!(code(send(&f, request(&b))), ResponseError::UnknownMemberId);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_does_not_revoke_is_fenced_after_its_rebalance_timeout() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    // a is asked to revoke but keeps reporting all 12 while heartbeating.
    let all = a.owned.clone();
    for _ in 0..6 {
        let mut stale = request(&a);
        stale.owned = Some(as_owned(&all));
        send(&f, stale).unwrap();
        tokio::time::sleep(Duration::from_millis(5_000)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let mut stale = request(&a);
    stale.owned = Some(as_owned(&all));
    assert_eq!(code(send(&f, stale)), ResponseError::UnknownMemberId);
    beat(&f, &mut b);
    assert_eq!(partitions(&b).len(), 12);
}

#[tokio::test(start_paused = true)]
async fn wrong_epochs_are_fenced_and_a_lost_response_is_forgiven() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    assert_eq!((a.epoch, b.epoch), (2, 2));
    let mut ahead = request(&a);
    ahead.member_epoch = 5;
    let error = send(&f, ahead).unwrap_err();
    assert_eq!(error.code, ResponseError::FencedMemberEpoch);
    assert!(error.message.unwrap().contains("(5)"));
    // The previous epoch with owned partitions inside the assignment: the response with the
    // new epoch was lost; the member is told its epoch again.
    let mut late = request(&a);
    late.member_epoch = 1;
    let outcome = send(&f, late).unwrap();
    assert_eq!(outcome.member_epoch, 2);
    // The previous epoch claiming a partition it does not have: fenced.
    let mut late = request(&a);
    late.member_epoch = 1;
    late.owned = Some(vec![(TOPIC_ID, (0..12).collect())]);
    assert_eq!(code(send(&f, late)), ResponseError::FencedMemberEpoch);
    // Older still: fenced.
    let mut old = request(&a);
    old.member_epoch = -3;
    assert_eq!(code(send(&f, old)), ResponseError::InvalidRequest);
    // A fenced member rejoins with epoch 0 and the same id, owning nothing.
    a.epoch = 0;
    a.owned.clear();
    beat(&f, &mut a);
    converge(&f, &mut [&mut a, &mut b]);
    assert_eq!(assert_exclusive(&[&a, &b]), 12);
}

#[tokio::test(start_paused = true)]
async fn the_range_assignor_is_used_when_members_ask_for_it() {
    let f = fixture();
    let (mut a, mut b, mut c) = (client("a"), client("b"), client("c"));
    for member in [&mut a, &mut b, &mut c] {
        member.assignor = Some("range");
        beat(&f, member);
    }
    converge(&f, &mut [&mut a, &mut b, &mut c]);
    assert_eq!(partitions(&a), BTreeSet::from([0, 1, 2, 3]));
    assert_eq!(partitions(&b), BTreeSet::from([4, 5, 6, 7]));
    assert_eq!(partitions(&c), BTreeSet::from([8, 9, 10, 11]));
    let description = f.coordinator.consumer_describe(GROUP).unwrap().0;
    assert_eq!(description.assignor_name, "range");
    let mut sticky = client("d");
    sticky.assignor = Some("sticky");
    let error = send(&f, request(&sticky)).unwrap_err();
    assert_eq!(error.code, ResponseError::UnsupportedAssignor);
    assert_eq!(
        error.message.as_deref(),
        Some("ServerAssignor sticky is not supported. Supported assignors: uniform, range.")
    );
}

#[tokio::test(start_paused = true)]
async fn new_partitions_bump_the_group_epoch_and_get_assigned() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    let epoch = group_epoch(&f);
    f.topics.lock().unwrap().insert(
        TOPIC.to_string(),
        TopicMetadata {
            id: TOPIC_ID,
            partition_count: 16,
        },
    );
    beat(&f, &mut a);
    assert_eq!(group_epoch(&f), epoch + 1);
    converge(&f, &mut [&mut a, &mut b]);
    assert_eq!(assert_exclusive(&[&a, &b]), 16);
    assert_eq!((partitions(&a).len(), partitions(&b).len()), (8, 8));
}

#[tokio::test(start_paused = true)]
async fn a_static_member_rejoins_with_its_partitions_without_a_new_epoch() {
    let f = fixture();
    let (mut a, mut b) = (client("a"), client("b1"));
    b.instance_id = Some("instance-b".into());
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    let before = partitions(&b);
    let epoch = group_epoch(&f);
    // A new process with the same instance id while b1 is still there: refused.
    let mut b2 = client("b2");
    b2.instance_id = Some("instance-b".into());
    assert_eq!(
        code(send(&f, request(&b2))),
        ResponseError::UnreleasedInstanceId
    );
    // b1 leaves for now (epoch -2); b2 takes its place and its partitions.
    let mut leave = request(&b);
    leave.member_epoch = -2;
    assert_eq!(send(&f, leave).unwrap().member_epoch, -2);
    let outcome = beat(&f, &mut b2);
    assert_eq!(outcome.member_epoch, epoch);
    assert_eq!(partitions(&b2), before);
    assert_eq!(group_epoch(&f), epoch, "no rebalance");
    // b1 is fenced by b2.
    assert_eq!(code(send(&f, request(&b))), ResponseError::FencedInstanceId);
    assert_eq!(state(&f), "Stable");
}

/// Real time: the offset store's writer is a thread, and a paused clock would jump past the
/// session timeout while a commit waits for it.
#[tokio::test]
async fn commits_and_fetches_of_consumer_groups_check_member_epochs() {
    let f = fixture();
    let mut a = client("a");
    beat(&f, &mut a);
    let commit = |offset| OffsetCommit {
        topic: TOPIC.into(),
        partition: 0,
        committed: CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 1,
        },
    };
    let member = |id: &str, epoch| MemberRef {
        member_id: id.into(),
        group_instance_id: None,
        generation_id: epoch,
    };
    let groups = &f.coordinator;
    assert_eq!(
        groups.commit(GROUP, &member("a", 0), vec![commit(5)]).await,
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        groups.commit(GROUP, &member("x", 1), vec![commit(5)]).await,
        Err(ResponseError::UnknownMemberId)
    );
    // Not empty: an admin-style commit (epoch -1) is refused.
    assert_eq!(
        groups.commit(GROUP, &member("", -1), vec![commit(5)]).await,
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        groups.commit(GROUP, &member("a", 1), vec![commit(7)]).await,
        Ok(())
    );
    let fetched = groups.fetch_offsets(GROUP, None).unwrap();
    assert_eq!(fetched.len(), 1);
    assert_eq!(fetched[0].2.as_ref().map(|c| c.offset), Some(7));
    assert_eq!(groups.check_fetch_member(GROUP, Some("a"), 1), Ok(()));
    assert_eq!(groups.check_fetch_member(GROUP, None, -1), Ok(()));
    assert_eq!(
        groups.check_fetch_member(GROUP, Some("a"), 3),
        Err(ResponseError::StaleMemberEpoch)
    );
    assert_eq!(
        groups.check_fetch_member(GROUP, Some("x"), 1),
        Err(ResponseError::UnknownMemberId)
    );
    // Subscribed topics' offsets are not deleted while the group has members.
    let deleted = groups.delete_offsets(GROUP, &[(TOPIC.into(), 0)]).await;
    assert_eq!(
        deleted,
        Ok(vec![Err(ResponseError::GroupSubscribedToTopic)])
    );
    assert_eq!(
        groups.delete(GROUP).await,
        Err(ResponseError::NonEmptyGroup)
    );
    let mut leave = request(&a);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    assert_eq!(
        groups.commit(GROUP, &member("", -1), vec![commit(9)]).await,
        Ok(())
    );
    assert_eq!(groups.delete(GROUP).await, Ok(()));
}

fn classic_join(member_id: &str) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), bytes::Bytes::from_static(b"m"))],
        require_known_member_id: false,
        skip_assignment_supported: true,
    }
}

#[tokio::test(start_paused = true)]
async fn a_group_id_is_either_classic_or_consumer() {
    let f = fixture();
    let mut a = client("a");
    beat(&f, &mut a);
    // Classic APIs on a consumer group.
    let joined = f.coordinator.join(GROUP, classic_join("")).await;
    assert_eq!(joined.error, Some(ResponseError::InconsistentGroupProtocol));
    assert_eq!(
        f.coordinator.describe(GROUP),
        Err(ResponseError::GroupIdNotFound)
    );
    assert_eq!(
        f.coordinator.heartbeat(
            GROUP,
            &MemberRef {
                member_id: "a".into(),
                group_instance_id: None,
                generation_id: 1,
            }
        ),
        Err(ResponseError::UnknownMemberId)
    );
    // Once empty, the id may become a classic group, which then refuses consumer members.
    let mut leave = request(&a);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    let joined = f.coordinator.join(GROUP, classic_join("")).await;
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation_id, 1);
    let error = send(&f, request(&client("b"))).unwrap_err();
    assert_eq!(error.code, ResponseError::GroupIdNotFound);
    assert_eq!(
        error.message.as_deref(),
        Some("Group cgroup is not a consumer group.")
    );
    let described = f.coordinator.consumer_describe(GROUP).unwrap_err();
    assert_eq!(described.code, ResponseError::GroupIdNotFound);
    assert_eq!(f.coordinator.list()[0].group_type, GROUP_TYPE_CLASSIC);
    let missing = f.coordinator.consumer_describe("missing").unwrap_err();
    assert_eq!(missing.code, ResponseError::GroupIdNotFound);
}

#[tokio::test(start_paused = true)]
async fn heartbeats_that_break_kafkas_rules_are_invalid_requests() {
    let f = fixture();
    type Change = Box<dyn Fn(&mut ConsumerHeartbeat)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|r| r.rebalance_timeout_ms = -1),
            "RebalanceTimeoutMs must be provided in first request.",
        ),
        (
            Box::new(|r| r.owned = None),
            "TopicPartitions must be empty when (re-)joining.",
        ),
        (
            Box::new(|r| r.subscribed_topic_names = None),
            "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
        ),
        (
            Box::new(|r| r.instance_id = Some(String::new())),
            "InstanceId can't be empty.",
        ),
        (
            Box::new(|r| {
                r.member_epoch = -2;
                r.instance_id = None;
            }),
            "InstanceId can't be null.",
        ),
        (
            Box::new(|r| r.subscribed_topic_regex = Some("t.*".into())),
            "SubscribedTopicRegex is not supported by this broker; subscribe by topic names.",
        ),
    ];
    for (change, message) in cases {
        let mut bad = request(&client("a"));
        change(&mut bad);
        let error = send(&f, bad).unwrap_err();
        assert_eq!(error.code, ResponseError::InvalidRequest, "{message}");
        assert_eq!(error.message.as_deref(), Some(message));
    }
    // An unknown member's heartbeat in a group that does not exist.
    let mut unknown = request(&client("z"));
    unknown.member_epoch = 4;
    assert_eq!(code(send(&f, unknown)), ResponseError::UnknownMemberId);
}

/// The coordinator a new leader of the offsets partition builds from the same log.
fn restart(f: &mut Fixture) {
    f.coordinator = Arc::new(super::test_log::coordinator_over(f.config.clone(), &f.log));
}

#[tokio::test(start_paused = true)]
async fn members_carry_on_after_the_coordinator_restarts() {
    let mut f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    let (a_owned, b_owned) = (a.owned.clone(), b.owned.clone());
    assert_eq!((a.epoch, b.epoch), (2, 2));
    restart(&mut f);
    let (description, _) = f.coordinator.consumer_describe(GROUP).unwrap();
    assert_eq!(description.state, "Stable");
    assert_eq!(
        (description.group_epoch, description.assignment_epoch),
        (2, 2)
    );
    let members: Vec<(&str, i32)> = description
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.member_epoch))
        .collect();
    assert_eq!(members, [("a", 2), ("b", 2)]);
    assert_eq!(description.members[0].assignment, a_owned);
    assert_eq!(description.members[0].client_host, "/127.0.0.1");
    // Both heartbeat at their epochs: no fencing, no new epoch, the same partitions.
    for c in [&mut a, &mut b] {
        let outcome = beat(&f, c);
        assert_eq!(outcome.member_epoch, 2);
    }
    assert_eq!((a.owned.clone(), b.owned.clone()), (a_owned, b_owned));
    assert_eq!(group_epoch(&f), 2);
    assert_eq!(state(&f), "Stable");
    // A restored member gets a fresh session: silent, it is fenced after one.
    tokio::time::advance(SESSION + Duration::from_millis(10)).await;
    tokio::task::yield_now().await;
    let description = f.coordinator.consumer_describe(GROUP).unwrap().0;
    assert!(description.members.is_empty(), "{:?}", description.members);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_left_stays_gone_and_a_deleted_group_is_not_restored() {
    let mut f = fixture();
    let (mut a, mut b) = (client("a"), client("b"));
    beat(&f, &mut a);
    beat(&f, &mut b);
    converge(&f, &mut [&mut a, &mut b]);
    let mut leave = request(&b);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    restart(&mut f);
    let description = f.coordinator.consumer_describe(GROUP).unwrap().0;
    let ids: Vec<&str> = description
        .members
        .iter()
        .map(|m| m.member_id.as_str())
        .collect();
    assert_eq!(ids, ["a"]);
    assert_eq!(description.group_epoch, 3);
    // a learns it gets everything at the new epoch, as without the restart.
    converge(&f, &mut [&mut a]);
    assert_eq!((a.epoch, partitions(&a).len()), (3, 12));
    let mut leave = request(&a);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    f.coordinator.delete(GROUP).await.unwrap();
    restart(&mut f);
    let refused = f.coordinator.consumer_describe(GROUP).unwrap_err();
    assert_eq!(refused.code, ResponseError::GroupIdNotFound);
}

#[tokio::test(start_paused = true)]
async fn a_member_fenced_by_its_session_timeout_is_not_restored() {
    let mut f = fixture();
    let mut a = client("a");
    beat(&f, &mut a);
    tokio::time::advance(SESSION + Duration::from_millis(10)).await;
    tokio::task::yield_now().await;
    // The timer wrote the fencing itself: no heartbeat came after it.
    restart(&mut f);
    let description = f.coordinator.consumer_describe(GROUP).unwrap().0;
    assert!(description.members.is_empty(), "{:?}", description.members);
    assert_eq!((description.state, description.group_epoch), ("Empty", 2));
}

#[tokio::test(start_paused = true)]
async fn a_vanished_consumer_group_is_not_restored() {
    let mut f = fixture();
    let mut a = client("a");
    beat(&f, &mut a);
    let mut leave = request(&a);
    leave.member_epoch = -1;
    send(&f, leave).unwrap();
    // Empty, without offsets: the expiry pass removes it, and its records go too.
    assert_eq!(f.coordinator.expire_offsets(crate::broker::now_ms()), 0);
    assert_eq!(
        f.coordinator.consumer_describe(GROUP).unwrap_err().code,
        ResponseError::GroupIdNotFound
    );
    restart(&mut f);
    let refused = f.coordinator.consumer_describe(GROUP).unwrap_err();
    assert_eq!(refused.code, ResponseError::GroupIdNotFound);
}
