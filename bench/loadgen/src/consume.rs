//! Consume throughput: read N records of a topic from its first offset, with `assign()` or
//! as a member of a consumer group.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::args::Args;

/// No record for this long means the broker stalled: the run fails instead of hanging.
pub const IDLE_MAX: Duration = Duration::from_secs(30);
const METADATA_TIMEOUT: Duration = Duration::from_secs(30);

/// A consumer that starts at the first offset: a group member (`group` is `Some`) or one that
/// assigns itself every partition of `topic`.
pub fn consumer_from_start(
    bootstrap: &str,
    topic: &str,
    group: Option<&str>,
) -> Result<BaseConsumer, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group.unwrap_or("sluice-loadgen-assign"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "1048576")
        .set("queued.max.messages.kbytes", "262144");
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    if group.is_some() {
        consumer.subscribe(&[topic]).map_err(|e| e.to_string())?;
    } else {
        let metadata = consumer
            .fetch_metadata(Some(topic), METADATA_TIMEOUT)
            .map_err(|e| e.to_string())?;
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            assignment
                .add_partition_offset(topic, partition.id(), Offset::Beginning)
                .map_err(|e| e.to_string())?;
        }
        if assignment.count() == 0 {
            return Err(format!("topic {topic} has no partitions"));
        }
        consumer.assign(&assignment).map_err(|e| e.to_string())?;
    }
    Ok(consumer)
}

/// Reads until `records` records arrived; returns (bytes, time of the first record).
pub fn drain(consumer: &BaseConsumer, records: u64) -> Result<(u64, Instant), String> {
    let mut count: u64 = 0;
    let mut bytes: u64 = 0;
    let mut first_at: Option<Instant> = None;
    let mut last_at = Instant::now();
    while count < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                first_at.get_or_insert_with(Instant::now);
                last_at = Instant::now();
                count += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(error)) => return Err(error.to_string()),
            None if last_at.elapsed() > IDLE_MAX => {
                return Err(format!("stalled after {count} of {records} records"));
            }
            None => {}
        }
    }
    Ok((bytes, first_at.unwrap_or_else(Instant::now)))
}

pub fn run(args: &Args) -> Result<String, String> {
    let bootstrap = args.string("bootstrap")?;
    let topic = args.string("topic")?;
    let records: u64 = args.number("records")?;
    let group = args.string_or("group", "");
    let started = Instant::now();
    let consumer = consumer_from_start(
        &bootstrap,
        &topic,
        (!group.is_empty()).then_some(group.as_str()),
    )?;
    let (bytes, first_at) = drain(&consumer, records)?;
    let total_seconds = started.elapsed().as_secs_f64();
    let seconds = first_at.elapsed().as_secs_f64().max(1e-6);
    Ok(format!(
        "{{\"records\":{records},\"bytes\":{bytes},\"seconds\":{seconds:.3},\
         \"first_record_ms\":{:.1},\"total_seconds\":{total_seconds:.3},\
         \"records_per_s\":{:.1},\"mb_per_s\":{:.2}}}",
        (first_at - started).as_secs_f64() * 1e3,
        records as f64 / seconds,
        bytes as f64 / seconds / 1e6
    ))
}
