//! One-time import of `offsets.redb`, where single-node brokers kept committed offsets before
//! they became records of `__consumer_offsets`: at start each row is committed into the
//! offsets topic (as a standalone commit, its timestamp kept), then the file is renamed
//! `offsets.redb.imported`. A failed import leaves the file for the next start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use sluice_storage::LegacyOffset;

use crate::broker::Broker;
use crate::group::outcome::MemberRef;
use crate::group::{CommittedOffset, OffsetCommit};
use crate::offsets_topic;

const LEGACY_OFFSETS_FILE_NAME: &str = "offsets.redb";
const IMPORTED_SUFFIX: &str = ".imported";
/// How long the import waits for this node to load a group's offsets partition.
const LOAD_WAIT_MAX: Duration = Duration::from_secs(30);
/// Partitions per imported commit, so one record batch stays well below its size limit.
const COMMITS_PER_BATCH_MAX: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("creating the offsets topic: {0:?}")]
    Topic(ResponseError),
    #[error("the offsets partition of group {0} did not load here")]
    NotLoaded(String),
    #[error("committing the offsets of group {group}: {error:?}")]
    Commit { group: String, error: ResponseError },
}

/// Imports `<data-dir>/offsets.redb` if there is one. Only a single-node broker imports: a
/// cluster's nodes never had the single-node store.
pub async fn import_legacy_offsets(broker: &Arc<Broker>) {
    let path = broker.config.data_dir.join(LEGACY_OFFSETS_FILE_NAME);
    if !path.exists() {
        return;
    }
    if broker.config.voters.is_some() {
        tracing::warn!(path = %path.display(), "offsets.redb is imported by a single-node broker only; left as is");
        return;
    }
    let reading = path.clone();
    let rows =
        match tokio::task::spawn_blocking(move || sluice_storage::read_legacy_offsets(&reading))
            .await
        {
            Ok(Ok(rows)) => rows,
            Ok(Err(error)) => {
                tracing::error!(%error, "reading offsets.redb; not imported");
                return;
            }
            Err(error) => {
                tracing::error!(%error, "reading offsets.redb; not imported");
                return;
            }
        };
    match import_rows(broker, rows).await {
        Ok(count) => {
            let mut imported = path.as_os_str().to_owned();
            imported.push(IMPORTED_SUFFIX);
            if let Err(error) = std::fs::rename(&path, &imported) {
                tracing::error!(%error, "renaming offsets.redb after its import");
            }
            tracing::info!(
                offsets = count,
                "committed offsets imported from offsets.redb"
            );
        }
        Err(error) => tracing::error!(%error, "importing offsets.redb; retried at next start"),
    }
}

/// Commits `rows` into the offsets topic, group by group; returns how many.
pub async fn import_rows(broker: &Broker, rows: Vec<LegacyOffset>) -> Result<usize, ImportError> {
    if rows.is_empty() {
        return Ok(0);
    }
    offsets_topic::ensure_created(broker)
        .await
        .map_err(|error| ImportError::Topic(error.code))?;
    let count = rows.len();
    let mut by_group: BTreeMap<String, Vec<OffsetCommit>> = BTreeMap::new();
    for row in rows {
        by_group.entry(row.group).or_default().push(OffsetCommit {
            topic: row.topic,
            partition: row.partition,
            committed: CommittedOffset {
                offset: row.offset,
                leader_epoch: row.leader_epoch,
                metadata: row.metadata,
                commit_timestamp_ms: row.commit_timestamp_ms,
            },
        });
    }
    let standalone = MemberRef {
        member_id: String::new(),
        group_instance_id: None,
        generation_id: -1,
    };
    for (group, commits) in by_group {
        let partition = broker.groups.partition_for(&group);
        if !broker.groups.wait_loaded(partition, LOAD_WAIT_MAX).await {
            return Err(ImportError::NotLoaded(group));
        }
        for chunk in commits.chunks(COMMITS_PER_BATCH_MAX) {
            let committed = broker.groups.commit(&group, &standalone, chunk.to_vec());
            committed.await.map_err(|error| ImportError::Commit {
                group: group.clone(),
                error,
            })?;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Endpoint;
    use crate::config::Config;
    use clap::Parser;

    #[tokio::test]
    async fn legacy_rows_become_committed_offsets_of_the_offsets_topic() {
        let data_dir = tempfile::tempdir().expect("tempdir");
        let data_dir_text = data_dir.path().to_str().expect("utf-8").to_string();
        let config = Config::try_parse_from([
            "sluice",
            "--data-dir",
            &data_dir_text,
            "--raft-listen-address",
            "127.0.0.1:0",
            // No listener runs in process: nothing to admit.
            "--admission-check",
            "false",
        ])
        .expect("config");
        let endpoint = Endpoint {
            host: "127.0.0.1".into(),
            port: 9092,
        };
        let (broker, _publisher) = crate::start_broker(config, endpoint).await.expect("broker");
        let row = |group: &str, partition: i32, offset: i64| LegacyOffset {
            group: group.into(),
            topic: "t".into(),
            partition,
            offset,
            leader_epoch: 4,
            metadata: format!("m{offset}"),
            commit_timestamp_ms: 1_700_000_000_000,
        };
        let rows = vec![row("a", 0, 10), row("a", 1, 11), row("b", 0, 12)];
        assert_eq!(import_rows(&broker, rows).await.expect("import"), 3);
        let fetched = broker.groups.fetch_offsets("a", None).expect("coordinated");
        let found: Vec<(String, i32, i64, i32, String, i64)> = fetched
            .into_iter()
            .map(|(topic, partition, committed)| {
                let c = committed.expect("committed");
                (
                    topic,
                    partition,
                    c.offset,
                    c.leader_epoch,
                    c.metadata,
                    c.commit_timestamp_ms,
                )
            })
            .collect();
        let expected = |partition, offset: i64| {
            let metadata = format!("m{offset}");
            (
                "t".to_string(),
                partition,
                offset,
                4,
                metadata,
                1_700_000_000_000,
            )
        };
        assert_eq!(found, [expected(0, 10), expected(1, 11)]);
        let b = broker.groups.fetch_offsets("b", None).expect("coordinated");
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].2.as_ref().map(|c| c.offset), Some(12));
        // The rows are records of the topic: a reload (a new leader) sees them too.
        let topic = broker.topics();
        let offsets = &topic.by_name[crate::group::OFFSETS_TOPIC];
        let partition = broker.groups.partition_for("a");
        let led = offsets.partitions[partition as usize]
            .replica
            .clone()
            .expect("replica");
        let (replayed, _) = offsets_topic::load(&led).expect("replay");
        let a = &replayed["a"];
        assert_eq!(a.get("t", 0).map(|c| c.offset), Some(10));
        assert_eq!(a.get("t", 1).map(|c| c.offset), Some(11));
    }
}
