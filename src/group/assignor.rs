//! The server-side assignors of KIP-848 consumer groups, as Kafka 4.x names them: `uniform`
//! (the default) and `range`. An assignor turns the members' subscriptions and the subscribed
//! topics' partition counts into each member's target assignment; reconciliation
//! (`consumer_member`) then moves members towards it without ever giving a partition to two
//! members at once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use uuid::Uuid;

/// Partitions by topic id: a member's assignment (KIP-848 speaks in topic ids).
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;

/// What a consumer group knows about one subscribed topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub partition_count: i32,
}

/// One member as an assignor sees it.
pub struct AssignorMember<'a> {
    pub member_id: &'a str,
    pub subscribed: &'a BTreeSet<String>,
    /// The member's previous target assignment: `uniform` keeps what it can of it.
    pub previous: Option<&'a Assignment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    Uniform,
    Range,
}

/// Kafka's `group.consumer.assignors` default, in order; the first is the default assignor.
pub const ASSIGNORS: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

impl Assignor {
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    pub fn from_name(name: &str) -> Option<Assignor> {
        ASSIGNORS
            .into_iter()
            .find(|assignor| assignor.name() == name)
    }

    /// Every member's target assignment (members subscribed to nothing get an empty one).
    pub fn assign(
        self,
        members: &[AssignorMember<'_>],
        topics: &BTreeMap<String, TopicMetadata>,
    ) -> BTreeMap<String, Assignment> {
        match self {
            Assignor::Uniform => assign_uniform(members, topics),
            Assignor::Range => assign_range(members, topics),
        }
    }
}

/// Kafka's range assignor: for each topic, its subscribers sorted by member id get
/// consecutive ranges of partitions, the first `count % subscribers` one partition more.
fn assign_range(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, TopicMetadata>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|member| (member.member_id.to_string(), Assignment::new()))
        .collect();
    for (name, topic) in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|member| member.subscribed.contains(name))
            .map(|member| member.member_id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_unstable();
        let count = topic.partition_count.max(0);
        let subscriber_count = i32::try_from(subscribers.len()).unwrap_or(i32::MAX);
        let quota = count / subscriber_count;
        let extra = count % subscriber_count;
        let mut next = 0;
        for (index, member_id) in subscribers.into_iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let size = quota + i32::from(index < extra);
            if size > 0 {
                let partitions = (next..next + size).collect();
                if let Some(assignment) = result.get_mut(member_id) {
                    assignment.insert(topic.id, partitions);
                }
            }
            next += size;
        }
        assert_eq!(next, count, "range assigned every partition of {name}");
    }
    result
}

