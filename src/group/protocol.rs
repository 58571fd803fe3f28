//! Choosing a group's protocol (the assignor) and reading the consumer protocol's
//! subscriptions, as Kafka's classic coordinator does.

use std::collections::BTreeSet;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::Decodable;

/// `protocol_type` of Kafka consumers; only their metadata is parsed (OffsetDelete and
/// DescribeGroups need the subscribed topics).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Highest ConsumerProtocolSubscription version kafka-protocol decodes; newer ones are read
/// as this version (their prefix is compatible by Kafka's protocol rules, as in Kafka's own
/// `ConsumerProtocol.deserializeSubscription`).
const SUBSCRIPTION_VERSION_MAX: i16 = 3;

/// The protocols one member supports, most preferred first, with its metadata for each.
pub type Protocols = Vec<(String, Bytes)>;

/// The protocol every member supports that most members prefer: each member votes for the
/// first protocol in its own list that all members support. Ties go to the protocol the
/// first member ranks higher. `None` when no protocol is common to all members.
pub fn select_protocol<'a>(members: impl Iterator<Item = &'a Protocols> + Clone) -> Option<String> {
    let first = members.clone().next()?;
    let candidates: Vec<&str> = first
        .iter()
        .map(|(name, _)| name.as_str())
        .filter(|name| members.clone().all(|protocols| supports(protocols, name)))
        .collect();
    let mut votes = vec![0usize; candidates.len()];
    for protocols in members {
        let vote = protocols
            .iter()
            .find_map(|(name, _)| candidates.iter().position(|c| c == name));
        if let Some(index) = vote {
            votes[index] += 1;
        }
    }
    let most = votes.iter().copied().max()?;
    let winner = votes.iter().position(|&count| count == most)?;
    Some(candidates[winner].to_string())
}

pub fn supports(protocols: &Protocols, name: &str) -> bool {
    protocols.iter().any(|(candidate, _)| candidate == name)
}

/// The metadata a member sent for protocol `name` (empty if it did not name it).
pub fn metadata_for(protocols: &Protocols, name: &str) -> Bytes {
    protocols
        .iter()
        .find(|(candidate, _)| candidate == name)
        .map(|(_, metadata)| metadata.clone())
        .unwrap_or_default()
}

/// Topics named in a consumer protocol subscription; `None` if it does not parse.
pub fn subscribed_topics(metadata: &Bytes) -> Option<BTreeSet<String>> {
    let mut buffer = metadata.clone();
    if buffer.remaining() < 2 {
        return None;
    }
    let version = buffer.get_i16();
    if version < 0 {
        return None;
    }
    let version = version.min(SUBSCRIPTION_VERSION_MAX);
    let subscription = ConsumerProtocolSubscription::decode(&mut buffer, version).ok()?;
    Some(subscription.topics.iter().map(|t| t.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn protocols(names: &[&str]) -> Protocols {
        names
            .iter()
            .map(|name| (name.to_string(), Bytes::from(name.to_string())))
            .collect()
    }

    #[test]
    fn the_most_preferred_common_protocol_wins() {
        let a = protocols(&["range", "roundrobin", "sticky"]);
        let b = protocols(&["sticky", "roundrobin"]);
        let c = protocols(&["roundrobin", "sticky", "range"]);
        // Common: roundrobin, sticky. Votes: a→roundrobin, b→sticky, c→roundrobin.
        let members = [a.clone(), b.clone(), c];
        assert_eq!(
            select_protocol(members.iter()).as_deref(),
            Some("roundrobin")
        );
        // A tie goes to the first member's order.
        let members = [a, b];
        assert_eq!(
            select_protocol(members.iter()).as_deref(),
            Some("roundrobin")
        );
        let disjoint = [protocols(&["range"]), protocols(&["sticky"])];
        assert_eq!(select_protocol(disjoint.iter()), None);
        assert_eq!(select_protocol(std::iter::empty::<&Protocols>()), None);
    }

    #[test]
    fn subscriptions_name_their_topics() {
        let mut subscription = ConsumerProtocolSubscription::default();
        subscription.topics = vec![
            StrBytes::from_static_str("b"),
            StrBytes::from_static_str("a"),
        ];
        for version in [0i16, 1, 3] {
            let mut out = BytesMut::new();
            out.put_i16(version);
            subscription.encode(&mut out, version).unwrap();
            let topics = subscribed_topics(&out.freeze()).unwrap();
            assert_eq!(topics.into_iter().collect::<Vec<_>>(), ["a", "b"]);
        }
        assert_eq!(subscribed_topics(&Bytes::from_static(b"\x00")), None);
        assert_eq!(
            subscribed_topics(&Bytes::from_static(b"\x00\x00\x7f\xff\xff\xff")),
            None
        );
    }
}
