//! Kafka 0.8-0.10 clients: each legacy request is up-converted into the modern request struct,
//! served by the modern handler (so there is one implementation of every behaviour), and its
//! answer down-converted. Only record data needs real conversion: message sets become v2
//! batches on produce (`produce`), and stored batches become message sets on fetch (`fetch`).

use kafka_protocol::messages::TopicName;
use sluice_wire::legacy::{LegacyRequest, LegacyResponse};

use super::{str_bytes, RequestContext};

mod fetch;
mod list_offsets;
mod offsets;
mod produce;
pub mod stats;

/// Serves one legacy request. `None` means no response is sent (Produce with acks=0).
pub async fn dispatch(
    context: &RequestContext<'_>,
    request: LegacyRequest,
) -> Option<LegacyResponse> {
    let response = match request {
        LegacyRequest::Produce(request) => {
            return produce::handle(context, request)
                .await
                .map(LegacyResponse::Produce)
        }
        LegacyRequest::Fetch(request) => {
            LegacyResponse::Fetch(fetch::handle(context, request).await)
        }
        LegacyRequest::ListOffsets(request) => {
            LegacyResponse::ListOffsets(list_offsets::handle(context, request))
        }
        LegacyRequest::OffsetCommit(request) => {
            LegacyResponse::OffsetCommit(offsets::commit(context, request).await)
        }
        LegacyRequest::OffsetFetch(request) => {
            LegacyResponse::OffsetFetch(offsets::fetch(context, request))
        }
    };
    Some(response)
}

/// The context the modern handler sees: the same connection, at the modern `api_version` the
/// legacy request was up-converted to.
fn modern_context<'a>(context: &RequestContext<'a>, api_version: i16) -> RequestContext<'a> {
    RequestContext {
        broker: context.broker,
        api_version,
        peer: context.peer,
        client_id: context.client_id.clone(),
        listener_name: context.listener_name,
        connection: context.connection,
        principal: context.principal,
        authorizer: context.authorizer,
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(str_bytes(name))
}

#[cfg(test)]
mod tests;
