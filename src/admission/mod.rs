//! Reachable-address admission. The active controller checks every broker's advertised
//! address the way a client would use it before the broker is unfenced, and keeps checking
//! unfenced brokers: an address clients cannot reach is never handed to them (the outage in
//! the seed post-mortem began with a broker that registered an unreachable hostname).
//!
//! Verdicts go through the metadata quorum (`Operation::RecordAdmission`), so every node's
//! image shows a refused broker and why; the controller's heartbeat handling keeps a broker
//! fenced until it is admitted.

mod probe;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use sluice_raft::controller::{AdmissionVerdict, Operation};
use sluice_raft::image::{Admission, BrokerRegistration};
use tokio::task::JoinSet;
use tokio::time::Instant;

pub use probe::{Identity, IDENTITY_TAG, PROBE_SOFTWARE_NAME};

/// A tagged field on a DescribeCluster broker entry carrying why its advertised address was
/// refused (UTF-8), read by `sluice brokers`; Kafka clients skip unknown tags.
pub const REFUSAL_TAG: i32 = 0x51_1D;
/// A tagged field (empty) on a DescribeCluster broker entry of a broker being drained.
pub const DRAINING_TAG: i32 = 0x51_1E;

use crate::broker::Broker;

/// How often the controller looks for brokers due a check.
const TICK: Duration = Duration::from_millis(250);
/// A broker waiting for admission (or refused) is checked again this often.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);
/// An admitted, unfenced broker is checked again this often (one-way failures).
const RECHECK_INTERVAL: Duration = Duration::from_secs(5);
/// Consecutive failed checks before an admitted broker is refused: one slow answer on a busy
/// machine must not fence a healthy broker.
const FAILURES_BEFORE_REFUSAL: u32 = 3;
/// Checks running at once; the rest wait for a later tick.
const PROBES_IN_FLIGHT_MAX: usize = 16;

/// What the controller remembers between checks of one broker incarnation.
#[derive(Debug, Default)]
struct CheckState {
    incarnation_id: uuid::Uuid,
    last_checked: Option<Instant>,
    consecutive_failures: u32,
}

/// Runs on every node; only the active controller (Raft leader) checks anything.
pub fn spawn_prober(broker: Arc<Broker>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut states: HashMap<i32, CheckState> = HashMap::new();
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let leading = broker.quorum.leader_id() == Some(broker.quorum.node_id());
            if !leading || !broker.config.admission_check {
                // A later leadership starts afresh: it re-checks everyone not yet admitted.
                states.clear();
                continue;
            }
            check_due_brokers(&broker, &mut states).await;
        }
    })
}

async fn check_due_brokers(broker: &Broker, states: &mut HashMap<i32, CheckState>) {
    let image = broker.quorum.image();
    let now = Instant::now();
    states.retain(|id, _| image.cluster.broker(*id).is_some());
    let mut probes = JoinSet::new();
    for registration in image.cluster.brokers.values() {
        if probes.len() == PROBES_IN_FLIGHT_MAX {
            break;
        }
        let state = states.entry(registration.broker_id).or_default();
        if state.incarnation_id != registration.incarnation_id {
            *state = CheckState {
                incarnation_id: registration.incarnation_id,
                ..CheckState::default()
            };
        }
        if !is_due(registration, state, now) {
            continue;
        }
        state.last_checked = Some(now);
        // Probe the inter-broker listener; a broker without one is admitted unchecked.
        let listener = broker
            .inter_broker
            .listener_of(&registration.listeners)
            .cloned();
        let inter_broker = broker.inter_broker.clone();
        let expected = Identity {
            node_id: registration.broker_id,
            incarnation_id: registration.incarnation_id,
        };
        probes.spawn(async move {
            let result = match listener {
                Some(listener) => {
                    probe::probe(&inter_broker, &listener.host, listener.port, expected).await
                }
                None => Ok(()),
            };
            (expected, result)
        });
    }
    while let Some(joined) = probes.join_next().await {
        let Ok((identity, result)) = joined else {
            continue;
        };
        let Some(registration) = image.cluster.broker(identity.node_id) else {
            continue;
        };
        let Some(state) = states.get_mut(&identity.node_id) else {
            continue;
        };
        if let Some(refusal) = verdict_to_record(registration, state, result) {
            record(broker, identity, refusal).await;
        }
    }
}

fn is_due(registration: &BrokerRegistration, state: &CheckState, now: Instant) -> bool {
    let interval = match registration.admission {
        Admission::Admitted if registration.fenced => return false,
        Admission::Admitted => RECHECK_INTERVAL,
        Admission::Unchecked | Admission::Refused(_) => RETRY_INTERVAL,
    };
    state
        .last_checked
        .is_none_or(|last| now.duration_since(last) >= interval)
}

/// The verdict worth writing to the metadata log, if the check changes anything:
/// `Some(None)` admits, `Some(Some(reason))` refuses.
fn verdict_to_record(
    registration: &BrokerRegistration,
    state: &mut CheckState,
    result: Result<(), String>,
) -> Option<Option<String>> {
    match result {
        Ok(()) => {
            state.consecutive_failures = 0;
            (registration.admission != Admission::Admitted).then_some(None)
        }
        Err(reason) => {
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            match &registration.admission {
                Admission::Admitted if state.consecutive_failures < FAILURES_BEFORE_REFUSAL => None,
                Admission::Refused(previous) if *previous == reason => None,
                _ => Some(Some(reason)),
            }
        }
    }
}

