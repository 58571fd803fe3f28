//! Fan-out: one producer and C consumers (each its own group, or each assigning itself every
//! partition) reading the same topic at once: the broker's read amplification.

use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::producer::{BaseProducer, Producer};

use crate::args::Args;
use crate::consume;
use crate::payload;
use crate::produce::{self, DeliveryCounter};

const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
const CONSUMERS_MAX: usize = 64;

pub fn run(args: &Args) -> Result<String, String> {
    let bootstrap = args.string("bootstrap")?;
    let topic = args.string("topic")?;
    let records: u64 = args.number("records")?;
    let size: usize = args.number("size")?;
    let consumers: usize = args.number("consumers")?;
    let groups = args.string_or("groups", "false") == "true";
    if consumers == 0 || consumers > CONSUMERS_MAX {
        return Err(format!("--consumers must be 1..={CONSUMERS_MAX}"));
    }
    let started = Instant::now();
    let readers: Vec<JoinHandle<Result<u64, String>>> = (0..consumers)
        .map(|index| {
            let (bootstrap, topic) = (bootstrap.clone(), topic.clone());
            let group = groups.then(|| format!("fanout-{topic}-{index}"));
            std::thread::spawn(move || {
                let consumer = consume::consumer_from_start(&bootstrap, &topic, group.as_deref())?;
                consume::drain(&consumer, records).map(|(bytes, _)| bytes)
            })
        })
        .collect();
    let counter = DeliveryCounter::default();
    let producer: BaseProducer<DeliveryCounter> = produce::producer_config(args, "5")?
        .create_with_context(counter.clone())
        .map_err(|e| e.to_string())?;
    let value = payload::letters(size);
    for index in 0..records {
        produce::send_blocking(&producer, &topic, &value)?;
        if index % 1024 == 0 {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(FLUSH_TIMEOUT).map_err(|e| e.to_string())?;
    let produce_seconds = started.elapsed().as_secs_f64();
    let mut egress_bytes: u64 = 0;
    for reader in readers {
        egress_bytes += reader
            .join()
            .map_err(|_| "consumer thread panicked".to_string())??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let acked = counter.acked.load(Ordering::Relaxed);
    if acked != records {
        return Err(format!("{acked} of {records} acknowledged"));
    }
    let ingress_bytes = records * size as u64;
    Ok(format!(
        "{{\"records\":{records},\"consumers\":{consumers},\"ingress_bytes\":{ingress_bytes},\
         \"egress_bytes\":{egress_bytes},\"seconds\":{seconds:.3},\
         \"produce_seconds\":{produce_seconds:.3},\"mb_per_s\":{:.2},\"ingress_mb_per_s\":{:.2}}}",
        egress_bytes as f64 / seconds / 1e6,
        ingress_bytes as f64 / produce_seconds / 1e6
    ))
}
