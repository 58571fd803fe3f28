//! The ACL sub-image: every access-control entry (Kafka's `AccessControlEntryRecord`), by id,
//! the filters that select entries (CreateAcls, DescribeAcls, DeleteAcls), and the index the
//! authoriser looks entries up in ([`AclIndex`]: by resource type, literal name and prefix,
//! built once per image, so a check reads only the entries that cover its resource).
//!
//! The codes are Kafka's (`ResourceType`, `PatternType`, `AclOperation`, `AclPermissionType`),
//! so requests, records and responses carry the same numbers. Deciding whether an entry allows
//! a request (implications, DENY over ALLOW, super users) is the broker's authoriser; here is
//! only data and filter matching.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

/// Kafka's `ResourceType` codes.
pub mod resource_type {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    pub const DELEGATION_TOKEN: i8 = 6;
    pub const USER: i8 = 7;
}

/// Kafka's `PatternType` codes. MATCH (filters only) selects the entries that apply to one
/// named resource: its literal entries, the `*` wildcard and the prefixes of its name.
pub mod pattern_type {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Kafka's `AclOperation` codes.
pub mod operation {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
    pub const CREATE_TOKENS: i8 = 13;
    pub const DESCRIBE_TOKENS: i8 = 14;
    pub const TWO_PHASE_COMMIT: i8 = 15;
}

/// Kafka's `AclPermissionType` codes.
pub mod permission {
    pub const UNKNOWN: i8 = 0;
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// The only name a CLUSTER resource has.
pub const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
/// The literal resource name (and host) that matches every name.
pub const WILDCARD: &str = "*";

/// One access-control entry: who (principal, host) may or may not (permission) do what
/// (operation) on which resources (type, name, pattern).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct AclBinding {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    /// `Type:name`, e.g. `User:alice`; `User:*` is every user.
    pub principal: String,
    /// A client address, or `*`.
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl AclBinding {
    /// Whether this entry's pattern covers the resource `name` of `resource_type`.
    pub fn covers(&self, resource_type: i8, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern_type {
                pattern_type::LITERAL => {
                    self.resource_name == name || self.resource_name == WILDCARD
                }
                pattern_type::PREFIXED => name.starts_with(&self.resource_name),
                _ => false,
            }
    }
}

/// Selects entries: `ANY` codes and `None` strings match everything (Kafka's
/// `AclBindingFilter`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission_type: i8,
}

impl AclFilter {
    /// The filter that matches every entry.
    pub fn any() -> AclFilter {
        AclFilter {
            resource_type: resource_type::ANY,
            resource_name: None,
            pattern_type: pattern_type::ANY,
            principal: None,
            host: None,
            operation: operation::ANY,
            permission_type: permission::ANY,
        }
    }

    /// Why this filter cannot be used, as Kafka refuses it (`None`: usable).
    pub fn invalid_reason(&self) -> Option<&'static str> {
        if self.resource_type == resource_type::UNKNOWN
            || !(resource_type::UNKNOWN..=resource_type::USER).contains(&self.resource_type)
        {
            return Some("unknown resource type");
        }
        if !(pattern_type::ANY..=pattern_type::PREFIXED).contains(&self.pattern_type) {
            return Some("unknown pattern type");
        }
        if !(operation::ANY..=operation::TWO_PHASE_COMMIT).contains(&self.operation) {
            return Some("unknown operation");
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission_type) {
            return Some("unknown permission type");
        }
        None
    }

    pub fn matches(&self, acl: &AclBinding) -> bool {
        let code = |filter: i8, any: i8, value: i8| filter == any || filter == value;
        let text =
            |filter: &Option<String>, value: &str| filter.as_deref().is_none_or(|f| f == value);
        code(self.resource_type, resource_type::ANY, acl.resource_type)
            && self.pattern_matches(acl)
            && text(&self.principal, &acl.principal)
            && text(&self.host, &acl.host)
            && code(self.operation, operation::ANY, acl.operation)
            && code(self.permission_type, permission::ANY, acl.permission_type)
    }

    fn pattern_matches(&self, acl: &AclBinding) -> bool {
        match self.pattern_type {
            pattern_type::ANY => self
                .resource_name
                .as_deref()
                .is_none_or(|name| name == acl.resource_name),
            pattern_type::MATCH => match self.resource_name.as_deref() {
                None => true,
                Some(name) => acl.covers(acl.resource_type, name),
            },
            exact => {
                acl.pattern_type == exact
                    && self
                        .resource_name
                        .as_deref()
                        .is_none_or(|name| name == acl.resource_name)
            }
        }
    }
}

