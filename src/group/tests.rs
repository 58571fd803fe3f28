//! The coordinator's state machine under tokio's paused clock: joins, syncs, fencing,
//! session and rebalance timeouts, static members, leaving, deleting, and durable offsets.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use super::outcome::{
    JoinOutcome, JoinRequest, LeavingMember, MemberRef, SyncOutcome, SyncRequest,
};
use super::*;

const GROUP: &str = "group";
const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 30_000;
const DELAY: Duration = Duration::from_millis(3000);

struct Fixture {
    coordinator: Arc<GroupCoordinator>,
    log: Arc<test_log::MemoryLog>,
}

fn config(group_size_max: usize) -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay: DELAY,
        group_size_max,
        offsets_retention_ms: 60_000,
        consumer_heartbeat_interval: Duration::from_millis(5_000),
        consumer_session_timeout: Duration::from_millis(45_000),
    }
}

fn fixture_with(group_size_max: usize) -> Fixture {
    let log = Arc::new(test_log::MemoryLog::default());
    let coordinator = Arc::new(test_log::coordinator_over(config(group_size_max), &log));
    Fixture { coordinator, log }
}

fn fixture() -> Fixture {
    fixture_with(100)
}

fn protocols(names: &[&str]) -> Vec<(String, Bytes)> {
    names
        .iter()
        .map(|name| (name.to_string(), Bytes::from(format!("{name}-metadata"))))
        .collect()
}

fn join_request(member_id: &str, instance: Option<&str>, names: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.to_string(),
        group_instance_id: instance.map(str::to_string),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: protocols(names),
        require_known_member_id: true,
        skip_assignment_supported: true,
    }
}

fn spawn_join(f: &Fixture, request: JoinRequest) -> JoinHandle<JoinOutcome> {
    tokio::spawn(f.coordinator.join(GROUP, request))
}

/// First JoinGroup of a dynamic member: MEMBER_ID_REQUIRED with its id; then the real join.
async fn join_new(f: &Fixture) -> (String, JoinHandle<JoinOutcome>) {
    let first = f
        .coordinator
        .join(GROUP, join_request("", None, &["range"]))
        .await;
    assert_eq!(first.error, Some(ResponseError::MemberIdRequired));
    assert!(
        first.member_id.starts_with("client-"),
        "{}",
        first.member_id
    );
    let member_id = first.member_id.clone();
    let handle = spawn_join(f, join_request(&member_id, None, &["range"]));
    (member_id, handle)
}

fn sync_request(member_id: &str, generation_id: i32, assignments: &[(&str, &str)]) -> SyncRequest {
    SyncRequest {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments: assignments
            .iter()
            .map(|(id, a)| (id.to_string(), Bytes::from(a.to_string())))
            .collect(),
    }
}

fn member(member_id: &str, generation_id: i32) -> MemberRef {
    MemberRef {
        member_id: member_id.to_string(),
        group_instance_id: None,
        generation_id,
    }
}

fn state(f: &Fixture) -> &'static str {
    f.coordinator.describe(GROUP).unwrap().state
}

async fn sync(f: &Fixture, request: SyncRequest) -> SyncOutcome {
    f.coordinator.sync(GROUP, request).await
}

/// Two members a (leader) and b, Stable at generation 1 with assignments "A" and "B".
async fn stable_pair(f: &Fixture) -> (String, String) {
    let (a, join_a) = join_new(f).await;
    let (b, join_b) = join_new(f).await;
    let (join_a, join_b) = (join_a.await.unwrap(), join_b.await.unwrap());
    assert_eq!((join_a.generation_id, join_b.generation_id), (1, 1));
    assert_eq!(join_a.leader_id, a);
    let follower = tokio::spawn(f.coordinator.sync(GROUP, sync_request(&b, 1, &[])));
    let leader = sync(f, sync_request(&a, 1, &[(&a, "A"), (&b, "B")])).await;
    assert_eq!(leader.assignment, Bytes::from("A"));
    assert_eq!(follower.await.unwrap().assignment, Bytes::from("B"));
    assert_eq!(state(f), "Stable");
    (a, b)
}

