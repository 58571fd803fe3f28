//! The ACL authoriser: Kafka's `StandardAuthorizer` rules over the ACL sub-image of the
//! current metadata image.
//!
//! A request is allowed when its principal is a super user, or when no entry covering the
//! resource denies it and at least one allows it. An entry covers a resource by a literal
//! name, the `*` literal, or a prefix; it applies to the request's principal (or `User:*`)
//! and host (or `*`). A DENY applies to its own operation (or ALL); an ALLOW also implies
//! DESCRIBE when it is READ, WRITE, DELETE or ALTER, and DESCRIBE_CONFIGS when it is
//! ALTER_CONFIGS. With no entry covering the resource at all, the answer is
//! `allow.everyone.if.no.acl.found` (false by default: deny).
//!
//! Checks read the image of the moment, so an entry revoked by DeleteAcls applies to a
//! client's next request. They look entries up in the image's [`AclIndex`]: a check reads
//! only the entries covering its resource, not every entry.
//!
//! [`AclIndex`]: sluice_raft::image::acls::AclIndex

use std::collections::BTreeSet;

use sluice_raft::image::acls::{operation, pattern_type, permission, WILDCARD};
use sluice_raft::image::AclsImage;

/// The principal every user matches in an entry.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The class name Kafka's KRaft brokers use for ACLs (`authorizer.class.name`); sluice's
/// authoriser follows its rules.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The ZooKeeper-era class name, accepted as the same authoriser.
pub const ACL_AUTHORIZER: &str = "kafka.security.authorizer.AclAuthorizer";

/// Who asks: the connection's principal (`User:name`) and the client's address.
#[derive(Debug, Clone, Copy)]
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    super_users: BTreeSet<String>,
    allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    /// `super_users` is Kafka's `super.users`: principals separated by `;`.
    pub fn new(super_users: &str, allow_everyone_if_no_acl_found: bool) -> Authorizer {
        let super_users = super_users
            .split(';')
            .map(str::trim)
            .filter(|principal| !principal.is_empty())
            .map(str::to_string)
            .collect();
        Authorizer {
            super_users,
            allow_everyone_if_no_acl_found,
        }
    }

    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// Whether `requester` may do `wanted` on the resource `name` of `resource_type`.
    pub fn authorize(
        &self,
        acls: &AclsImage,
        requester: Requester<'_>,
        wanted: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if self.is_super_user(requester.principal) {
            return true;
        }
        let mut covered = false;
        let mut allowed = false;
        for acl in acls.index().covering(resource_type, name) {
            covered = true;
            if !applies_to(&acl.principal, &acl.host, requester) {
                continue;
            }
            match acl.permission_type {
                permission::DENY if acl.operation == wanted || acl.operation == operation::ALL => {
                    return false;
                }
                permission::ALLOW if implies(acl.operation, wanted) => allowed = true,
                _ => {}
            }
        }
        allowed || (!covered && self.allow_everyone_if_no_acl_found)
    }

    /// Whether `requester` may do `wanted` on some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`, used where any topic's WRITE stands for IDEMPOTENT_WRITE):
    /// an ALLOW on any name of that type, unless a DENY covers every name (`*` or the empty
    /// prefix).
    pub fn authorize_any(
        &self,
        acls: &AclsImage,
        requester: Requester<'_>,
        wanted: i8,
        resource_type: i8,
    ) -> bool {
        if self.is_super_user(requester.principal) {
            return true;
        }
        let mut allowed = false;
        for acl in acls.index().of_type(resource_type) {
            if !applies_to(&acl.principal, &acl.host, requester) {
                continue;
            }
            let everything = (acl.pattern_type == pattern_type::LITERAL
                && acl.resource_name == WILDCARD)
                || (acl.pattern_type == pattern_type::PREFIXED && acl.resource_name.is_empty());
            match acl.permission_type {
                permission::DENY
                    if everything
                        && (acl.operation == wanted || acl.operation == operation::ALL) =>
                {
                    return false;
                }
                permission::ALLOW if implies(acl.operation, wanted) => allowed = true,
                _ => {}
            }
        }
        allowed
    }

    /// The bits of `candidates` (Kafka's `authorized_operations` bit set: bit n is the
    /// operation with code n) that `requester` is allowed on the resource.
    pub fn authorized_operations(
        &self,
        acls: &AclsImage,
        requester: Requester<'_>,
        resource_type: i8,
        name: &str,
        candidates: i32,
    ) -> i32 {
        (0..31)
            .filter(|bit| candidates & (1 << bit) != 0)
            .filter(|bit| self.authorize(acls, requester, *bit as i8, resource_type, name))
            .fold(0, |bits, bit| bits | (1 << bit))
    }
}

