//! Fan-out: one producer and C consumers (each its own group, or each assigning itself every
//! partition) reading the same topic at once: the broker's read amplification.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};

use crate::args::Args;
use crate::consume;
use crate::payload;
use crate::produce::{self, DeliveryCounter};

const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
const CONSUMERS_MAX: usize = 64;
/// Group joins taking longer than this fail the run.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

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
    let ready = Arc::new(AtomicUsize::new(0));
    let readers: Vec<JoinHandle<Result<u64, String>>> = (0..consumers)
        .map(|index| {
            let (bootstrap, topic, ready) = (bootstrap.clone(), topic.clone(), ready.clone());
            let group = groups.then(|| format!("fanout-{topic}-{index}"));
            std::thread::spawn(move || {
                let consumer = consume::consumer_from_start(&bootstrap, &topic, group.as_deref())?;
                let (early_records, early_bytes) = wait_assigned(&consumer)?;
                ready.fetch_add(1, Ordering::SeqCst);
                consume::drain(&consumer, records - early_records)
                    .map(|(bytes, _)| bytes + early_bytes)
            })
        })
        .collect();
    // The clock starts once every consumer has its partitions: group join time is a separate
    // matter from egress throughput.
    let join_started = Instant::now();
    while ready.load(Ordering::SeqCst) < consumers {
        if readers.iter().any(|reader| reader.is_finished())
            || join_started.elapsed() > JOIN_TIMEOUT
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let join_ms = join_started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
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
         \"egress_bytes\":{egress_bytes},\"seconds\":{seconds:.3},\"join_ms\":{join_ms:.1},\
         \"produce_seconds\":{produce_seconds:.3},\"mb_per_s\":{:.2},\"ingress_mb_per_s\":{:.2}}}",
        egress_bytes as f64 / seconds / 1e6,
        ingress_bytes as f64 / produce_seconds / 1e6
    ))
}

/// Polls until a group member has its assignment (at once for an assign() consumer); returns
/// the records and bytes that arrived meanwhile.
fn wait_assigned(consumer: &BaseConsumer) -> Result<(u64, u64), String> {
    let (mut records, mut bytes) = (0u64, 0u64);
    let deadline = Instant::now() + JOIN_TIMEOUT;
    loop {
        let assigned = consumer.assignment().map_err(|e| e.to_string())?;
        if assigned.count() > 0 {
            return Ok((records, bytes));
        }
        if Instant::now() > deadline {
            return Err("no assignment before the join timeout".to_string());
        }
        match consumer.poll(Duration::from_millis(10)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(error)) => return Err(error.to_string()),
            None => {}
        }
    }
}