/// The entries by id, and their index. `by_id` is the truth (replayed, snapshotted); `index`
/// is derived from it by [`AclsImage::reindex`] whenever an image is built.
#[derive(Debug, Clone, Default)]
pub struct AclsImage {
    pub by_id: BTreeMap<Uuid, AclBinding>,
    index: AclIndex,
}

impl PartialEq for AclsImage {
    fn eq(&self, other: &AclsImage) -> bool {
        // The index is a function of the entries.
        self.by_id == other.by_id
    }
}

impl Eq for AclsImage {}

impl AclsImage {
    /// An image of `entries`, indexed.
    pub fn from_entries(entries: impl IntoIterator<Item = (Uuid, AclBinding)>) -> AclsImage {
        let mut image = AclsImage {
            by_id: entries.into_iter().collect(),
            index: AclIndex::default(),
        };
        image.reindex();
        image
    }

    /// Rebuilds the index from `by_id`; called once per built image.
    pub fn reindex(&mut self) {
        self.index = AclIndex::build(self.by_id.values());
    }

    /// The index of the entries as of the last [`AclsImage::reindex`].
    pub fn index(&self) -> &AclIndex {
        &self.index
    }

    /// The id of an entry equal to `acl`, if there is one (creating it again is a no-op).
    pub fn find(&self, acl: &AclBinding) -> Option<Uuid> {
        self.by_id
            .iter()
            .find(|(_, known)| *known == acl)
            .map(|(id, _)| *id)
    }

    /// Every entry `filter` selects, with its id.
    pub fn matching<'a>(
        &'a self,
        filter: &'a AclFilter,
    ) -> impl Iterator<Item = (&'a Uuid, &'a AclBinding)> + 'a {
        self.by_id.iter().filter(|(_, acl)| filter.matches(acl))
    }
}

/// The entries by resource type, then literal name and prefix, as Kafka's `StandardAuthorizer`
/// keeps them sorted by resource: the entries covering one resource are its literal name's,
/// the `*` literal's and those of each prefix of its name that has entries. Prefixes are
/// looked up by length, only for the lengths some prefixed entry of the type has, so a check
/// costs at most (distinct prefix lengths) lookups plus the covering entries themselves.
#[derive(Debug, Clone, Default)]
pub struct AclIndex {
    entries: Vec<AclBinding>,
    by_type: HashMap<i8, TypeIndex>,
}

#[derive(Debug, Clone, Default)]
struct TypeIndex {
    /// Positions in `entries` of every entry of the type (literal or prefixed).
    all: Vec<usize>,
    literal: HashMap<String, Vec<usize>>,
    prefixed: HashMap<String, Vec<usize>>,
    prefix_lengths_bytes: BTreeSet<usize>,
}

