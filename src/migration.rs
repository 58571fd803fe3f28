//! One-time import of a pre-quorum data dir: the single-node broker kept its topics in the
//! redb metadata store; at the first start with the quorum they become controller records
//! (each partition a single replica on this node), and their logs stay where they are.

use std::collections::BTreeMap;
use std::path::Path;

use crate::broker::{Broker, LocalState};

/// Written once the import is done, so topics deleted later are never imported again.
const IMPORT_DONE_FILE_NAME: &str = "quorum-import.done";

/// Imports the legacy topics the quorum does not know yet. Only a single-node quorum imports:
/// a cluster's nodes never had a single-node data dir to bring.
pub async fn import_legacy_topics(broker: &Broker, local_topics: Vec<sluice_storage::TopicRecord>) {
    let marker = broker.config.data_dir.join(IMPORT_DONE_FILE_NAME);
    if marker.exists() || broker.config.voters.is_some() {
        return;
    }
    let known = broker.topics();
    for record in local_topics {
        if known.by_name.contains_key(&record.name) {
            continue;
        }
        let assignments: BTreeMap<i32, Vec<i32>> = (0..record.partition_count)
            .map(|index| (index, vec![broker.node_id()]))
            .collect();
        let created = broker
            .create_topic(
                &record.name,
                -1,
                -1,
                assignments,
                record.configs.clone(),
                false,
            )
            .await;
        match created {
            Ok(_) => tracing::info!(topic = %record.name, "imported a pre-quorum topic"),
            Err(error) => tracing::error!(topic = %record.name, ?error, "importing a topic failed"),
        }
    }
    if let Err(error) = write_marker(&marker) {
        tracing::error!(%error, "writing the import marker");
    }
}

fn write_marker(path: &Path) -> std::io::Result<()> {
    std::fs::write(path, b"done\n")
}

/// The legacy topics, read before the broker takes ownership of the local state.
pub fn legacy_topics(local: &LocalState) -> Vec<sluice_storage::TopicRecord> {
    local.legacy_topics().unwrap_or_else(|error| {
        tracing::error!(error = %format!("{error:#}"), "reading pre-quorum topics");
        Vec::new()
    })
}
