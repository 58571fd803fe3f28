//! `FailoverStream` (integration-tests/java): a Java idempotent acks=all producer and a
//! consumer running while a test kills, adds or drains brokers, and the checks of what it
//! printed against the partitions' logs.

use std::fs::File;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::raw_client::RawClient;
use crate::{java_command, wait_until, Broker};

/// How long the Java program may take to flush, close and exit once told to stop.
const JAVA_STOP_DEADLINE: Duration = Duration::from_secs(150);

/// The Java program, killed on drop.
pub struct Stream {
    child: Child,
    scratch: tempfile::TempDir,
}

impl Stream {
    /// Creates `topic` (unless it exists) and starts streaming; with `group`, the consumer is
    /// a member of that consumer group.
    pub fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        replicas: usize,
        group: Option<&str>,
    ) -> Stream {
        let scratch = tempfile::tempdir().expect("scratch dir");
        let stop_file = scratch.path().join("stop");
        let partitions = partitions.to_string();
        let replicas = replicas.to_string();
        let stop = stop_file.to_str().expect("utf-8 path");
        let mut args = vec![bootstrap, topic, &partitions, &replicas, stop];
        args.extend(group);
        let mut command = java_command("FailoverStream", &args);
        command
            .stdin(Stdio::null())
            .stdout(File::create(scratch.path().join("stdout")).expect("stdout file"))
            .stderr(File::create(scratch.path().join("stderr")).expect("stderr file"));
        let child = command.spawn().expect("spawn FailoverStream");
        Stream { child, scratch }
    }

    pub fn output(&self) -> Output {
        let text = std::fs::read_to_string(self.scratch.path().join("stdout")).unwrap_or_default();
        Output::parse(&text)
    }

    /// Asks the producer to stop, waits for the program to finish; returns its output.
    pub fn finish(mut self) -> Output {
        File::create(self.scratch.path().join("stop")).expect("create the stop file");
        let status = wait_until(JAVA_STOP_DEADLINE, "FailoverStream to exit", || {
            self.child.try_wait().expect("wait for java")
        });
        assert!(status.success(), "FailoverStream failed\n{}", self.logs());
        let output = self.output();
        assert!(
            output.done,
            "FailoverStream did not finish\n{}",
            self.logs()
        );
        output
    }

    pub fn logs(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.scratch.path().join(name));
        let tail = |text: String| text[text.len().saturating_sub(6_000)..].to_string();
        format!(
            "--- stdout (tail) ---\n{}\n--- stderr (tail) ---\n{}",
            tail(read("stdout").unwrap_or_default()),
            tail(read("stderr").unwrap_or_default())
        )
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A record as `(partition, offset, value)`.
pub type Located = (i32, i64, String);

#[derive(Default)]
pub struct Output {
    pub acked: Vec<Located>,
    pub failed: Vec<String>,
    pub consumed: Vec<Located>,
    pub consumer_errors: Vec<String>,
    pub sent: Option<usize>,
    pub done: bool,
}

impl Output {
    pub fn parse(text: &str) -> Output {
        let mut output = Output::default();
        // The last line may be cut mid-write while the program runs.
        for line in text.lines().filter(|line| !line.is_empty()) {
            let words: Vec<&str> = line.split(' ').collect();
            match words.as_slice() {
                ["acked", p, o, v] => output.acked.extend(located(p, o, v)),
                ["consumed", p, o, v] => output.consumed.extend(located(p, o, v)),
                ["failed", rest @ ..] => output.failed.push(rest.join(" ")),
                ["sent", count] => output.sent = count.parse().ok(),
                ["done"] => output.done = true,
                ["consumer-error", rest @ ..] => output.consumer_errors.push(rest.join(" ")),
                _ => {}
            }
        }
        output
    }
}

fn located(partition: &str, offset: &str, value: &str) -> Option<Located> {
    Some((
        partition.parse().ok()?,
        offset.parse().ok()?,
        value.to_string(),
    ))
}

/// Every record of `partition` as `(offset, value)`, read from its leader up to the high
/// watermark.
pub fn read_partition(leader: &Broker, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let mut client = RawClient::connect(&leader.bootstrap());
    client
        .fetch_all_from(topic, partition, 0)
        .into_iter()
        .map(|record| {
            let value = record.value.expect("a value");
            (
                record.offset,
                String::from_utf8(value.to_vec()).expect("utf-8 value"),
            )
        })
        .collect()
}

/// The log holds exactly the acknowledged values of `partition`, each at its acknowledged
/// offset, in send order, with no gap or duplicate.
pub fn check_log_against_acks(log: &[(i64, String)], acked: &[Located], partition: i32) {
    // Offsets dense from 0 and values strictly increasing: no gap, no duplicate, send order.
    for (at, (offset, _)) in log.iter().enumerate() {
        assert_eq!(*offset, at as i64, "partition {partition}: offset gap");
    }
    for pair in log.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "partition {partition}: {:?} before {:?}",
            pair[0],
            pair[1]
        );
    }
    let mine: Vec<&Located> = acked.iter().filter(|(p, _, _)| *p == partition).collect();
    for (_, offset, value) in &mine {
        let stored = usize::try_from(*offset).ok().and_then(|at| log.get(at));
        assert_eq!(
            stored.map(|(_, v)| v),
            Some(value),
            "partition {partition}: acknowledged {value} at {offset}"
        );
    }
    // Nothing failed, so the log holds exactly the acknowledged values.
    assert_eq!(
        log.len(),
        mine.len(),
        "partition {partition}: records vs acks"
    );
}