#[tokio::test(start_paused = true)]
async fn member_id_required_then_join_sync_and_heartbeat() {
    let f = fixture();
    let (a, join) = join_new(&f).await;
    assert_eq!(state(&f), "PreparingRebalance");
    let outcome = join.await.unwrap();
    assert_eq!(outcome.error, None);
    assert_eq!(outcome.generation_id, 1);
    assert_eq!(outcome.protocol_name.as_deref(), Some("range"));
    assert_eq!(outcome.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(outcome.leader_id, a);
    assert_eq!(outcome.members.len(), 1);
    assert_eq!(outcome.members[0].metadata, Bytes::from("range-metadata"));
    assert_eq!(state(&f), "CompletingRebalance");
    let synced = sync(&f, sync_request(&a, 1, &[(&a, "assignment")])).await;
    assert_eq!(synced.error, None);
    assert_eq!(synced.assignment, Bytes::from("assignment"));
    assert_eq!(state(&f), "Stable");
    assert_eq!(f.coordinator.heartbeat(GROUP, &member(&a, 1)), Ok(()));
    let described = f.coordinator.describe(GROUP).unwrap();
    assert_eq!(described.protocol_name, "range");
    assert_eq!(described.members[0].assignment, Bytes::from("assignment"));
}

#[tokio::test(start_paused = true)]
async fn leader_gets_every_member_and_followers_wait_for_its_sync() {
    let f = fixture();
    let (a, join_a) = join_new(&f).await;
    let (b, join_b) = join_new(&f).await;
    let leader = join_a.await.unwrap();
    let follower = join_b.await.unwrap();
    let mut ids: Vec<String> = leader.members.iter().map(|m| m.member_id.clone()).collect();
    ids.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(ids, expected);
    assert!(follower.members.is_empty());
    assert_eq!(follower.leader_id, a);
    let mut waiting = tokio::spawn(f.coordinator.sync(GROUP, sync_request(&b, 1, &[])));
    assert!(
        timeout(Duration::from_secs(5), &mut waiting).await.is_err(),
        "follower waits"
    );
    sync(&f, sync_request(&a, 1, &[(&a, "A"), (&b, "B")])).await;
    assert_eq!(waiting.await.unwrap().assignment, Bytes::from("B"));
}

#[tokio::test(start_paused = true)]
async fn generations_and_members_are_fenced() {
    let f = fixture();
    let (a, b) = stable_pair(&f).await;
    let groups = &f.coordinator;
    assert_eq!(
        groups.heartbeat(GROUP, &member(&a, 0)),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        groups.heartbeat(GROUP, &member("nobody", 1)),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        groups.heartbeat("other", &member(&a, 1)),
        Err(ResponseError::UnknownMemberId)
    );
    let stale = sync(&f, sync_request(&b, 7, &[])).await;
    assert_eq!(stale.error, Some(ResponseError::IllegalGeneration));
    let commit = groups.commit(GROUP, &member(&a, 2), Vec::new()).await;
    assert_eq!(commit, Err(ResponseError::IllegalGeneration));
    let commit = groups.commit(GROUP, &member("", -1), Vec::new()).await;
    assert_eq!(commit, Err(ResponseError::UnknownMemberId));
    assert_eq!(
        groups.commit(GROUP, &member(&a, 1), Vec::new()).await,
        Ok(())
    );
    // A rejoin with new protocols starts a rebalance: heartbeats now say so.
    let _rejoin = spawn_join(&f, join_request(&a, None, &["range", "sticky"]));
    tokio::task::yield_now().await;
    assert_eq!(state(&f), "PreparingRebalance");
    assert_eq!(
        groups.heartbeat(GROUP, &member(&b, 1)),
        Err(ResponseError::RebalanceInProgress)
    );
    let during = sync(&f, sync_request(&b, 1, &[])).await;
    assert_eq!(during.error, Some(ResponseError::RebalanceInProgress));
}

#[tokio::test(start_paused = true)]
async fn session_expiry_removes_the_silent_member_and_rebalances() {
    let f = fixture();
    let (a, b) = stable_pair(&f).await;
    // a heartbeats every 3 s; b is silent.
    let mut rebalancing = false;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        match f.coordinator.heartbeat(GROUP, &member(&a, 1)) {
            Ok(()) => {}
            Err(ResponseError::RebalanceInProgress) => {
                rebalancing = true;
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(rebalancing, "b's session (10 s) expired");
    let rejoined = f
        .coordinator
        .join(GROUP, join_request(&a, None, &["range"]))
        .await;
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(rejoined.members.len(), 1);
    assert_eq!(
        f.coordinator.heartbeat(GROUP, &member(&b, 1)),
        Err(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn rebalance_timeout_removes_members_that_do_not_rejoin() {
    let f = fixture();
    let (a, b) = stable_pair(&f).await;
    let (c, join_c) = join_new(&f).await;
    let join_a = spawn_join(&f, join_request(&a, None, &["range"]));
    // b keeps its session alive but never rejoins.
    let mut waited = Duration::ZERO;
    while !join_a.is_finished() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        waited += Duration::from_secs(2);
        let _ = f.coordinator.heartbeat(GROUP, &member(&b, 1));
    }
    assert!(
        waited >= Duration::from_millis(REBALANCE_MS as u64),
        "{waited:?}"
    );
    let outcome = join_a.await.unwrap();
    assert_eq!(outcome.generation_id, 2);
    let mut ids: Vec<String> = outcome
        .members
        .iter()
        .map(|m| m.member_id.clone())
        .collect();
    ids.sort();
    let mut expected = vec![a, c];
    expected.sort();
    assert_eq!(ids, expected);
    assert_eq!(join_c.await.unwrap().generation_id, 2);
    assert_eq!(
        f.coordinator.heartbeat(GROUP, &member(&b, 2)),
        Err(ResponseError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn initial_delay_stretches_while_members_arrive() {
    let f = fixture();
    let (_, mut join_a) = join_new(&f).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, join_b) = join_new(&f).await;
    // Without b the join would end at 3 s; b's arrival stretches it by one more delay.
    assert!(timeout(Duration::from_millis(3900), &mut join_a)
        .await
        .is_err());
    let a = join_a.await.unwrap();
    assert_eq!(a.generation_id, 1);
    assert_eq!(a.members.len(), 2);
    assert_eq!(join_b.await.unwrap().generation_id, 1);
}

#[tokio::test(start_paused = true)]
async fn static_member_rejoins_without_rebalance_and_fences_its_old_id() {
    let f = fixture();
    let join_s = spawn_join(&f, join_request("", Some("instance-1"), &["range"]));
    let (d, join_d) = join_new(&f).await;
    let s = join_s.await.unwrap();
    assert_eq!(s.error, None, "static members skip MEMBER_ID_REQUIRED");
    assert!(s.member_id.starts_with("instance-1-"));
    let old_id = s.member_id.clone();
    let d_outcome = join_d.await.unwrap();
    let leader = if s.leader_id == old_id {
        old_id.clone()
    } else {
        d.clone()
    };
    assert_eq!(d_outcome.leader_id, leader);
    let other = if leader == d {
        old_id.clone()
    } else {
        d.clone()
    };
    let follower = tokio::spawn(f.coordinator.sync(GROUP, sync_request(&other, 1, &[])));
    sync(&f, sync_request(&leader, 1, &[(&old_id, "S"), (&d, "D")])).await;
    follower.await.unwrap();

    // The static member restarts: a new member id, same generation, no rebalance.
    let again = f
        .coordinator
        .join(GROUP, join_request("", Some("instance-1"), &["range"]))
        .await;
    assert_eq!(again.error, None);
    assert_eq!(again.generation_id, 1);
    assert_ne!(again.member_id, old_id);
    assert_eq!(state(&f), "Stable");
    let mut new_ref = member(&again.member_id, 1);
    new_ref.group_instance_id = Some("instance-1".into());
    let mut old_ref = member(&old_id, 1);
    old_ref.group_instance_id = Some("instance-1".into());
    assert_eq!(
        f.coordinator.heartbeat(GROUP, &old_ref),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(f.coordinator.heartbeat(GROUP, &new_ref), Ok(()));
    let mut resync = sync_request(&again.member_id, 1, &[]);
    resync.group_instance_id = Some("instance-1".into());
    assert_eq!(sync(&f, resync).await.assignment, Bytes::from("S"));
    assert_eq!(f.coordinator.heartbeat(GROUP, &member(&d, 1)), Ok(()));

    // With changed protocols the same restart does rebalance.
    let changed = spawn_join(
        &f,
        join_request("", Some("instance-1"), &["range", "sticky"]),
    );
    tokio::task::yield_now().await;
    assert_eq!(state(&f), "PreparingRebalance");
    drop(changed);
}

#[tokio::test(start_paused = true)]
async fn a_batch_leaves_at_once_and_an_empty_group_can_be_deleted() {
    let f = fixture();
    let commit = OffsetCommit {
        topic: "t".into(),
        partition: 0,
        committed: committed(5, "m"),
    };
    // Committed while no timer runs: the paused clock jumps while the writer thread works.
    assert_eq!(
        f.coordinator
            .commit(GROUP, &member("", -1), vec![commit])
            .await,
        Ok(())
    );
    let (a, b) = stable_pair(&f).await;
    assert_eq!(
        f.coordinator.delete(GROUP).await,
        Err(ResponseError::NonEmptyGroup)
    );
    let leaving = [
        LeavingMember {
            member_id: a,
            group_instance_id: None,
        },
        LeavingMember {
            member_id: b,
            group_instance_id: None,
        },
        LeavingMember {
            member_id: "ghost".into(),
            group_instance_id: None,
        },
        LeavingMember {
            member_id: String::new(),
            group_instance_id: Some("unknown".into()),
        },
    ];
    let results = f.coordinator.leave(GROUP, &leaving).unwrap();
    assert_eq!(
        results,
        [
            Ok(()),
            Ok(()),
            Err(ResponseError::UnknownMemberId),
            Err(ResponseError::UnknownMemberId)
        ]
    );
    assert_eq!(state(&f), "Empty");
    assert_eq!(f.coordinator.delete(GROUP).await, Ok(()));
    assert_eq!(
        f.coordinator.describe(GROUP),
        Err(ResponseError::GroupIdNotFound)
    );
    assert_eq!(
        f.coordinator.delete(GROUP).await,
        Err(ResponseError::GroupIdNotFound)
    );
    assert_eq!(f.coordinator.fetch_offsets(GROUP, None), Ok(Vec::new()));
    let Fixture { coordinator, log } = f;
    drop(coordinator);
    let reopened = test_log::coordinator_over(config(100), &log);
    assert!(reopened.list().is_empty());
    assert_eq!(reopened.fetch_offsets(GROUP, None), Ok(Vec::new()));
}

fn committed(offset: i64, metadata: &str) -> CommittedOffset {
    CommittedOffset {
        offset,
        leader_epoch: 2,
        metadata: metadata.into(),
        commit_timestamp_ms: crate::broker::now_ms(),
    }
}

#[tokio::test(start_paused = true)]
async fn bad_joins_get_kafkas_errors() {
    let f = fixture_with(2);
    let groups = &f.coordinator;
    let empty = groups.join("", join_request("", None, &["range"])).await;
    assert_eq!(empty.error, Some(ResponseError::InvalidGroupId));
    for session_timeout_ms in [5_999, 1_800_001, -1] {
        let mut request = join_request("", None, &["range"]);
        request.session_timeout_ms = session_timeout_ms;
        let outcome = groups.join(GROUP, request).await;
        assert_eq!(outcome.error, Some(ResponseError::InvalidSessionTimeout));
    }
    let no_protocols = groups.join(GROUP, join_request("", None, &[])).await;
    assert_eq!(
        no_protocols.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut huge = join_request("", None, &["range"]);
    huge.protocols[0].1 = Bytes::from(vec![0u8; classic::MEMBER_METADATA_BYTES_MAX + 1]);
    assert_eq!(
        groups.join(GROUP, huge).await.error,
        Some(ResponseError::UnknownServerError)
    );
    let unknown = groups
        .join("nowhere", join_request("made-up", None, &["range"]))
        .await;
    assert_eq!(unknown.error, Some(ResponseError::UnknownMemberId));

    let (_, _join_a) = join_new(&f).await;
    // Protocols are checked before a member id is handed out.
    let mismatch = groups
        .join(GROUP, join_request("", None, &["sticky"]))
        .await;
    assert_eq!(
        mismatch.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut other_type = join_request("", None, &["range"]);
    other_type.protocol_type = "connect".into();
    let mismatch = groups.join(GROUP, other_type).await;
    assert_eq!(
        mismatch.error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let (_, _join_b) = join_new(&f).await;
    let full = groups.join(GROUP, join_request("", None, &["range"])).await;
    assert_eq!(full.error, Some(ResponseError::GroupMaxSizeReached));
}

#[tokio::test]
async fn commits_are_durable_and_expire_from_empty_groups() {
    let f = fixture();
    let simple = member("", -1);
    let commits = vec![
        OffsetCommit {
            topic: "t".into(),
            partition: 0,
            committed: committed(7, "first"),
        },
        OffsetCommit {
            topic: "t".into(),
            partition: 1,
            committed: committed(9, ""),
        },
    ];
    assert_eq!(
        f.coordinator.commit("simple", &simple, commits).await,
        Ok(())
    );
    assert_eq!(
        f.coordinator.commit("", &simple, Vec::new()).await,
        Err(ResponseError::InvalidGroupId)
    );
    let wanted = [("t".to_string(), 0), ("t".to_string(), 5)];
    let fetched = f
        .coordinator
        .fetch_offsets("simple", Some(&wanted))
        .unwrap();
    assert_eq!(
        fetched[0]
            .2
            .as_ref()
            .map(|c| (c.offset, c.metadata.as_str())),
        Some((7, "first"))
    );
    assert_eq!(fetched[1].2, None);
    assert_eq!(f.coordinator.describe("simple").unwrap().state, "Empty");
    let Fixture { coordinator, log } = f;
    drop(coordinator);

    let reopened = test_log::coordinator_over(config(100), &log);
    let all = reopened.fetch_offsets("simple", None).unwrap();
    let offsets: Vec<(String, i32, i64, i32, String)> = all
        .into_iter()
        .map(|(t, p, c)| {
            let c = c.unwrap();
            (t, p, c.offset, c.leader_epoch, c.metadata)
        })
        .collect();
    assert_eq!(
        offsets,
        [
            ("t".into(), 0, 7, 2, "first".into()),
            ("t".into(), 1, 9, 2, String::new())
        ]
    );
    assert_eq!(reopened.expire_offsets(crate::broker::now_ms()), 0);
    assert_eq!(reopened.expire_offsets(crate::broker::now_ms() + 60_000), 2);
    assert_eq!(
        reopened.describe("simple"),
        Err(ResponseError::GroupIdNotFound)
    );
    assert!(reopened.list().is_empty());
}

#[tokio::test(start_paused = true)]
async fn offset_delete_refuses_subscribed_topics_of_a_stable_group() {
    let f = fixture();
    let (a, _b) = stable_pair(&f).await;
    // The members' metadata is not a consumer subscription, so topics are unknown.
    let refused = f
        .coordinator
        .delete_offsets(GROUP, &[("t".into(), 0)])
        .await;
    assert_eq!(refused, Err(ResponseError::NonEmptyGroup));
    assert_eq!(
        f.coordinator.delete_offsets("missing", &[]).await,
        Err(ResponseError::GroupIdNotFound)
    );
    let slot = f.coordinator.slot_for_test(GROUP).unwrap();
    let state_name = lock_group(&slot).state_name();
    assert_eq!(state_name, "Stable");
    let _ = a;
}

#[tokio::test(start_paused = true)]
async fn only_the_partition_leader_coordinates_and_a_new_leader_replays_the_offsets() {
    let log = Arc::new(test_log::MemoryLog::default());
    let groups = GroupCoordinator::new(config(100), 1);
    groups.attach_log(Box::new(test_log::Shared(log.clone())));
    let member = MemberRef {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
    };
    let commit = |offset| OffsetCommit {
        topic: "t".into(),
        partition: 0,
        committed: committed(offset, "m"),
    };
    // Not a leader of the group's partition: every group API says so.
    assert_eq!(
        groups.commit(GROUP, &member, vec![commit(1)]).await,
        Err(ResponseError::NotCoordinator)
    );
    assert_eq!(
        groups.fetch_offsets(GROUP, None),
        Err(ResponseError::NotCoordinator)
    );
    let joined = groups.join(GROUP, join_request("", None, &["range"])).await;
    assert_eq!(joined.error, Some(ResponseError::NotCoordinator));
    assert_eq!(
        groups.describe(GROUP).map(|d| d.state),
        Err(ResponseError::NotCoordinator)
    );
    assert!(groups.begin_load(0, 3));
    assert!(!groups.begin_load(0, 3));
    assert_eq!(
        groups.heartbeat(GROUP, &member),
        Err(ResponseError::CoordinatorLoadInProgress)
    );
    groups.finish_load(0, 3, HashMap::new());
    assert_eq!(groups.commit(GROUP, &member, vec![commit(5)]).await, Ok(()));
    assert_eq!(groups.commit(GROUP, &member, vec![commit(8)]).await, Ok(()));
    let offsets = |coordinator: &GroupCoordinator| -> Vec<i64> {
        let fetched = coordinator.fetch_offsets(GROUP, None).unwrap();
        fetched
            .into_iter()
            .map(|(_, _, c)| c.unwrap().offset)
            .collect()
    };
    assert_eq!(offsets(&groups), [8]);
    groups.unload(0);
    assert_eq!(
        groups.fetch_offsets(GROUP, None),
        Err(ResponseError::NotCoordinator)
    );
    assert!(groups.list().is_empty());
    // A later leader epoch replays the log written by the earlier one.
    let next = test_log::coordinator_over(config(100), &log);
    assert_eq!(offsets(&next), [8]);
    assert_eq!(next.list()[0].group_id, GROUP);
}

#[tokio::test(start_paused = true)]
async fn unloading_a_group_with_members_sends_them_to_the_new_coordinator() {
    let f = fixture();
    let (a, b) = stable_pair(&f).await;
    // a rejoins: the group rebalances and a's JoinGroup waits for b.
    let waiting = spawn_join(&f, join_request(&a, None, &["range"]));
    while state(&f) != "PreparingRebalance" {
        tokio::task::yield_now().await;
    }
    // The offsets partition moved to another node while members are in the group.
    f.coordinator.unload(0);
    let answered = waiting.await.unwrap();
    assert_eq!(answered.error, Some(ResponseError::NotCoordinator));
    assert_eq!(
        f.coordinator.heartbeat(GROUP, &member(&b, 1)),
        Err(ResponseError::NotCoordinator)
    );
    assert!(f.coordinator.list().is_empty());
}