fn applies_to(principal: &str, host: &str, requester: Requester<'_>) -> bool {
    let principal_matches = principal == requester.principal
        || (principal == WILDCARD_PRINCIPAL && requester.principal.starts_with("User:"));
    principal_matches && (host == WILDCARD || host == requester.host)
}

/// Whether an ALLOW of `granted` allows `wanted` (Kafka's implied operations).
fn implies(granted: i8, wanted: i8) -> bool {
    if granted == wanted || granted == operation::ALL {
        return true;
    }
    match wanted {
        operation::DESCRIBE => matches!(
            granted,
            operation::READ | operation::WRITE | operation::DELETE | operation::ALTER
        ),
        operation::DESCRIBE_CONFIGS => granted == operation::ALTER_CONFIGS,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use sluice_raft::image::acls::resource_type;
    use sluice_raft::image::AclBinding;
    use uuid::Uuid;

    use super::*;

    const ALICE: Requester<'static> = Requester {
        principal: "User:alice",
        host: "10.0.0.1",
    };
    const BOB: Requester<'static> = Requester {
        principal: "User:bob",
        host: "10.0.0.2",
    };

    struct Entry<'a> {
        name: &'a str,
        pattern: i8,
        principal: &'a str,
        host: &'a str,
        operation: i8,
        permission: i8,
    }

    fn allow<'a>(name: &'a str, principal: &'a str, operation: i8) -> Entry<'a> {
        Entry {
            name,
            pattern: pattern_type::LITERAL,
            principal,
            host: WILDCARD,
            operation,
            permission: permission::ALLOW,
        }
    }

    fn image(entries: &[Entry<'_>]) -> AclsImage {
        let mut acls = Vec::new();
        for (index, entry) in entries.iter().enumerate() {
            let acl = AclBinding {
                resource_type: resource_type::TOPIC,
                resource_name: entry.name.to_string(),
                pattern_type: entry.pattern,
                principal: entry.principal.to_string(),
                host: entry.host.to_string(),
                operation: entry.operation,
                permission_type: entry.permission,
            };
            acls.push((Uuid::from_u128(index as u128), acl));
        }
        AclsImage::from_entries(acls)
    }

    fn topic(
        authorizer: &Authorizer,
        acls: &AclsImage,
        who: Requester<'_>,
        wanted: i8,
        name: &str,
    ) -> bool {
        authorizer.authorize(acls, who, wanted, resource_type::TOPIC, name)
    }

    #[test]
    fn deny_by_default_and_super_users_pass() {
        let authorizer = Authorizer::new("User:admin; User:ops", false);
        let acls = image(&[]);
        assert!(!topic(&authorizer, &acls, ALICE, operation::READ, "t"));
        let admin = Requester {
            principal: "User:admin",
            host: "1.2.3.4",
        };
        assert!(topic(&authorizer, &acls, admin, operation::ALTER, "t"));
        let ops = Requester {
            principal: "User:ops",
            host: "1.2.3.4",
        };
        assert!(topic(&authorizer, &acls, ops, operation::READ, "t"));
        // allow.everyone.if.no.acl.found: only resources no entry covers.
        let open = Authorizer::new("", true);
        assert!(topic(&open, &acls, ALICE, operation::READ, "t"));
        let acls = image(&[allow("t", "User:bob", operation::READ)]);
        assert!(!topic(&open, &acls, ALICE, operation::READ, "t"));
        assert!(topic(&open, &acls, ALICE, operation::READ, "other"));
    }

    #[test]
    fn operations_imply_describe_and_describe_configs_only() {
        let authorizer = Authorizer::default();
        for granted in [
            operation::READ,
            operation::WRITE,
            operation::DELETE,
            operation::ALTER,
        ] {
            let acls = image(&[allow("t", "User:alice", granted)]);
            assert!(topic(&authorizer, &acls, ALICE, operation::DESCRIBE, "t"));
            assert!(topic(&authorizer, &acls, ALICE, granted, "t"));
            assert!(!topic(&authorizer, &acls, ALICE, operation::CREATE, "t"));
        }
        let acls = image(&[allow("t", "User:alice", operation::CREATE)]);
        assert!(!topic(&authorizer, &acls, ALICE, operation::DESCRIBE, "t"));
        let acls = image(&[allow("t", "User:alice", operation::DESCRIBE)]);
        assert!(!topic(&authorizer, &acls, ALICE, operation::READ, "t"));
        let acls = image(&[allow("t", "User:alice", operation::ALTER_CONFIGS)]);
        assert!(topic(
            &authorizer,
            &acls,
            ALICE,
            operation::DESCRIBE_CONFIGS,
            "t"
        ));
        assert!(!topic(&authorizer, &acls, ALICE, operation::DESCRIBE, "t"));
        let acls = image(&[allow("t", "User:alice", operation::ALL)]);
        for wanted in [operation::READ, operation::ALTER_CONFIGS, operation::DELETE] {
            assert!(topic(&authorizer, &acls, ALICE, wanted, "t"));
        }
    }

    #[test]
    fn deny_wins_over_allow_for_its_operation_only() {
        let authorizer = Authorizer::default();
        let mut deny = allow("t", "User:alice", operation::READ);
        deny.permission = permission::DENY;
        let acls = image(&[allow("*", "User:*", operation::ALL), deny]);
        assert!(!topic(&authorizer, &acls, ALICE, operation::READ, "t"));
        // Denying READ does not deny the DESCRIBE it would imply.
        assert!(topic(&authorizer, &acls, ALICE, operation::DESCRIBE, "t"));
        assert!(topic(&authorizer, &acls, BOB, operation::READ, "t"));
        assert!(topic(&authorizer, &acls, ALICE, operation::READ, "u"));
        let mut deny_all = allow("t", "User:*", operation::ALL);
        deny_all.permission = permission::DENY;
        let acls = image(&[allow("t", "User:alice", operation::READ), deny_all]);
        assert!(!topic(&authorizer, &acls, ALICE, operation::DESCRIBE, "t"));
        // A super user is never denied.
        let admin = Authorizer::new("User:alice", false);
        assert!(topic(&admin, &acls, ALICE, operation::READ, "t"));
    }

    #[test]
    fn patterns_principals_and_hosts_match_as_kafka() {
        let authorizer = Authorizer::default();
        let prefixed = Entry {
            pattern: pattern_type::PREFIXED,
            ..allow("orders-", "User:alice", operation::WRITE)
        };
        let from_host = Entry {
            host: "10.0.0.2",
            ..allow("payments", "User:*", operation::READ)
        };
        let acls = image(&[
            prefixed,
            from_host,
            allow("*", "User:bob", operation::DESCRIBE),
        ]);
        assert!(topic(
            &authorizer,
            &acls,
            ALICE,
            operation::WRITE,
            "orders-eu"
        ));
        assert!(topic(
            &authorizer,
            &acls,
            ALICE,
            operation::WRITE,
            "orders-"
        ));
        assert!(!topic(
            &authorizer,
            &acls,
            ALICE,
            operation::WRITE,
            "orders"
        ));
        assert!(!topic(
            &authorizer,
            &acls,
            BOB,
            operation::WRITE,
            "orders-eu"
        ));
        // User:* matches every user, the host must match.
        assert!(topic(&authorizer, &acls, BOB, operation::READ, "payments"));
        assert!(!topic(
            &authorizer,
            &acls,
            ALICE,
            operation::READ,
            "payments"
        ));
        // The `*` literal covers every topic name.
        assert!(topic(
            &authorizer,
            &acls,
            BOB,
            operation::DESCRIBE,
            "anything"
        ));
        // Another resource type is not covered by topic entries.
        assert!(!authorizer.authorize(
            &acls,
            BOB,
            operation::DESCRIBE,
            resource_type::GROUP,
            "anything"
        ));
    }

    #[test]
    fn authorized_operations_and_by_resource_type() {
        let authorizer = Authorizer::default();
        let acls = image(&[allow("t", "User:alice", operation::READ)]);
        let candidates =
            (1 << operation::READ) | (1 << operation::WRITE) | (1 << operation::DESCRIBE);
        let bits =
            authorizer.authorized_operations(&acls, ALICE, resource_type::TOPIC, "t", candidates);
        assert_eq!(bits, (1 << operation::READ) | (1 << operation::DESCRIBE));
        assert!(authorizer.authorize_any(&acls, ALICE, operation::READ, resource_type::TOPIC));
        assert!(!authorizer.authorize_any(&acls, ALICE, operation::WRITE, resource_type::TOPIC));
        let mut deny = allow("*", "User:alice", operation::READ);
        deny.permission = permission::DENY;
        let acls = image(&[allow("t", "User:alice", operation::READ), deny]);
        assert!(!authorizer.authorize_any(&acls, ALICE, operation::READ, resource_type::TOPIC));
    }

    /// The checks as a scan of every entry, without the index: the reference the index must
    /// agree with.
    fn authorize_linear(
        authorizer: &Authorizer,
        acls: &AclsImage,
        requester: Requester<'_>,
        wanted: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if authorizer.is_super_user(requester.principal) {
            return true;
        }
        let covering: Vec<&AclBinding> = acls
            .by_id
            .values()
            .filter(|acl| acl.covers(resource_type, name))
            .collect();
        let applying = covering
            .iter()
            .filter(|acl| applies_to(&acl.principal, &acl.host, requester));
        let mut allowed = false;
        for acl in applying {
            let denies = acl.operation == wanted || acl.operation == operation::ALL;
            if acl.permission_type == permission::DENY && denies {
                return false;
            }
            allowed |= acl.permission_type == permission::ALLOW && implies(acl.operation, wanted);
        }
        allowed || (covering.is_empty() && authorizer.allow_everyone_if_no_acl_found)
    }

    fn authorize_any_linear(
        acls: &AclsImage,
        requester: Requester<'_>,
        wanted: i8,
        resource_type: i8,
    ) -> bool {
        let of_type = acls.by_id.values().filter(|acl| {
            acl.resource_type == resource_type && applies_to(&acl.principal, &acl.host, requester)
        });
        let mut allowed = false;
        for acl in of_type {
            let everything = (acl.pattern_type == pattern_type::LITERAL
                && acl.resource_name == WILDCARD)
                || (acl.pattern_type == pattern_type::PREFIXED && acl.resource_name.is_empty());
            let denies = acl.operation == wanted || acl.operation == operation::ALL;
            if acl.permission_type == permission::DENY && everything && denies {
                return false;
            }
            allowed |= acl.permission_type == permission::ALLOW && implies(acl.operation, wanted);
        }
        allowed
    }

    /// Entries per generated image: the size the index is for.
    const GENERATED_ACLS: usize = 10_000;
    const QUERIES_PER_IMAGE: usize = 300;
    const PRINCIPALS: [&str; 4] = ["User:alice", "User:bob", "User:*", "Group:ops"];
    const HOSTS: [&str; 3] = ["*", "10.0.0.1", "10.0.0.2"];
    const RESOURCE_TYPES: [i8; 3] = [
        resource_type::TOPIC,
        resource_type::GROUP,
        resource_type::CLUSTER,
    ];

    /// Short names over a small alphabet (a multi-byte letter among them), so literal names,
    /// prefixes and the `*` wildcard collide often.
    fn name() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![9 => "[ab\u{e9}-]{0,5}", 1 => Just(WILDCARD.to_string())]
    }

    fn binding() -> impl proptest::strategy::Strategy<Value = AclBinding> {
        use proptest::prelude::*;
        (
            proptest::sample::select(&RESOURCE_TYPES[..]),
            name(),
            prop_oneof![
                10 => Just(pattern_type::LITERAL),
                10 => Just(pattern_type::PREFIXED),
                1 => Just(pattern_type::MATCH),
            ],
            proptest::sample::select(&PRINCIPALS[..]),
            proptest::sample::select(&HOSTS[..]),
            operation::ALL..=operation::IDEMPOTENT_WRITE,
            prop_oneof![1 => Just(permission::DENY), 30 => Just(permission::ALLOW)],
        )
            .prop_map(
                |(kind, name, pattern, principal, host, operation, permission)| AclBinding {
                    resource_type: kind,
                    resource_name: name,
                    pattern_type: pattern,
                    principal: principal.to_string(),
                    host: host.to_string(),
                    operation,
                    permission_type: permission,
                },
            )
    }

    type Query = (i8, String, usize, usize, i8);

    fn query() -> impl proptest::strategy::Strategy<Value = Query> {
        use proptest::prelude::*;
        (
            proptest::sample::select(&RESOURCE_TYPES[..]),
            prop_oneof![4 => name(), 1 => "[ab\u{e9}-]{6,9}"],
            0..2usize,
            1..HOSTS.len(),
            operation::READ..=operation::IDEMPOTENT_WRITE,
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(6))]

        #[test]
        fn indexed_checks_answer_as_the_linear_scan(
            bindings in proptest::collection::vec(binding(), GENERATED_ACLS),
            queries in proptest::collection::vec(query(), QUERIES_PER_IMAGE),
        ) {
            let acls = AclsImage::from_entries(
                bindings.into_iter().enumerate().map(|(i, acl)| (Uuid::from_u128(i as u128), acl)),
            );
            let mut allowed_count = 0;
            let authorizers = [Authorizer::new("User:admin", false), Authorizer::new("", true)];
            for authorizer in &authorizers {
                for (kind, name, principal, host, wanted) in &queries {
                    let requester = Requester {
                        principal: PRINCIPALS[*principal],
                        host: HOSTS[*host],
                    };
                    let indexed = authorizer.authorize(&acls, requester, *wanted, *kind, name);
                    let linear =
                        authorize_linear(authorizer, &acls, requester, *wanted, *kind, name);
                    proptest::prop_assert_eq!(indexed, linear, "{} {} {}", kind, name, wanted);
                    allowed_count += usize::from(indexed);
                    let indexed = authorizer.authorize_any(&acls, requester, *wanted, *kind);
                    let linear = authorize_any_linear(&acls, requester, *wanted, *kind);
                    proptest::prop_assert_eq!(indexed, linear, "any {} {}", kind, wanted);
                }
            }
            // Both answers occur: the comparison is not between two constant answers.
            let total = authorizers.len() * queries.len();
            proptest::prop_assert!(allowed_count > 0 && allowed_count < total, "{allowed_count}/{total}");
        }
    }

    #[test]
    fn the_index_covers_exactly_what_covers_selects() {
        let acls = image(&[
            allow("*", "User:bob", operation::READ),
            Entry {
                pattern: pattern_type::PREFIXED,
                ..allow("", "User:bob", operation::READ)
            },
            Entry {
                pattern: pattern_type::PREFIXED,
                ..allow("\u{e9}", "User:bob", operation::READ)
            },
            allow("\u{e9}t\u{e9}", "User:bob", operation::READ),
            Entry {
                pattern: pattern_type::MATCH,
                ..allow("\u{e9}t\u{e9}", "User:bob", operation::READ)
            },
        ]);
        for (name, expected) in [("\u{e9}t\u{e9}", 4), ("*", 2), ("x", 2), ("\u{e9}", 3)] {
            let indexed = acls.index().covering(resource_type::TOPIC, name).count();
            let linear = acls
                .by_id
                .values()
                .filter(|acl| acl.covers(resource_type::TOPIC, name))
                .count();
            assert_eq!((indexed, linear), (expected, expected), "{name}");
        }
        assert_eq!(acls.index().covering(resource_type::GROUP, "x").count(), 0);
        assert_eq!(acls.index().of_type(resource_type::TOPIC).count(), 4);
    }
}