async fn record(broker: &Broker, identity: Identity, refusal: Option<String>) {
    match &refusal {
        None => tracing::info!(broker_id = identity.node_id, "advertised address admitted"),
        Some(reason) => {
            tracing::warn!(broker_id = identity.node_id, %reason, "advertised address refused")
        }
    }
    let verdict = AdmissionVerdict {
        broker_id: identity.node_id,
        incarnation_id: identity.incarnation_id,
        refusal,
    };
    if let Err(error) = broker
        .quorum
        .propose(Operation::RecordAdmission(verdict))
        .await
    {
        tracing::warn!(%error, broker_id = identity.node_id, "recording an admission verdict failed");
    }
}

/// A start-up warning when this node advertises an address only reachable from its own
/// machine (or no address at all) while the cluster spans other machines.
pub fn advertised_address_warning(advertised_host: &str, peer_hosts: &[String]) -> Option<String> {
    let local_only = match advertised_host.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback() || ip.is_unspecified(),
        Err(_) => advertised_host.eq_ignore_ascii_case("localhost"),
    };
    let remote_peer = peer_hosts
        .iter()
        .find(|host| match host.parse::<IpAddr>() {
            Ok(ip) => !ip.is_loopback(),
            Err(_) => !host.eq_ignore_ascii_case("localhost"),
        })?;
    local_only.then(|| {
        format!(
            "advertised address {advertised_host:?} is reachable only from this machine, but \
             the cluster has a node at {remote_peer:?}: clients and other nodes will be handed \
             an address they cannot reach, so the controller will keep this node fenced. Set \
             --advertised-address to a host:port the others can reach (the machine's DNS name \
             or its address on their network)."
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registration(admission: Admission, fenced: bool) -> BrokerRegistration {
        BrokerRegistration {
            broker_id: 2,
            incarnation_id: uuid::Uuid::nil(),
            listeners: vec![],
            rack: None,
            fenced,
            admission,
        }
    }

    #[test]
    fn an_admitted_broker_is_refused_only_after_repeated_failures() {
        let admitted = registration(Admission::Admitted, false);
        let mut state = CheckState::default();
        let fail = || Err("connect failed".to_string());
        assert_eq!(verdict_to_record(&admitted, &mut state, fail()), None);
        assert_eq!(verdict_to_record(&admitted, &mut state, fail()), None);
        assert_eq!(
            verdict_to_record(&admitted, &mut state, fail()),
            Some(Some("connect failed".to_string()))
        );
        assert_eq!(verdict_to_record(&admitted, &mut state, Ok(())), None);
        assert_eq!(state.consecutive_failures, 0);
    }

    #[test]
    fn a_waiting_broker_gets_every_new_verdict_once() {
        let mut state = CheckState::default();
        let waiting = registration(Admission::Unchecked, true);
        let refusal = Err("connect failed".to_string());
        assert_eq!(
            verdict_to_record(&waiting, &mut state, refusal.clone()),
            Some(Some("connect failed".to_string()))
        );
        let refused = registration(Admission::Refused("connect failed".into()), true);
        assert_eq!(verdict_to_record(&refused, &mut state, refusal), None);
        assert_eq!(verdict_to_record(&refused, &mut state, Ok(())), Some(None));
    }

    #[test]
    fn due_intervals_depend_on_the_admission() {
        let now = Instant::now();
        let fresh = CheckState::default();
        assert!(is_due(
            &registration(Admission::Unchecked, true),
            &fresh,
            now
        ));
        assert!(!is_due(
            &registration(Admission::Admitted, true),
            &fresh,
            now
        ));
        let just_checked = CheckState {
            last_checked: Some(now),
            ..CheckState::default()
        };
        let admitted = registration(Admission::Admitted, false);
        assert!(!is_due(&admitted, &just_checked, now));
        assert!(is_due(&admitted, &just_checked, now + RECHECK_INTERVAL));
        let refused = registration(Admission::Refused("x".into()), true);
        assert!(is_due(&refused, &just_checked, now + RETRY_INTERVAL));
    }

    #[test]
    fn loopback_advertised_with_remote_peers_is_warned_about() {
        let peers = |hosts: &[&str]| hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>();
        assert!(advertised_address_warning("127.0.0.1", &peers(&["10.0.0.2"])).is_some());
        assert!(advertised_address_warning("0.0.0.0", &peers(&["kafka-2"])).is_some());
        assert!(advertised_address_warning("localhost", &peers(&["10.0.0.2"])).is_some());
        assert!(advertised_address_warning("127.0.0.1", &peers(&["127.0.0.2"])).is_none());
        assert!(advertised_address_warning("10.0.0.1", &peers(&["10.0.0.2"])).is_none());
        assert!(advertised_address_warning("127.0.0.1", &[]).is_none());
    }
}
