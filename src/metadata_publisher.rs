//! The metadata publisher: turns each new `MetadataImage` into the broker's `TopicsImage`,
//! opening logs for the replicas the image assigns to this node and removing the ones it no
//! longer does (Kafka's `BrokerMetadataPublisher`).
//!
//! It is the only writer of `Broker::replicas` and of the published topics image, and runs on
//! one task: images are handled in order, one at a time, and a slow pass skips straight to the
//! newest image (the watch channel keeps only that one).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use sluice_raft::image::{MetadataImage, TopicImage};
use sluice_storage::LogConfig;
use tokio::sync::watch;
use uuid::Uuid;

use crate::broker::{
    now_ms, partition_dir, Broker, Partition, Replica, Role, Topic, TopicsImage, DELETED_DIR_MARKER,
};
use crate::topic_config;

/// Kafka's `partition.metadata`: the topic id a partition directory belongs to, so that a
/// directory left by a deleted topic is never mistaken for a new topic of the same name.
const PARTITION_METADATA_FILE_NAME: &str = "partition.metadata";

/// Publishes every image from `images` until the quorum stops.
pub async fn run(broker: Arc<Broker>, mut images: watch::Receiver<Arc<MetadataImage>>) {
    loop {
        let image = images.borrow_and_update().clone();
        let index = image.provenance.last_applied_index;
        let publishing = broker.clone();
        let started = std::time::Instant::now();
        // Opening logs reads and fsyncs files: keep it off the async workers.
        let done = tokio::task::spawn_blocking(move || publish(&publishing, &image)).await;
        if let Err(error) = done {
            tracing::error!(%error, "metadata publisher pass failed");
        }
        warn_if_slow(started, index, "installing the view");
        // Leaders and followers switch roles in image order, after the view is installed.
        let topics = broker.topics();
        let started = std::time::Instant::now();
        crate::replication::on_image(&broker, &topics);
        warn_if_slow(started, index, "switching replica roles");
        // Group coordination follows the leadership of the offsets partitions.
        let started = std::time::Instant::now();
        crate::offsets_topic::on_image(&broker, &topics);
        warn_if_slow(started, index, "moving group coordination");
        let started = std::time::Instant::now();
        crate::txn::topic::on_image(&broker, &topics);
        warn_if_slow(started, index, "moving transaction coordination");
        broker.mark_published(index);
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// A publisher step this slow holds back every change after it (requests waiting for their
/// change to be visible here time out): say which step, so a stall can be found.
const PUBLISH_STEP_SLOW: std::time::Duration = std::time::Duration::from_secs(2);

fn warn_if_slow(started: std::time::Instant, index: u64, step: &str) {
    let elapsed = started.elapsed();
    if elapsed > PUBLISH_STEP_SLOW {
        tracing::warn!(?elapsed, index, step, "metadata publisher step was slow");
    }
}

/// Builds and installs the topics view of `image`.
pub fn publish(broker: &Broker, image: &Arc<MetadataImage>) {
    let previous = broker.topics();
    let mut next = TopicsImage {
        metadata: image.clone(),
        ..TopicsImage::default()
    };
    let mut held = HashSet::new();
    for topic in image.topics.by_id.values() {
        let built = build_topic(broker, image, &previous, topic, &mut held);
        let built = Arc::new(built);
        next.by_name.insert(built.name.clone(), built.clone());
        next.by_id.insert(built.id, built);
    }
    let removed: Vec<Arc<Replica>> = {
        let mut replicas = broker.replicas.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<(Uuid, i32)> = replicas
            .keys()
            .filter(|key| !held.contains(*key))
            .copied()
            .collect();
        gone.iter().filter_map(|key| replicas.remove(key)).collect()
    };
    broker.publish(next);
    for replica in removed {
        remove_replica(&replica);
        broker.forget_topic(&replica.topic);
    }
}

fn build_topic(
    broker: &Broker,
    image: &MetadataImage,
    previous: &TopicsImage,
    topic: &TopicImage,
    held: &mut HashSet<(Uuid, i32)>,
) -> Topic {
    let node = broker.node_id();
    let overrides = image
        .configs
        .topic_configs(&topic.name)
        .cloned()
        .unwrap_or_default();
    let config_changed = previous
        .by_id
        .get(&topic.topic_id)
        .is_none_or(|seen| seen.overrides != overrides);
    let log_config = topic_config::log_config(&broker.config, &overrides);
    let mut partitions = Vec::with_capacity(topic.partitions.len());
    for (index, registration) in &topic.partitions {
        let replica = if registration.replicas.contains(&node) {
            held.insert((topic.topic_id, *index));
            local_replica(broker, topic, *index, &log_config, config_changed)
        } else {
            None
        };
        partitions.push(Arc::new(Partition {
            index: *index,
            registration: registration.clone(),
            replica,
        }));
    }
    Topic {
        name: topic.name.clone(),
        id: topic.topic_id,
        overrides,
        partitions,
    }
}

/// The replica this node already holds, or a newly opened one.
fn local_replica(
    broker: &Broker,
    topic: &TopicImage,
    index: i32,
    log_config: &LogConfig,
    config_changed: bool,
) -> Option<Arc<Replica>> {
    let key = (topic.topic_id, index);
    let mut replicas = broker.replicas.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(replica) = replicas.get(&key) {
        if config_changed {
            replica.log.update_config(log_config.clone());
        }
        return Some(replica.clone());
    }
    match open_replica(broker, topic, index, log_config.clone()) {
        Ok(replica) => {
            let replica = Arc::new(replica);
            replicas.insert(key, replica.clone());
            Some(replica)
        }
        Err(error) => {
            tracing::error!(error = %format!("{error:#}"), topic = %topic.name, index, "opening a replica failed");
            None
        }
    }
}

fn open_replica(
    broker: &Broker,
    topic: &TopicImage,
    index: i32,
    log_config: LogConfig,
) -> anyhow::Result<Replica> {
    let dir = partition_dir(&broker.config.data_dir, &topic.name, index);
    claim_directory(&dir, topic.topic_id)?;
    let hint = broker.log_start_offset_hint(&topic.name, index);
    let log = sluice_storage::Log::open(&dir, log_config, hint, now_ms())?;
    tracing::debug!(topic = %topic.name, index, "replica opened");
    Ok(Replica::new(log, topic.name.clone(), topic.topic_id, index))
}

/// Makes `dir` belong to `topic_id`: a directory of another topic id (a deleted topic of the
/// same name this node did not see go) is removed first.
fn claim_directory(dir: &Path, topic_id: Uuid) -> anyhow::Result<()> {
    let marker = dir.join(PARTITION_METADATA_FILE_NAME);
    let wanted = format!("version: 0\ntopic_id: {topic_id}\n");
    match std::fs::read_to_string(&marker) {
        Ok(found) if found == wanted => return Ok(()),
        Ok(_) => {
            tracing::warn!(dir = %dir.display(), "directory of an older topic of this name; removing it");
            remove_directory(dir, topic_id);
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    std::fs::create_dir_all(dir)?;
    let temporary = dir.join(format!("{PARTITION_METADATA_FILE_NAME}.tmp"));
    std::fs::write(&temporary, wanted)?;
    std::fs::rename(&temporary, &marker)?;
    Ok(())
}

/// Closes a replica this node no longer holds and deletes its files.
fn remove_replica(replica: &Replica) {
    // Its fetcher (a follower moved off by a reassignment) stops at its next look at the role.
    replica.progress().role = Role::None;
    if let Err(error) = replica.log.close() {
        tracing::warn!(%error, topic = %replica.topic, "closing a removed replica");
    }
    remove_directory(replica.log.dir(), replica.topic_id);
    tracing::info!(topic = %replica.topic, partition = replica.index, "replica removed");
}

/// Renames first (atomic: a restart either sees the live directory, which the image no
/// longer names, or the marked one, which it finishes removing), then deletes.
fn remove_directory(dir: &Path, topic_id: Uuid) {
    let mut doomed = dir.as_os_str().to_owned();
    doomed.push(format!("{DELETED_DIR_MARKER}{}", topic_id.simple()));
    if let Err(error) = std::fs::rename(dir, &doomed) {
        tracing::warn!(%error, dir = %dir.display(), "renaming a removed partition");
        return;
    }
    if let Err(error) = std::fs::remove_dir_all(&doomed) {
        tracing::warn!(%error, "removing a deleted partition; retried at next start");
    }
}
