//! kill -9 in the middle of a produce stream: every record the broker acknowledged (acks=all)
//! survives the crash at exactly its acknowledged offset, the log stays contiguous from 0 and
//! readable to its end, and producing after the restart continues at the log end.
//!
//! A real client (confluent-kafka, `python/crash_producer.py`) produces numbered records and
//! prints one line per delivery report; the test kills the broker after a given number of
//! acknowledgements while the producer is still sending, stops the producer, restarts the
//! broker on the same data dir and reads the whole partition back (`python/crash_consumer.py`).
//! Several rounds hit the same data dir at different points; one variant uses tiny segments so
//! kills land near segment rolls.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{python, run_python, topic_name, Broker};

/// How long a producer may take to collect one round's acknowledgements.
const ACKS_DURATION_MAX: Duration = Duration::from_secs(180);

/// How long a killed producer may take to close its stdout.
const PRODUCER_EXIT_DURATION_MAX: Duration = Duration::from_secs(30);

/// Numbers of the records of round `r` start at `r * ROUND_NUMBERS`, so every key names its
/// round and no two rounds share a key. Far apart: on a loaded machine a producer queues over
/// a million records before its first acknowledgement arrives.
const ROUND_NUMBERS: u64 = 1_000_000_000;

/// Records produced after the last restart, by a producer that runs to completion.
const FINAL_RECORDS: u64 = 50;

/// The value `crash_producer.py` gives record `number`.
fn value_of(number: u64) -> String {
    format!("value-{number}-{}", "x".repeat((number % 97) as usize))
}

/// A record as a client reported it: at `offset`, key `number`, value checked on parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: i64,
    number: u64,
}

/// Parses an `offset key value` line; the value must be the one record `key` was given.
fn parse_entry(line: &str) -> Entry {
    let mut fields = line.split(' ');
    let (Some(offset), Some(key), Some(value), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        panic!("malformed line {line:?}");
    };
    let offset: i64 = offset
        .parse()
        .unwrap_or_else(|_| panic!("offset in {line:?}"));
    let number: u64 = key.parse().unwrap_or_else(|_| panic!("key in {line:?}"));
    assert_eq!(
        value,
        value_of(number),
        "value of record {number} at offset {offset}"
    );
    Entry { offset, number }
}

fn script(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join(name)
}

/// A producer streaming records; its delivery reports arrive as lines on `reports`.
struct ProducerRun {
    child: Child,
    reports: Receiver<String>,
    stderr: tempfile::NamedTempFile,
}

impl ProducerRun {
    fn spawn(bootstrap: &str, topic: &str, first_number: u64, count: Option<u64>) -> ProducerRun {
        let stderr = tempfile::NamedTempFile::new().expect("stderr file");
        let mut command = Command::new(python());
        command
            .arg(script("crash_producer.py"))
            .args([bootstrap, topic, &first_number.to_string()])
            .args(count.map(|count| count.to_string()))
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr.reopen().expect("reopen stderr file"));
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn producer: {error}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (sender, reports) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        ProducerRun {
            child,
            reports,
            stderr,
        }
    }

    /// Collects reports until `count` have arrived; panics at [`ACKS_DURATION_MAX`] or when the
    /// producer exits first.
    fn wait_for_acks(&mut self, count: usize, acks: &mut Vec<Entry>) {
        let started = Instant::now();
        while acks.len() < count {
            let left = ACKS_DURATION_MAX.saturating_sub(started.elapsed());
            match self.reports.recv_timeout(left.min(Duration::from_secs(1))) {
                Ok(line) => acks.push(parse_entry(&line)),
                Err(RecvTimeoutError::Timeout) if !left.is_zero() => continue,
                Err(error) => panic!(
                    "{} of {count} acks after {:?} ({error:?}); producer stderr:\n{}",
                    acks.len(),
                    started.elapsed(),
                    self.stderr_text()
                ),
            }
        }
    }

    /// Kills the producer and collects the reports it printed before dying: a response the
    /// broker sent just before its own kill may still be read by the client.
    fn kill(mut self, acks: &mut Vec<Entry>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.drain(acks);
    }

    /// Waits for the producer to exit by itself with status 0, collecting every report.
    fn finish(mut self, acks: &mut Vec<Entry>) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll producer") {
                break status;
            }
            if started.elapsed() > ACKS_DURATION_MAX {
                let _ = self.child.kill();
                panic!("producer did not finish; stderr:\n{}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(
            status.success(),
            "producer failed ({status}):\n{}",
            self.stderr_text()
        );
        self.drain(acks);
    }

    fn drain(&self, acks: &mut Vec<Entry>) {
        loop {
            match self.reports.recv_timeout(PRODUCER_EXIT_DURATION_MAX) {
                Ok(line) => acks.push(parse_entry(&line)),
                Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => panic!("producer stdout still open after exit"),
            }
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }
}

/// The whole partition as a consumer reads it, and the watermarks the broker reported.
struct LogRead {
    entries: Vec<Entry>,
    low: i64,
    high: i64,
}

fn read_log(broker: &Broker, topic: &str) -> LogRead {
    let output = run_python("crash_consumer.py", &[&broker.bootstrap(), topic]);
    let mut lines: Vec<&str> = output.lines().collect();
    let end = lines
        .pop()
        .unwrap_or_else(|| panic!("consumer printed nothing"));
    let watermarks: Vec<i64> = match end.strip_prefix("END ") {
        Some(rest) => rest
            .split(' ')
            .map(|n| n.parse().expect("watermark"))
            .collect(),
        None => panic!("consumer output does not end with END: {end:?}"),
    };
    assert_eq!(watermarks.len(), 2, "{end:?}");
    LogRead {
        entries: lines.into_iter().map(parse_entry).collect(),
        low: watermarks[0],
        high: watermarks[1],
    }
}

