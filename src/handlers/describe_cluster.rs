//! DescribeCluster: the registered brokers and the active controller, from this node's image.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::ResponseError;
use sluice_raft::image::Admission;

use crate::net::listeners::listener_named;

use super::{str_bytes, RequestContext, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL};

/// DescribeCluster endpoint types (KIP-919): brokers, or controllers.
const ENDPOINT_TYPE_BROKERS: i8 = 1;
const ENDPOINT_TYPE_CONTROLLERS: i8 = 2;

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = context.broker;
    let mut response = DescribeClusterResponse::default();
    response.endpoint_type = request.endpoint_type;
    response.cluster_id = str_bytes(broker.cluster_id.clone());
    if request.endpoint_type != ENDPOINT_TYPE_BROKERS
        && request.endpoint_type != ENDPOINT_TYPE_CONTROLLERS
    {
        response.error_code = ResponseError::UnsupportedEndpointType.code();
        response.error_message = Some(str_bytes("Unsupported endpoint type"));
        return response;
    }
    response.controller_id = BrokerId(super::metadata::controller_id(broker));
    let include_fenced = request.include_fenced_brokers;
    let image = broker.topics();
    let draining = crate::balancer::draining_brokers(&image.metadata);
    response.brokers = image
        .metadata
        .cluster
        .brokers
        .values()
        .filter_map(|registration| {
            let listener = listener_named(&registration.listeners, context.listener_name)?;
            let mut node = DescribeClusterBroker::default();
            node.broker_id = BrokerId(registration.broker_id);
            node.host = str_bytes(listener.host.clone());
            node.port = i32::from(listener.port);
            node.rack = registration.rack.clone().map(str_bytes);
            node.is_fenced = registration.fenced;
            if draining.contains(&registration.broker_id) {
                node.unknown_tagged_fields
                    .insert(crate::admission::DRAINING_TAG, bytes::Bytes::new());
            }
            if let Admission::Refused(reason) = &registration.admission {
                node.unknown_tagged_fields.insert(
                    crate::admission::REFUSAL_TAG,
                    bytes::Bytes::copy_from_slice(reason.as_bytes()),
                );
            }
            Some(node)
        })
        // Fenced brokers only when asked for (KIP-1073, v2+).
        .filter(|node| !node.is_fenced || (context.api_version >= 2 && include_fenced))
        .collect();
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        super::authz::cluster_authorized_operations(context, CLUSTER_OPERATIONS_ALL)
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    response
}
