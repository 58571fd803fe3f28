//! End-to-end latency at a fixed rate: a producer paced at R records/s stamps each record with
//! its send time; a consumer in the same process (same clock) records receive minus send.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, Producer};

use crate::args::Args;
use crate::consume;
use crate::payload;
use crate::produce::{self, DeliveryCounter};

/// Records sent in the first second are not counted: connection set-up, not steady state.
const WARMUP: Duration = Duration::from_secs(1);
const STAMP_BYTES: usize = 8;
const RATE_MAX: u64 = 1_000_000;

pub fn run(args: &Args) -> Result<String, String> {
    let bootstrap = args.string("bootstrap")?;
    let topic = args.string("topic")?;
    let rate: u64 = args.number("rate")?;
    let seconds: u64 = args.number("seconds")?;
    let size: usize = args.number_or("size", 100)?;
    if rate == 0 || rate > RATE_MAX || size < STAMP_BYTES {
        return Err(format!(
            "need 0 < rate <= {RATE_MAX} and size >= {STAMP_BYTES}"
        ));
    }
    let total = rate * seconds;
    let base = Instant::now();
    let consumer = consume::consumer_from_start(&bootstrap, &topic, None)?;
    let done = Arc::new(AtomicBool::new(false));
    let sender = {
        let producer: BaseProducer<DeliveryCounter> = produce::producer_config(args, "0")?
            .create_with_context(DeliveryCounter::default())
            .map_err(|e| e.to_string())?;
        let (topic, done) = (topic.clone(), done.clone());
        std::thread::spawn(move || send_paced(&producer, &topic, rate, total, size, base, &done))
    };
    let mut latencies_us: Vec<u64> = Vec::with_capacity(total as usize);
    let mut received: u64 = 0;
    let mut last_at = Instant::now();
    while received < total {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                let now_ns = base.elapsed().as_nanos() as u64;
                last_at = Instant::now();
                received += 1;
                let stamp = message.payload().and_then(|p| p.get(..STAMP_BYTES));
                let Some(stamp) = stamp else { continue };
                let sent_ns = u64::from_le_bytes(stamp.try_into().unwrap_or([0; 8]));
                if sent_ns >= WARMUP.as_nanos() as u64 {
                    latencies_us.push(now_ns.saturating_sub(sent_ns) / 1000);
                }
            }
            Some(Err(error)) => return Err(error.to_string()),
            None if last_at.elapsed() > consume::IDLE_MAX => {
                return Err(format!("stalled after {received} of {total} records"));
            }
            None => {}
        }
    }
    done.store(true, Ordering::Relaxed);
    sender
        .join()
        .map_err(|_| "producer thread panicked".to_string())??;
    latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        let index = ((latencies_us.len() as f64 - 1.0) * p).round() as usize;
        latencies_us.get(index).copied().unwrap_or(0) as f64 / 1000.0
    };
    Ok(format!(
        "{{\"rate\":{rate},\"records\":{total},\"measured\":{},\"p50_ms\":{:.3},\
         \"p90_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"max_ms\":{:.3}}}",
        latencies_us.len(),
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(0.999),
        percentile(1.0)
    ))
}

fn send_paced(
    producer: &BaseProducer<DeliveryCounter>,
    topic: &str,
    rate: u64,
    total: u64,
    size: usize,
    base: Instant,
    done: &AtomicBool,
) -> Result<(), String> {
    let mut value = payload::letters(size);
    for index in 0..total {
        let due = Duration::from_nanos(index * 1_000_000_000 / rate);
        loop {
            let elapsed = base.elapsed();
            if elapsed >= due {
                break;
            }
            producer.poll(Duration::ZERO);
            std::thread::sleep((due - elapsed).min(Duration::from_millis(1)));
        }
        let sent_ns = base.elapsed().as_nanos() as u64;
        value[..STAMP_BYTES].copy_from_slice(&sent_ns.to_le_bytes());
        produce::send_blocking(producer, topic, &value)?;
        producer.poll(Duration::ZERO);
    }
    while !done.load(Ordering::Relaxed) {
        producer.poll(Duration::from_millis(10));
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(|e| e.to_string())
}
