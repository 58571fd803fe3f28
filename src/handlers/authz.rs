//! The authorisation checks handlers make, as Kafka's `KafkaApis` makes them: each reads the
//! ACLs of the current metadata image, so a revoked entry applies to the next request. With
//! no authoriser configured every check passes.

use sluice_raft::image::acls::{operation, resource_type, CLUSTER_RESOURCE_NAME};

use std::io::Write;
use std::net::IpAddr;

use sluice_raft::image::acls::AclsImage;

use super::RequestContext;
use crate::security::authorizer::{Authorizer, Requester};

/// The longest text of an IP address (an IPv4-mapped IPv6 address is 45 characters).
const HOST_TEXT_BYTES_MAX: usize = 64;

/// `ip` as ACL host entries spell it, written into `buffer`.
fn host_text(ip: IpAddr, buffer: &mut [u8; HOST_TEXT_BYTES_MAX]) -> &str {
    let mut cursor = std::io::Cursor::new(&mut buffer[..]);
    // An address's text always fits; a failed write would leave a prefix, matching no entry.
    let _ = write!(cursor, "{ip}");
    let length = usize::try_from(cursor.position()).unwrap_or(0);
    std::str::from_utf8(&buffer[..length]).unwrap_or("")
}

pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
/// ACL APIs on a broker with no authoriser.
pub const SECURITY_DISABLED: i16 = 54;

/// Group operations in `authorized_operations`: READ, DELETE, DESCRIBE.
pub const GROUP_OPERATIONS_ALL: i32 =
    (1 << operation::READ) | (1 << operation::DELETE) | (1 << operation::DESCRIBE);

impl RequestContext<'_> {
    /// Whether this request's principal may do `wanted` on `name` of `resource_type`.
    pub fn authorize(&self, wanted: i8, resource_type: i8, name: &str) -> bool {
        self.check(|authorizer, acls, requester| {
            authorizer.authorize(acls, requester, wanted, resource_type, name)
        })
        .unwrap_or(true)
    }

    /// Runs `check` against the current ACLs as this request's principal and peer host;
    /// `None` when no authoriser is configured. The host is written on the stack: checks run
    /// per topic on Produce and Fetch.
    fn check<R>(
        &self,
        check: impl FnOnce(&Authorizer, &AclsImage, Requester<'_>) -> R,
    ) -> Option<R> {
        let authorizer = self.authorizer?;
        let image = self.broker.topics();
        let mut buffer = [0u8; HOST_TEXT_BYTES_MAX];
        let requester = Requester {
            principal: self.principal,
            host: host_text(self.peer.ip(), &mut buffer),
        };
        Some(check(authorizer, &image.metadata.acls, requester))
    }

    pub fn authorize_topic(&self, wanted: i8, topic: &str) -> bool {
        self.authorize(wanted, resource_type::TOPIC, topic)
    }

    pub fn authorize_group(&self, wanted: i8, group: &str) -> bool {
        self.authorize(wanted, resource_type::GROUP, group)
    }

    pub fn authorize_cluster(&self, wanted: i8) -> bool {
        self.authorize(wanted, resource_type::CLUSTER, CLUSTER_RESOURCE_NAME)
    }

    /// Whether the principal may do `wanted` on some resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`).
    pub fn authorize_any(&self, wanted: i8, resource_type: i8) -> bool {
        self.check(|authorizer, acls, requester| {
            authorizer.authorize_any(acls, requester, wanted, resource_type)
        })
        .unwrap_or(true)
    }

    /// The `authorized_operations` bit set of a resource: `candidates` (every operation of
    /// the resource type) narrowed to what the principal is allowed.
    pub fn authorized_operations(&self, resource_type: i8, name: &str, candidates: i32) -> i32 {
        self.check(|authorizer, acls, requester| {
            authorizer.authorized_operations(acls, requester, resource_type, name, candidates)
        })
        .unwrap_or(candidates)
    }
}

/// Whether the principal may use `transactional_id` (WRITE on the TransactionalId resource),
/// as Kafka checks for Produce, InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
/// EndTxn and TxnOffsetCommit. A refusal is TRANSACTIONAL_ID_AUTHORIZATION_FAILED (53).
pub fn authorize_transactional_id(context: &RequestContext<'_>, transactional_id: &str) -> bool {
    context.authorize(
        operation::WRITE,
        resource_type::TRANSACTIONAL_ID,
        transactional_id,
    )
}

/// Whether the principal may produce idempotently: IDEMPOTENT_WRITE on the cluster, or
/// WRITE on any topic (Kafka's InitProducerId rule since KIP-679).
pub fn authorize_idempotent_write(context: &RequestContext<'_>) -> bool {
    context.authorize_cluster(operation::IDEMPOTENT_WRITE)
        || context.authorize_any(operation::WRITE, resource_type::TOPIC)
}

/// ConfigResource types (not ACL resource types).
const CONFIG_RESOURCE_TOPIC: i8 = 2;
const CONFIG_RESOURCE_BROKER: i8 = 4;
const CONFIG_RESOURCE_BROKER_LOGGER: i8 = 8;
const CONFIG_RESOURCE_CLIENT_METRICS: i8 = 16;
const CONFIG_RESOURCE_GROUP: i8 = 32;

/// The refusal of `wanted` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource, as
/// Kafka checks it (`ConfigHelper`, `ControllerApis.authorizeAlterResource`): on the topic
/// for a topic, on the group for a group, on the cluster for brokers, broker loggers and
/// client metrics; another type is INVALID_REQUEST. `None`: allowed.
pub fn config_refusal(
    context: &RequestContext<'_>,
    wanted: i8,
    config_resource_type: i8,
    name: &str,
) -> Option<(kafka_protocol::ResponseError, String)> {
    use kafka_protocol::ResponseError;
    match config_resource_type {
        CONFIG_RESOURCE_TOPIC => (!context.authorize_topic(wanted, name)).then(|| {
            let text = format!("Topic authorization failed for {name}");
            (ResponseError::TopicAuthorizationFailed, text)
        }),
        CONFIG_RESOURCE_GROUP => (!context.authorize_group(wanted, name)).then(|| {
            let text = format!("Group authorization failed for {name}");
            (ResponseError::GroupAuthorizationFailed, text)
        }),
        CONFIG_RESOURCE_BROKER | CONFIG_RESOURCE_BROKER_LOGGER | CONFIG_RESOURCE_CLIENT_METRICS => {
            (!context.authorize_cluster(wanted)).then(|| {
                let text = "Cluster authorization failed.".to_string();
                (ResponseError::ClusterAuthorizationFailed, text)
            })
        }
        other => Some((
            ResponseError::InvalidRequest,
            format!("Unexpected resource type {other}."),
        )),
    }
}

/// The `cluster_authorized_operations` of Metadata and DescribeCluster: the allowed cluster
/// operations, or none at all without DESCRIBE on the cluster (Kafka's `AuthHelper`).
pub fn cluster_authorized_operations(context: &RequestContext<'_>, candidates: i32) -> i32 {
    if !context.authorize_cluster(operation::DESCRIBE) {
        return 0;
    }
    context.authorized_operations(resource_type::CLUSTER, CLUSTER_RESOURCE_NAME, candidates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_text_is_the_address_as_displayed() {
        let mut buffer = [0u8; HOST_TEXT_BYTES_MAX];
        for ip in [
            "10.0.0.1",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(host_text(ip, &mut buffer), ip.to_string());
        }
    }
}
