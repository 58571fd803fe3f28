//! Produce throughput: N records of S bytes as fast as the client can send them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::args::Args;
use crate::payload;

/// Flushing the tail of a run takes at most this long before the run counts as failed.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);

/// Counts delivery reports: the producer's view of what the broker acknowledged.
#[derive(Default, Clone)]
pub struct DeliveryCounter {
    pub acked: Arc<AtomicU64>,
    pub failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err((error, _)) => {
                eprintln!("delivery failed: {error}");
                self.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
    }
}

/// Client settings shared by every producing subcommand; the same for both brokers.
pub fn producer_config(args: &Args, linger_ms_default: &str) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", args.string("bootstrap")?)
        .set("acks", args.string_or("acks", "1"))
        .set("compression.type", args.string_or("compression", "none"))
        .set("linger.ms", args.string_or("linger-ms", linger_ms_default))
        .set("batch.size", args.string_or("batch-bytes", "262144"))
        .set("queue.buffering.max.kbytes", "262144")
        .set("enable.idempotence", "false");
    Ok(config)
}

/// Sends one record, polling the producer while its queue is full.
pub fn send_blocking(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    value: &[u8],
) -> Result<(), String> {
    loop {
        match producer.send(BaseRecord::<(), [u8]>::to(topic).payload(value)) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(5));
            }
            Err((error, _)) => return Err(error.to_string()),
        }
    }
}

pub fn run(args: &Args) -> Result<String, String> {
    let topic = args.string("topic")?;
    let records: u64 = args.number("records")?;
    let size: usize = args.number("size")?;
    let counter = DeliveryCounter::default();
    let producer: BaseProducer<DeliveryCounter> = producer_config(args, "5")?
        .create_with_context(counter.clone())
        .map_err(|e| e.to_string())?;
    let value = payload::letters(size);
    let started = Instant::now();
    for index in 0..records {
        send_blocking(&producer, &topic, &value)?;
        if index % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(FLUSH_TIMEOUT).map_err(|e| e.to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let acked = counter.acked.load(Ordering::Relaxed);
    let failed = counter.failed.load(Ordering::Relaxed);
    if acked != records {
        return Err(format!(
            "{acked} of {records} acknowledged, {failed} failed"
        ));
    }
    let bytes = records * size as u64;
    Ok(format!(
        "{{\"records\":{records},\"bytes\":{bytes},\"seconds\":{seconds:.3},\
         \"records_per_s\":{:.1},\"mb_per_s\":{:.2}}}",
        records as f64 / seconds,
        bytes as f64 / seconds / 1e6
    ))
}
