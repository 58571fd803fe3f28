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
//! client's next request.

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
        for acl in acls.by_id.values() {
            if !acl.covers(resource_type, name) {
                continue;
            }
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
        for acl in acls.by_id.values() {
            if acl.resource_type != resource_type
                || !applies_to(&acl.principal, &acl.host, requester)
            {
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
        let mut acls = AclsImage::default();
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
            acls.by_id.insert(Uuid::from_u128(index as u128), acl);
        }
        acls
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
}
