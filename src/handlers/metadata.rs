//! Metadata: brokers, controller and topics from one topics image; auto-creates topics when
//! allowed, as Kafka does.

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::ResponseError;
use sluice_raft::image::acls::{operation, resource_type};
use sluice_raft::image::{MetadataImage, LEADER_NONE};
use uuid::Uuid;

use super::{
    str_bytes, RequestContext, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL,
    TOPIC_OPERATIONS_ALL,
};
use crate::broker::Topic;
use crate::net::listeners::listener_named;
use crate::topic_name::validate_topic_name;

/// Most topics one Metadata request may name; a longer list is answered for its first part.
const REQUESTED_TOPICS_MAX: usize = 100_000;

/// The name or id a client asked about.
enum Wanted {
    Name(String),
    Id(Uuid),
}

pub async fn handle(context: &RequestContext<'_>, request: MetadataRequest) -> MetadataResponse {
    let broker = context.broker;
    let version = context.api_version;
    let mut response = MetadataResponse::default();
    let image = broker.topics();
    response.brokers = live_brokers(&image.metadata, context.listener_name);
    response.cluster_id = Some(str_bytes(broker.cluster_id.clone()));
    response.controller_id = BrokerId(controller_id(broker));
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        super::authz::cluster_authorized_operations(context, CLUSTER_OPERATIONS_ALL)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let with_operations = request.include_topic_authorized_operations;
    // v0: an empty list means every topic; v1+: a null list does.
    let wanted = match request.topics {
        None => None,
        Some(topics) if version == 0 && topics.is_empty() => None,
        Some(topics) => Some(topics),
    };
    let Some(wanted) = wanted else {
        let image = broker.topics();
        response.topics = image
            .by_name
            .values()
            // Topics the principal may not describe are left out, as Kafka does.
            .filter(|topic| context.authorize_topic(operation::DESCRIBE, &topic.name))
            .map(|topic| topic_entry(context, topic, with_operations))
            .collect();
        return response;
    };
    // Kafka: v0-v3 always allow auto-creation; v4+ say so per request.
    let may_create =
        broker.config.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    for requested in wanted.into_iter().take(REQUESTED_TOPICS_MAX) {
        let wanted = match (&requested.name, requested.topic_id) {
            (Some(name), _) => Wanted::Name(name.0.to_string()),
            (None, id) => Wanted::Id(id),
        };
        let entry = match wanted {
            Wanted::Name(name) => named_topic(context, &name, may_create, with_operations).await,
            Wanted::Id(id) => topic_by_id(context, id, with_operations),
        };
        response.topics.push(entry);
    }
    response
}

/// Registered, unfenced brokers with their first listener, as Kafka's metadata cache lists
/// them (fenced brokers are left out).
fn live_brokers(image: &MetadataImage, listener_name: &str) -> Vec<MetadataResponseBroker> {
    image
        .cluster
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .filter_map(|registration| {
            let listener = listener_named(&registration.listeners, listener_name)?;
            let mut node = MetadataResponseBroker::default();
            node.node_id = BrokerId(registration.broker_id);
            node.host = str_bytes(listener.host.clone());
            node.port = i32::from(listener.port);
            node.rack = registration.rack.clone().map(str_bytes);
            Some(node)
        })
        .collect()
}

/// The controller id clients see: the active controller (the Raft leader) when it is also an
/// active broker; -1 while there is none. A controller-only leader is no broker clients can
/// reach, so, as KRaft brokers do, another broker stands in (admin requests sent to it are
/// forwarded to the controller): the lowest active broker id, so every node names the same.
pub fn controller_id(broker: &crate::broker::Broker) -> i32 {
    let Some(leader) = broker
        .quorum
        .leader_id()
        .and_then(|id| i32::try_from(id).ok())
    else {
        return -1;
    };
    let topics = broker.topics();
    let cluster = &topics.metadata.cluster;
    if cluster.is_active(leader) {
        return leader;
    }
    let stand_in = cluster
        .brokers
        .values()
        .filter(|registration| !registration.fenced)
        .map(|registration| registration.broker_id)
        .min();
    stand_in.unwrap_or(-1)
}

