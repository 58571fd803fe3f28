//! Connection admission beyond `--max-connections`: at most `--max-connections-per-ip` open
//! connections from one address (Kafka's max.connections.per.ip) and at most
//! `--max-connection-creation-rate` new connections per second node-wide (Kafka's
//! max.connection.creation.rate). A connection over a limit is closed at once, as Kafka
//! closes it; connections already open are unaffected.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Refusals are logged at most this often (with how many there were), so a connection storm
/// cannot flood the log.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(5);
/// The creation rate counts connections created in the last this long (a sliding window:
/// no burst of twice the rate across a window boundary).
const RATE_WINDOW: Duration = Duration::from_secs(1);
/// Highest --max-connection-creation-rate: the window keeps one instant per creation.
pub const CREATION_RATE_MAX: u32 = 100_000;

/// Why a new connection was closed at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    PerIp,
    CreationRate,
}

pub struct ConnectionLimits {
    /// 0: no per-address limit.
    per_ip_max: usize,
    /// 0: no rate limit.
    creation_rate_per_sec: u32,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Open connections per address; addresses with none are removed.
    open_by_ip: HashMap<IpAddr, usize>,
    /// When each connection admitted in the last `RATE_WINDOW` was created (rate limit only).
    created: VecDeque<Instant>,
    refused_since_log: u64,
    last_refusal_log: Option<Instant>,
}

/// Held while a connection is open: dropping it frees the address's slot.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut state = self.limits.state();
        if let Some(open) = state.open_by_ip.get_mut(&self.ip) {
            assert!(*open > 0);
            *open -= 1;
            if *open == 0 {
                state.open_by_ip.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    pub fn new(per_ip_max: usize, creation_rate_per_sec: u32) -> ConnectionLimits {
        assert!(creation_rate_per_sec <= CREATION_RATE_MAX);
        ConnectionLimits {
            per_ip_max,
            creation_rate_per_sec,
            state: Mutex::new(State::default()),
        }
    }

    /// Admits a connection just accepted from `ip` at `now`, or says why it must be closed.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<ConnectionSlot, Refusal> {
        let mut state = self.state();
        let refusal = self.check(&mut state, ip, now);
        if let Some(refusal) = refusal {
            state.refused_since_log += 1;
            let due = state
                .last_refusal_log
                .is_none_or(|last| now.saturating_duration_since(last) >= REFUSAL_LOG_INTERVAL);
            if due {
                tracing::warn!(
                    %ip,
                    ?refusal,
                    refused = state.refused_since_log,
                    per_ip_max = self.per_ip_max,
                    creation_rate_per_sec = self.creation_rate_per_sec,
                    "closing new connections over the connection limits"
                );
                state.refused_since_log = 0;
                state.last_refusal_log = Some(now);
            }
            return Err(refusal);
        }
        if self.creation_rate_per_sec > 0 {
            state.created.push_back(now);
        }
        *state.open_by_ip.entry(ip).or_insert(0) += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
        })
    }

    fn check(&self, state: &mut State, ip: IpAddr, now: Instant) -> Option<Refusal> {
        let open = state.open_by_ip.get(&ip).copied().unwrap_or(0);
        if self.per_ip_max > 0 && open >= self.per_ip_max {
            return Some(Refusal::PerIp);
        }
        if self.creation_rate_per_sec == 0 {
            return None;
        }
        while let Some(oldest) = state.created.front() {
            if now.saturating_duration_since(*oldest) < RATE_WINDOW {
                break;
            }
            state.created.pop_front();
        }
        let created = state.created.len();
        (created >= self.creation_rate_per_sec as usize).then_some(Refusal::CreationRate)
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> usize {
        self.state().open_by_ip.get(&ip).copied().unwrap_or(0)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn an_address_over_its_limit_is_refused_until_one_of_its_connections_closes() {
        let limits = Arc::new(ConnectionLimits::new(2, 0));
        let now = Instant::now();
        let first = limits.admit(HOME, now).unwrap();
        let _second = limits.admit(HOME, now).unwrap();
        assert_eq!(limits.admit(HOME, now).err(), Some(Refusal::PerIp));
        let _other = limits.admit(OTHER, now).unwrap();
        assert_eq!(limits.open_from(HOME), 2);
        drop(first);
        assert_eq!(limits.open_from(HOME), 1);
        let _third = limits.admit(HOME, now).unwrap();
        assert_eq!(limits.open_from(HOME), 2);
    }

    #[test]
    fn creations_over_the_rate_are_refused_until_the_oldest_leaves_the_window() {
        let limits = Arc::new(ConnectionLimits::new(0, 3));
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let slots = [
            limits.admit(HOME, at(0)).unwrap(),
            limits.admit(HOME, at(600)).unwrap(),
            limits.admit(OTHER, at(700)).unwrap(),
        ];
        assert_eq!(
            limits.admit(OTHER, at(999)).err(),
            Some(Refusal::CreationRate)
        );
        // Closing connections frees no creation budget: the rate counts creations.
        drop(slots);
        assert_eq!(
            limits.admit(HOME, at(999)).err(),
            Some(Refusal::CreationRate)
        );
        let _fourth = limits.admit(HOME, at(1000)).unwrap();
        // Sliding, not fixed, windows: 600 and 700 are still within the last second.
        assert_eq!(
            limits.admit(HOME, at(1100)).err(),
            Some(Refusal::CreationRate)
        );
        assert!(limits.admit(HOME, at(1600)).is_ok());
    }

    #[test]
    fn no_limits_admit_everything() {
        let limits = Arc::new(ConnectionLimits::new(0, 0));
        let now = Instant::now();
        let slots: Vec<_> = (0..1000)
            .map(|_| limits.admit(HOME, now).unwrap())
            .collect();
        assert_eq!(limits.open_from(HOME), 1000);
        drop(slots);
        assert_eq!(limits.open_from(HOME), 0);
    }
}