impl AclIndex {
    pub fn build<'a>(acls: impl IntoIterator<Item = &'a AclBinding>) -> AclIndex {
        let mut index = AclIndex::default();
        for acl in acls {
            let position = index.entries.len();
            let of_type = index.by_type.entry(acl.resource_type).or_default();
            let name = acl.resource_name.clone();
            match acl.pattern_type {
                pattern_type::LITERAL => of_type.literal.entry(name).or_default().push(position),
                pattern_type::PREFIXED => {
                    of_type.prefix_lengths_bytes.insert(name.len());
                    of_type.prefixed.entry(name).or_default().push(position);
                }
                // Records only carry LITERAL and PREFIXED; anything else covers nothing.
                _ => continue,
            }
            of_type.all.push(position);
            index.entries.push(acl.clone());
        }
        index
    }

    /// Every entry whose pattern covers the resource `name` of `resource_type`: the same
    /// entries as [`AclBinding::covers`] selects, each once, in no particular order.
    pub fn covering<'a>(
        &'a self,
        resource_type: i8,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let of_type = self.by_type.get(&resource_type);
        let literal = of_type.into_iter().flat_map(move |of_type| {
            let exact = of_type.literal.get(name);
            let wildcard = (name != WILDCARD)
                .then(|| of_type.literal.get(WILDCARD))
                .flatten();
            exact.into_iter().chain(wildcard).flatten()
        });
        let prefixed = of_type.into_iter().flat_map(move |of_type| {
            of_type
                .prefix_lengths_bytes
                .range(..=name.len())
                .filter_map(move |&length| name.get(..length))
                .filter_map(move |prefix| of_type.prefixed.get(prefix))
                .flatten()
        });
        literal
            .chain(prefixed)
            .map(move |&position| &self.entries[position])
    }

    /// Every entry of `resource_type`, whatever its pattern.
    pub fn of_type(&self, resource_type: i8) -> impl Iterator<Item = &AclBinding> + '_ {
        self.by_type
            .get(&resource_type)
            .into_iter()
            .flat_map(|of_type| &of_type.all)
            .map(move |&position| &self.entries[position])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::image::{
        decode_batch, encode_batch, MetadataDelta, MetadataImage, MetadataRecord, Provenance,
    };

    fn acl(name: &str, pattern: i8, principal: &str, operation: i8) -> AclBinding {
        AclBinding {
            resource_type: resource_type::TOPIC,
            resource_name: name.to_string(),
            pattern_type: pattern,
            principal: principal.to_string(),
            host: WILDCARD.to_string(),
            operation,
            permission_type: permission::ALLOW,
        }
    }

    #[test]
    fn acl_records_round_trip_replay_and_snapshot() {
        let first = Uuid::from_u128(1);
        let second = Uuid::from_u128(2);
        let records = vec![
            MetadataRecord::AccessControlEntry {
                id: first,
                acl: acl(
                    "orders",
                    pattern_type::LITERAL,
                    "User:alice",
                    operation::READ,
                ),
            },
            MetadataRecord::AccessControlEntry {
                id: second,
                acl: acl("ord", pattern_type::PREFIXED, "User:*", operation::WRITE),
            },
            MetadataRecord::RemoveAccessControlEntry { id: first },
        ];
        let decoded = decode_batch(&encode_batch(&records), 16).expect("decodes");
        assert_eq!(decoded, records);
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        for record in &records {
            delta.replay(record).expect("replays");
        }
        let image = delta.apply();
        assert_eq!(
            image.acls.by_id.keys().copied().collect::<Vec<_>>(),
            [second]
        );
        // The built image is indexed: the remaining prefixed entry covers `orders`, the
        // removed literal one no longer does.
        let covering = |image: &MetadataImage| -> Vec<AclBinding> {
            let index = image.acls.index();
            index
                .covering(resource_type::TOPIC, "orders")
                .cloned()
                .collect()
        };
        let remaining = acl("ord", pattern_type::PREFIXED, "User:*", operation::WRITE);
        assert_eq!(covering(&image), std::slice::from_ref(&remaining));
        let rebuilt =
            MetadataImage::from_records(&image.to_records(), Provenance::default()).expect("ok");
        assert_eq!(rebuilt.acls, image.acls);
        assert_eq!(covering(&rebuilt), [remaining]);
        // Removing an unknown entry is a replay error, as in Kafka.
        let mut delta = MetadataDelta::new(Arc::new(image));
        assert!(delta
            .replay(&MetadataRecord::RemoveAccessControlEntry { id: first })
            .is_err());
    }

    #[test]
    fn filters_match_as_kafka_acl_binding_filters() {
        let literal = acl(
            "orders",
            pattern_type::LITERAL,
            "User:alice",
            operation::READ,
        );
        let wildcard = acl("*", pattern_type::LITERAL, "User:bob", operation::READ);
        let prefixed = acl(
            "ord",
            pattern_type::PREFIXED,
            "User:alice",
            operation::WRITE,
        );
        let other = acl(
            "payments",
            pattern_type::LITERAL,
            "User:alice",
            operation::READ,
        );
        let all = [&literal, &wildcard, &prefixed, &other];
        let selected = |filter: &AclFilter| -> Vec<&AclBinding> {
            all.iter()
                .copied()
                .filter(|acl| filter.matches(acl))
                .collect()
        };
        assert_eq!(selected(&AclFilter::any()).len(), 4);
        let mut filter = AclFilter::any();
        filter.resource_name = Some("orders".into());
        filter.pattern_type = pattern_type::MATCH;
        assert_eq!(selected(&filter), [&literal, &wildcard, &prefixed]);
        filter.pattern_type = pattern_type::LITERAL;
        assert_eq!(selected(&filter), [&literal]);
        filter.pattern_type = pattern_type::ANY;
        assert_eq!(selected(&filter), [&literal]);
        let mut filter = AclFilter::any();
        filter.pattern_type = pattern_type::PREFIXED;
        assert_eq!(selected(&filter), [&prefixed]);
        let mut filter = AclFilter::any();
        filter.principal = Some("User:alice".into());
        filter.operation = operation::READ;
        assert_eq!(selected(&filter), [&literal, &other]);
        filter.permission_type = permission::DENY;
        assert!(selected(&filter).is_empty());
        let mut bad = AclFilter::any();
        bad.resource_type = resource_type::UNKNOWN;
        assert!(bad.invalid_reason().is_some());
        assert_eq!(AclFilter::any().invalid_reason(), None);
    }
}