/// What the test knows about the partition: every acknowledged record by offset, and the log
/// as last read after a restart (which no later crash may change).
#[derive(Default)]
struct Expected {
    acked: BTreeMap<i64, u64>,
    log: Vec<Entry>,
}

impl Expected {
    /// Adds one producer run's acks; they must start at the log end seen before the run and
    /// not contradict earlier acks.
    fn add_acks(&mut self, acks: &[Entry], round: u64) {
        let end = i64::try_from(self.log.len()).unwrap();
        let first = acks.iter().map(|ack| ack.offset).min();
        assert_eq!(
            first,
            Some(end),
            "round {round}: first ack should be at the log end"
        );
        for ack in acks {
            assert_eq!(
                ack.number / ROUND_NUMBERS,
                round,
                "round {round}: stray ack {ack:?}"
            );
            let previous = self.acked.insert(ack.offset, ack.number);
            assert!(
                previous.is_none(),
                "offset {} acked twice: {previous:?} and {ack:?}",
                ack.offset
            );
        }
    }

    /// The log after a restart: contiguous from 0, read to its end, the previous log as a
    /// prefix, every acked record at its offset, nothing a producer did not send.
    fn check(&mut self, read: LogRead, rounds_run: u64) {
        assert_eq!(read.low, 0, "log start moved");
        assert_eq!(
            i64::try_from(read.entries.len()).unwrap(),
            read.high,
            "records vs high watermark"
        );
        for (position, entry) in read.entries.iter().enumerate() {
            assert_eq!(
                entry.offset,
                i64::try_from(position).unwrap(),
                "offsets are contiguous"
            );
            assert!(
                entry.number / ROUND_NUMBERS < rounds_run,
                "record never produced: {entry:?}"
            );
        }
        assert!(
            read.entries.starts_with(&self.log),
            "records present before the crash changed (had {}, now {})",
            self.log.len(),
            read.entries.len()
        );
        for (&offset, &number) in &self.acked {
            let found = read.entries.get(usize::try_from(offset).unwrap());
            let found = found.map(|entry| entry.number);
            assert_eq!(
                found,
                Some(number),
                "acknowledged record at offset {offset} (of {})",
                read.high
            );
        }
        self.log = read.entries;
    }
}

/// Rounds of: stream, kill -9 after `acks_per_round[r]` acks, restart, check. Then a last
/// producer that runs to completion, a clean shutdown, and at least `segments_min` segments.
fn crash_rounds(broker_args: &[&str], acks_per_round: &[usize], segments_min: usize) {
    let mut broker = Broker::start_with(broker_args);
    let topic = topic_name("crash");
    let created = RawClient::connect(&broker.bootstrap()).create_topic(&topic, 1, &[]);
    assert_eq!(created, 0, "create {topic}");
    let mut expected = Expected::default();
    for (round, &ack_count) in acks_per_round.iter().enumerate() {
        let round = u64::try_from(round).unwrap();
        let first_number = round * ROUND_NUMBERS;
        let mut producer = ProducerRun::spawn(&broker.bootstrap(), &topic, first_number, None);
        let mut acks = Vec::new();
        producer.wait_for_acks(ack_count, &mut acks);
        broker.kill9();
        producer.kill(&mut acks);
        println!(
            "round {round}: killed after {} acks (wanted {ack_count})",
            acks.len()
        );
        expected.add_acks(&acks, round);
        broker.restart();
        expected.check(read_log(&broker, &topic), round + 1);
        println!(
            "round {round}: log holds {} records after restart",
            expected.log.len()
        );
    }
    let round = u64::try_from(acks_per_round.len()).unwrap();
    let producer = ProducerRun::spawn(
        &broker.bootstrap(),
        &topic,
        round * ROUND_NUMBERS,
        Some(FINAL_RECORDS),
    );
    let mut acks = Vec::new();
    producer.finish(&mut acks);
    assert_eq!(
        acks.len(),
        usize::try_from(FINAL_RECORDS).unwrap(),
        "final producer acks"
    );
    let end = i64::try_from(expected.log.len()).unwrap();
    let offsets: Vec<i64> = acks.iter().map(|ack| ack.offset).collect();
    let wanted: Vec<i64> = (end..end + offsets.len() as i64).collect();
    assert_eq!(
        offsets, wanted,
        "producing after restart continues at the log end"
    );
    expected.add_acks(&acks, round);
    expected.check(read_log(&broker, &topic), round + 1);
    broker.stop();
    let segments = segment_files(broker.data_dir());
    assert!(
        segments >= segments_min,
        "{segments} segment files, wanted {segments_min} or more"
    );
}

/// `*.log` files anywhere under `dir`: the partition's segments.
fn segment_files(dir: &Path) -> usize {
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("read data dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            count += segment_files(&path);
        } else if path.extension().is_some_and(|extension| extension == "log") {
            count += 1;
        }
    }
    count
}

#[test]
fn kill9_mid_stream_loses_no_acknowledged_record() {
    crash_rounds(&[], &[2000, 700, 1300], 1);
}

#[test]
fn kill9_near_segment_rolls_loses_no_acknowledged_record() {
    // About 100 bytes a record: dozens of segments, so some kills land near a roll.
    crash_rounds(&["--segment-bytes", "8192"], &[1500, 900, 1100], 20);
}