async fn named_topic(
    context: &RequestContext<'_>,
    name: &str,
    may_create: bool,
    with_operations: bool,
) -> MetadataResponseTopic {
    let describable = context.authorize_topic(operation::DESCRIBE, name);
    if let Some(topic) = context.broker.topics().by_name.get(name) {
        if !describable {
            return error_entry(Some(name), ResponseError::TopicAuthorizationFailed);
        }
        return topic_entry(context, topic, with_operations);
    }
    if validate_topic_name(name).is_err() {
        return error_entry(Some(name), ResponseError::InvalidTopicException);
    }
    // Kafka: auto-creation needs CREATE on the cluster or the topic; whoever may not even
    // describe the topic learns nothing about it.
    let creatable = may_create
        && (context.authorize_cluster(operation::CREATE)
            || context.authorize_topic(operation::CREATE, name));
    if !creatable {
        let error = if describable {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::TopicAuthorizationFailed
        };
        return error_entry(Some(name), error);
    }
    if name == crate::group::OFFSETS_TOPIC {
        // Created with its own partition count, replication and retention, as by
        // FindCoordinator (Kafka's auto-creation of internal topics does the same).
        // Boxed: keeps the request future's type shallow (see find_coordinator).
        let created = Box::pin(crate::offsets_topic::ensure_created(context.broker));
        return match created.await {
            Ok(topic) => topic_entry(context, &topic, with_operations),
            Err(error) => error_entry(Some(name), error.code),
        };
    }
    let partitions = context.broker.config.default_partitions;
    let created = context
        .broker
        .create_topic(
            name,
            partitions,
            -1,
            Default::default(),
            Default::default(),
            false,
        )
        .await;
    match created {
        Ok(topic) => topic_entry(context, &topic, with_operations),
        // Another request created it meanwhile.
        Err(error) if error.code == ResponseError::TopicAlreadyExists => {
            match context.broker.topics().by_name.get(name) {
                Some(topic) => topic_entry(context, topic, with_operations),
                None => error_entry(Some(name), ResponseError::LeaderNotAvailable),
            }
        }
        Err(error) => {
            tracing::warn!(topic = name, ?error, "auto-creating a topic failed");
            error_entry(Some(name), error.code)
        }
    }
}

fn topic_by_id(
    context: &RequestContext<'_>,
    id: Uuid,
    with_operations: bool,
) -> MetadataResponseTopic {
    match context.broker.topics().by_id.get(&id) {
        Some(topic) if !context.authorize_topic(operation::DESCRIBE, &topic.name) => {
            let mut entry = error_entry(None, ResponseError::TopicAuthorizationFailed);
            entry.topic_id = id;
            entry
        }
        Some(topic) => topic_entry(context, topic, with_operations),
        None => {
            let mut entry = error_entry(None, ResponseError::UnknownTopicId);
            entry.topic_id = id;
            entry
        }
    }
}

fn error_entry(name: Option<&str>, error: ResponseError) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.error_code = error.code();
    entry.name = name.map(|n| TopicName(str_bytes(n)));
    entry.topic_authorized_operations = AUTHORIZED_OPERATIONS_OMITTED;
    entry
}

pub fn topic_entry(
    context: &RequestContext<'_>,
    topic: &Arc<Topic>,
    with_operations: bool,
) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(str_bytes(topic.name.clone())));
    if context.api_version >= 10 {
        entry.topic_id = topic.id;
    }
    entry.is_internal = topic.name == crate::group::OFFSETS_TOPIC;
    entry.topic_authorized_operations = if with_operations {
        context.authorized_operations(resource_type::TOPIC, &topic.name, TOPIC_OPERATIONS_ALL)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    entry.partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            let registration = &partition.registration;
            let mut p = MetadataResponsePartition::default();
            p.partition_index = partition.index;
            p.leader_id = BrokerId(registration.leader);
            if registration.leader == LEADER_NONE {
                p.error_code = ResponseError::LeaderNotAvailable.code();
            }
            if context.api_version >= 7 {
                p.leader_epoch = registration.leader_epoch;
            }
            p.replica_nodes = registration
                .replicas
                .iter()
                .map(|id| BrokerId(*id))
                .collect();
            p.isr_nodes = registration.isr.iter().map(|id| BrokerId(*id)).collect();
            p
        })
        .collect();
    entry
}