/// Kafka's uniform assignor: every partition of a subscribed topic goes to one of its
/// subscribers, members keep as much of their previous assignment as balance allows, and
/// with identical subscriptions the counts differ by at most one.
fn assign_uniform(
    members: &[AssignorMember<'_>],
    topics: &BTreeMap<String, TopicMetadata>,
) -> BTreeMap<String, Assignment> {
    // Per topic id: its name's subscribers, by index into `members`.
    let mut subscribers: HashMap<Uuid, Vec<usize>> = HashMap::new();
    for (name, topic) in topics {
        let eligible: Vec<usize> = (0..members.len())
            .filter(|&index| members[index].subscribed.contains(name))
            .collect();
        if !eligible.is_empty() {
            subscribers.insert(topic.id, eligible);
        }
    }
    let partition_count_of: HashMap<Uuid, i32> = topics
        .values()
        .map(|topic| (topic.id, topic.partition_count))
        .collect();
    let mut owned: Vec<Vec<(Uuid, i32)>> = vec![Vec::new(); members.len()];
    let mut taken: HashSet<(Uuid, i32)> = HashSet::new();
    // Stickiness: keep previous partitions that still exist and are still subscribed.
    for (index, member) in members.iter().enumerate() {
        let Some(previous) = member.previous else {
            continue;
        };
        for (topic_id, partitions) in previous {
            let eligible = subscribers
                .get(topic_id)
                .is_some_and(|eligible| eligible.contains(&index));
            let count = partition_count_of.get(topic_id).copied().unwrap_or(0);
            for &partition in partitions {
                if eligible && partition < count && taken.insert((*topic_id, partition)) {
                    owned[index].push((*topic_id, partition));
                }
            }
        }
    }
    // Unassigned partitions go to their least loaded subscriber.
    for topic in topics.values() {
        let Some(eligible) = subscribers.get(&topic.id) else {
            continue;
        };
        for partition in 0..topic.partition_count.max(0) {
            if taken.insert((topic.id, partition)) {
                let least = least_loaded(eligible, &owned);
                owned[least].push((topic.id, partition));
            }
        }
    }
    balance(&mut owned, &subscribers);
    members
        .iter()
        .zip(owned)
        .map(|(member, partitions)| {
            let mut assignment = Assignment::new();
            for (topic_id, partition) in partitions {
                assignment.entry(topic_id).or_default().insert(partition);
            }
            (member.member_id.to_string(), assignment)
        })
        .collect()
}

fn least_loaded(eligible: &[usize], owned: &[Vec<(Uuid, i32)>]) -> usize {
    let mut least = eligible[0];
    for &index in eligible {
        if owned[index].len() < owned[least].len() {
            least = index;
        }
    }
    least
}

/// Moves one partition at a time from the most loaded member that has one to move to a
/// subscriber of its topic holding at least two fewer. Taking from the most loaded first
/// keeps members' previous partitions (no member is drained below its share and refilled);
/// every move lowers the sum of squared counts, so this ends within one move per partition.
fn balance(owned: &mut [Vec<(Uuid, i32)>], subscribers: &HashMap<Uuid, Vec<usize>>) {
    let partition_total: usize = owned.iter().map(Vec::len).sum();
    for _ in 0..=partition_total {
        let mut order: Vec<usize> = (0..owned.len()).collect();
        order.sort_by_key(|&index| std::cmp::Reverse(owned[index].len()));
        let found = order.into_iter().find_map(|from| {
            (0..owned[from].len()).rev().find_map(|position| {
                let (topic_id, _) = owned[from][position];
                let to = least_loaded(subscribers.get(&topic_id)?, owned);
                (owned[to].len() + 1 < owned[from].len()).then_some((from, position, to))
            })
        });
        let Some((from, position, to)) = found else {
            return;
        };
        let partition = owned[from].swap_remove(position);
        owned[to].push(partition);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(counts: &[(&str, i32)]) -> BTreeMap<String, TopicMetadata> {
        counts
            .iter()
            .enumerate()
            .map(|(index, (name, count))| {
                let id = Uuid::from_u128(index as u128 + 1);
                let metadata = TopicMetadata {
                    id,
                    partition_count: *count,
                };
                (name.to_string(), metadata)
            })
            .collect()
    }

    fn subscription(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    fn counts(result: &BTreeMap<String, Assignment>) -> Vec<usize> {
        result
            .values()
            .map(|assignment| assignment.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of every topic is in exactly one member's assignment.
    fn assert_complete(result: &BTreeMap<String, Assignment>, topics: &[TopicMetadata]) {
        let mut seen = HashSet::new();
        for assignment in result.values() {
            for (topic_id, partitions) in assignment {
                for partition in partitions {
                    assert!(seen.insert((*topic_id, *partition)), "assigned twice");
                }
            }
        }
        let total: i32 = topics.iter().map(|t| t.partition_count).sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn names_round_trip_and_uniform_is_the_default() {
        assert_eq!(ASSIGNORS[0], Assignor::Uniform);
        for assignor in ASSIGNORS {
            assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
        }
        assert_eq!(Assignor::from_name("sticky"), None);
    }

    #[test]
    fn range_gives_consecutive_ranges_by_member_id() {
        let topics = topics(&[("a", 7)]);
        let all = subscription(&["a"]);
        let members = ["m2", "m1", "m3"].map(|member_id| AssignorMember {
            member_id,
            subscribed: &all,
            previous: None,
        });
        let result = Assignor::Range.assign(&members, &topics);
        let id = topics["a"].id;
        assert_eq!(result["m1"][&id], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["m2"][&id], BTreeSet::from([3, 4]));
        assert_eq!(result["m3"][&id], BTreeSet::from([5, 6]));
        assert_complete(&result, &topics.values().copied().collect::<Vec<_>>());
    }

    #[test]
    fn uniform_balances_within_one_for_identical_subscriptions() {
        let topics = topics(&[("a", 12), ("b", 5)]);
        let all = subscription(&["a", "b"]);
        for member_count in 1..=8 {
            let ids: Vec<String> = (0..member_count).map(|i| format!("m{i}")).collect();
            let members: Vec<AssignorMember<'_>> = ids
                .iter()
                .map(|id| AssignorMember {
                    member_id: id,
                    subscribed: &all,
                    previous: None,
                })
                .collect();
            let result = Assignor::Uniform.assign(&members, &topics);
            let counts = counts(&result);
            let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
            assert!(max - min <= 1, "{member_count} members: {counts:?}");
            assert_complete(&result, &topics.values().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn uniform_keeps_previous_partitions_when_a_member_joins() {
        let topics = topics(&[("a", 12)]);
        let all = subscription(&["a"]);
        let first: Vec<AssignorMember<'_>> = ["m0", "m1"]
            .iter()
            .map(|id| AssignorMember {
                member_id: id,
                subscribed: &all,
                previous: None,
            })
            .collect();
        let before = Assignor::Uniform.assign(&first, &topics);
        let second: Vec<AssignorMember<'_>> = ["m0", "m1", "m2"]
            .iter()
            .map(|id| AssignorMember {
                member_id: id,
                subscribed: &all,
                previous: before.get(*id),
            })
            .collect();
        let after = Assignor::Uniform.assign(&second, &topics);
        assert_eq!(counts(&after), vec![4, 4, 4]);
        let id = topics["a"].id;
        for member in ["m0", "m1"] {
            // Each old member gave away 2 of its 6 and kept the rest.
            assert!(
                after[member][&id].is_subset(&before[member][&id]),
                "{member}"
            );
        }
        assert_complete(&after, &[topics["a"]]);
    }

    #[test]
    fn uniform_only_assigns_a_topic_to_its_subscribers() {
        let topics = topics(&[("a", 4), ("b", 2)]);
        let only_a = subscription(&["a"]);
        let both = subscription(&["a", "b"]);
        let nothing = subscription(&[]);
        let members = [
            AssignorMember {
                member_id: "x",
                subscribed: &only_a,
                previous: None,
            },
            AssignorMember {
                member_id: "y",
                subscribed: &both,
                previous: None,
            },
            AssignorMember {
                member_id: "z",
                subscribed: &nothing,
                previous: None,
            },
        ];
        let result = Assignor::Uniform.assign(&members, &topics);
        let b = topics["b"].id;
        assert!(!result["x"].contains_key(&b));
        assert_eq!(result["y"][&b].len(), 2);
        assert!(result["z"].is_empty());
        assert_eq!(counts(&result), vec![3, 3, 0]);
        assert_complete(&result, &topics.values().copied().collect::<Vec<_>>());
    }

    #[test]
    fn partitions_beyond_a_shrunk_count_are_dropped() {
        let topics = topics(&[("a", 2)]);
        let all = subscription(&["a"]);
        let id = topics["a"].id;
        let previous = Assignment::from([(id, BTreeSet::from([0, 1, 5]))]);
        let members = [AssignorMember {
            member_id: "m",
            subscribed: &all,
            previous: Some(&previous),
        }];
        let result = Assignor::Uniform.assign(&members, &topics);
        assert_eq!(result["m"][&id], BTreeSet::from([0, 1]));
    }
}
