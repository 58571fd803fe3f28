//! Apache Kafka's own command-line tools (kafka-topics, kafka-console-producer, …), run from
//! the Maven jars `.ci/run` copies into `java/target/dependency` (kafka-tools and the Scala
//! core, `kafka_2.13`, pulled in by `java/pom.xml`).
//!
//! The shell scripts of a Kafka distribution are thin wrappers around `java <MainClass>`; the
//! tests run the same main classes directly, with the same classpath as the Java client
//! programs. Unlike [`crate::run_java`], a tool run may fail: error paths are part of what the
//! tests check, so [`kafka_tool`] returns the exit status and both output streams.

use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::process::{java_command, read_tail};

/// `kafka-topics.sh`.
pub const TOPICS: &str = "org.apache.kafka.tools.TopicCommand";
/// `kafka-console-producer.sh`.
pub const CONSOLE_PRODUCER: &str = "org.apache.kafka.tools.ConsoleProducer";
/// `kafka-console-consumer.sh`.
pub const CONSOLE_CONSUMER: &str = "org.apache.kafka.tools.consumer.ConsoleConsumer";
/// `kafka-consumer-groups.sh`.
pub const CONSUMER_GROUPS: &str = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand";
/// `kafka-configs.sh`: still the Scala `ConfigCommand` of the core jar in Kafka 4.1.
pub const CONFIGS: &str = "kafka.admin.ConfigCommand";
/// `kafka-get-offsets.sh`.
pub const GET_OFFSETS: &str = "org.apache.kafka.tools.GetOffsetShell";
/// `kafka-delete-records.sh`.
pub const DELETE_RECORDS: &str = "org.apache.kafka.tools.DeleteRecordsCommand";
/// `kafka-cluster.sh`: cluster id, unregister.
pub const CLUSTER: &str = "org.apache.kafka.tools.ClusterTool";

/// How long one tool run may take before it is killed: a JVM start plus, for the console
/// consumer, a group join, on a busy two-core machine.
const TOOL_RUN_DURATION_MAX: Duration = Duration::from_secs(180);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What a finished tool run left behind.
#[derive(Debug)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    /// The tail of stderr (the tools log warnings and stack traces there).
    pub stderr: String,
}

impl ToolOutput {
    /// stdout, after asserting the run exited 0; `what` names the run in the panic message.
    pub fn success(self, what: &str) -> String {
        assert!(self.status.success(), "{what} failed: {self}");
        self.stdout
    }
}

impl std::fmt::Display for ToolOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout ---\n{}\n--- stderr (tail) ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs the Kafka tool `main_class` with `args` and `stdin` as its input; kills it after
/// `TOOL_RUN_DURATION_MAX` (a panic). Never asserts on the exit status: see
/// [`ToolOutput::success`].
pub fn kafka_tool(main_class: &str, args: &[&str], stdin: &[u8]) -> ToolOutput {
    assert!(
        main_class.contains('.'),
        "a tool's full class name: {main_class}"
    );
    let scratch = tempfile::tempdir().expect("scratch dir");
    let path = |name: &str| scratch.path().join(name);
    std::fs::write(path("stdin"), stdin).expect("write stdin file");
    let mut command = java_command(main_class, args);
    command
        .stdin(open(&path("stdin")))
        .stdout(create(&path("stdout")))
        .stderr(create(&path("stderr")));
    let mut child = command
        .spawn()
        .unwrap_or_else(|error| panic!("spawn {main_class}: {error}"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tool") {
            break status;
        }
        if started.elapsed() > TOOL_RUN_DURATION_MAX {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{main_class} {args:?} ran longer than {TOOL_RUN_DURATION_MAX:?}\n\
                 --- stdout ---\n{}\n--- stderr (tail) ---\n{}",
                read_tail(&path("stdout")),
                read_tail(&path("stderr")),
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    ToolOutput {
        status,
        stdout: std::fs::read_to_string(path("stdout")).expect("read stdout"),
        stderr: read_tail(&path("stderr")),
    }
}

/// [`kafka_tool`] without input, asserting exit status 0; returns stdout.
pub fn kafka_tool_ok(main_class: &str, args: &[&str]) -> String {
    kafka_tool(main_class, args, b"").success(&format!("{main_class} {args:?}"))
}

fn open(path: &Path) -> std::fs::File {
    std::fs::File::open(path).unwrap_or_else(|error| panic!("open {}: {error}", path.display()))
}

fn create(path: &Path) -> std::fs::File {
    std::fs::File::create(path).unwrap_or_else(|error| panic!("create {}: {error}", path.display()))
}

/// The partition Kafka's default partitioner picks for a non-null `key` among
/// `partition_count`: `toPositive(murmur2(key)) % partition_count`, as in
/// `org.apache.kafka.common.utils.Utils`. Lets a test know where keyed records land.
pub fn default_partition(key: &[u8], partition_count: u32) -> u32 {
    assert!(partition_count > 0, "a topic has at least one partition");
    (murmur2(key) & 0x7fff_ffff) % partition_count
}

/// Kafka's 32-bit murmur2 (seed 0x9747b28c), over wrapping `u32` arithmetic like Java's `int`.
fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = u32::try_from(data.len()).expect("a key shorter than 4 GiB");
    let mut h = SEED ^ length;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        for (index, byte) in rest.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * index);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_like_the_java_client() {
        // Where the Java producer put keys k0..k5 on a 5-partition topic (seen with
        // kafka-console-producer against sluice).
        let seen = [0, 2, 3, 1, 0, 4];
        for (index, partition) in seen.into_iter().enumerate() {
            let key = format!("k{index}");
            assert_eq!(default_partition(key.as_bytes(), 5), partition, "{key}");
        }
    }

    #[test]
    fn murmur2_matches_kafkas_test_vectors() {
        // Values from Kafka's UtilsTest.testMurmur2 (as signed Java ints).
        let cases: [(&[u8], i32); 4] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"abc", 479_470_107),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data) as i32, expected, "{data:?}");
        }
    }
}
