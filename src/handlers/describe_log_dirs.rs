//! DescribeLogDirs: one log directory holding every partition.

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::{str_bytes, RequestContext};

pub fn handle(
    context: &RequestContext<'_>,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !context.authorize_cluster(sluice_raft::image::acls::operation::DESCRIBE) {
        // Kafka: nothing described; v3+ say why.
        let mut response = DescribeLogDirsResponse::default();
        response.error_code = super::authz::CLUSTER_AUTHORIZATION_FAILED;
        return response;
    }
    let broker = context.broker;
    let image = broker.topics();
    let data_dir = std::fs::canonicalize(&broker.config.data_dir)
        .unwrap_or_else(|_| broker.config.data_dir.clone());
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = str_bytes(data_dir.display().to_string());
    result.total_bytes = -1;
    result.usable_bytes = -1;
    // Null: every topic; otherwise the named ones (unknown names are left out, as Kafka does).
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        None => image
            .by_name
            .keys()
            .map(|name| (name.clone(), None))
            .collect(),
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), Some(t.partitions)))
            .collect(),
    };
    for (name, partitions) in wanted {
        let Some(topic) = image.by_name.get(&name) else {
            continue;
        };
        let mut entry = DescribeLogDirsTopic::default();
        entry.name = TopicName(str_bytes(name));
        for partition in &topic.partitions {
            let Some(replica) = &partition.replica else {
                continue;
            };
            if partitions
                .as_ref()
                .is_some_and(|p| !p.contains(&partition.index))
            {
                continue;
            }
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = partition.index;
            p.partition_size = i64::try_from(replica.log.size_bytes()).unwrap_or(i64::MAX);
            p.offset_lag = 0;
            p.is_future_key = false;
            entry.partitions.push(p);
        }
        result.topics.push(entry);
    }
    let mut response = DescribeLogDirsResponse::default();
    response.results = vec![result];
    response
}
