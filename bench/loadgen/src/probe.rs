//! Start-up probe: retries until one record is acknowledged (acks=all), then prints the wall
//! clock time of that acknowledgement, so the harness can subtract the broker's spawn time.

use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, Producer};

use crate::args::Args;
use crate::produce::{self, DeliveryCounter};

const CONNECT_POLL: Duration = Duration::from_millis(1);

pub fn run(args: &Args) -> Result<String, String> {
    let bootstrap = args.string("bootstrap")?;
    let topic = args.string("topic")?;
    let deadline = Instant::now() + Duration::from_millis(args.number_or("deadline-ms", 120_000)?);
    let address: SocketAddr = bootstrap
        .parse()
        .map_err(|_| format!("bootstrap must be ip:port, not {bootstrap}"))?;
    // librdkafka backs off between reconnects; polling the port first keeps that backoff out of
    // the measurement.
    while TcpStream::connect_timeout(&address, CONNECT_POLL * 100).is_err() {
        if Instant::now() > deadline {
            return Err("broker port never opened".to_string());
        }
        std::thread::sleep(CONNECT_POLL);
    }
    let counter = DeliveryCounter::default();
    let producer: BaseProducer<DeliveryCounter> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("retry.backoff.ms", "5")
        .set("retry.backoff.max.ms", "50")
        .set("reconnect.backoff.ms", "5")
        .set("reconnect.backoff.max.ms", "50")
        .set("topic.metadata.refresh.fast.interval.ms", "5")
        .set("message.timeout.ms", "5000")
        .create_with_context(counter.clone())
        .map_err(|e| e.to_string())?;
    loop {
        produce::send_blocking(&producer, &topic, b"probe")?;
        let _ = producer.flush(Duration::from_secs(10));
        if counter.acked.load(Ordering::Relaxed) > 0 {
            break;
        }
        if Instant::now() > deadline {
            return Err("no produce acknowledged before the deadline".to_string());
        }
    }
    let acked_epoch_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    Ok(format!("{{\"acked_epoch_ns\":{acked_epoch_ns}}}"))
}
