//! Apache Kafka 4.1's own CLI tools against sluice: kafka-topics, kafka-console-producer and
//! -consumer, kafka-consumer-groups (lag, offset resets, deletion), kafka-configs,
//! kafka-get-offsets and kafka-delete-records, run from the Maven jars (see
//! `sluice_integration_tests::kafka_cli`). Every assertion is on the tool's exact output.
//!
//! Keyed records land where the Java client's default partitioner puts them; the tests compute
//! that with the same murmur2, so per-partition counts and offsets are known exactly.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use sluice_integration_tests::compat::covers;
use sluice_integration_tests::kafka_cli::{
    default_partition, kafka_tool, ToolOutput, CONFIGS, CONSOLE_CONSUMER, CONSOLE_PRODUCER,
    CONSUMER_GROUPS, DELETE_RECORDS, GET_OFFSETS, TOPICS,
};
use sluice_integration_tests::{java_command, topic_name, wait_until, Broker};

/// How long the console consumer waits for a record before giving up (its --timeout-ms): a
/// generous bound, reached only when a test is about to fail anyway.
const CONSUMER_IDLE_TIMEOUT_MS: &str = "60000";

fn create_topic(broker: &Broker, topic: &str, partitions: u32, extra: &[&str]) -> String {
    let partitions = partitions.to_string();
    let create = ["--create", "--topic", topic, "--partitions", &partitions];
    let args = [&create[..], &["--replication-factor", "1"], extra].concat();
    tool(broker, TOPICS, &args)
}

/// Runs a tool with `--bootstrap-server <broker>` in front of `args`; may fail.
fn tool_run(broker: &Broker, main_class: &str, args: &[&str]) -> ToolOutput {
    let bootstrap = broker.bootstrap();
    let all = [&["--bootstrap-server", bootstrap.as_str()][..], args].concat();
    kafka_tool(main_class, &all, b"")
}

/// Runs a tool with `--bootstrap-server <broker>` in front of `args`, asserting exit 0.
fn tool(broker: &Broker, main_class: &str, args: &[&str]) -> String {
    tool_run(broker, main_class, args).success(&format!("{main_class} {args:?}"))
}

/// `key-{first}` … `key-{last}` as `key:value-N` lines for the console producer, and how many
/// of them land on each of `partitions`.
fn keyed_lines(keys: std::ops::Range<u32>, partitions: u32) -> (String, Vec<i64>) {
    let mut text = String::new();
    let mut counts = vec![0_i64; partitions as usize];
    for index in keys {
        let key = format!("key-{index}");
        text.push_str(&format!("{key}:value-{index}\n"));
        counts[default_partition(key.as_bytes(), partitions) as usize] += 1;
    }
    (text, counts)
}

fn produce_keyed(broker: &Broker, topic: &str, lines: &str) {
    let bootstrap = broker.bootstrap();
    let args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        topic,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
    ];
    let output = kafka_tool(CONSOLE_PRODUCER, &args, lines.as_bytes());
    assert_eq!(output.success("kafka-console-producer"), "");
}

/// Consumes `count` records of `topic` from the beginning in `group` (committing on close, as
/// the console consumer does), returning its stdout.
fn consume_in_group(broker: &Broker, topic: &str, group: &str, count: usize) -> String {
    let count = count.to_string();
    tool(
        broker,
        CONSOLE_CONSUMER,
        &[
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            "--max-messages",
            &count,
            "--timeout-ms",
            CONSUMER_IDLE_TIMEOUT_MS,
        ],
    )
}

/// The rows of a kafka-consumer-groups table after its header, split on whitespace, sorted.
/// The header must be exactly `header` (modulo column padding).
fn table_rows(output: &str, header: &str) -> Vec<Vec<String>> {
    let mut lines = output.lines().filter(|line| !line.trim().is_empty());
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no table in {output:?}"));
    let columns: Vec<&str> = first.split_whitespace().collect();
    let expected: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, expected, "header of {output}");
    let mut rows: Vec<Vec<String>> = lines
        .map(|line| line.split_whitespace().map(str::to_string).collect())
        .collect();
    rows.sort_by_key(|row: &Vec<String>| row.get(2).and_then(|p| p.parse::<i64>().ok()));
    rows
}

const OFFSETS_HEADER: &str = "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG \
                              CONSUMER-ID HOST CLIENT-ID";

/// The rows `--describe --group` prints for an inactive group: committed offset, log end
/// offset and lag per partition, no member columns.
fn inactive_offset_rows(
    group: &str,
    topic: &str,
    current: &[i64],
    end: &[i64],
) -> Vec<Vec<String>> {
    current
        .iter()
        .zip(end)
        .enumerate()
        .map(|(partition, (current, end))| {
            let lag = end - current;
            [group, topic]
                .iter()
                .map(|s| s.to_string())
                .chain([partition.to_string(), current.to_string(), end.to_string()])
                .chain([lag.to_string(), "-".into(), "-".into(), "-".into()])
                .collect()
        })
        .collect()
}

fn describe_group_offsets(broker: &Broker, group: &str) -> (Vec<Vec<String>>, String) {
    let output = tool_run(broker, CONSUMER_GROUPS, &["--describe", "--group", group]);
    let stderr = output.stderr.clone();
    let stdout = output.success("kafka-consumer-groups --describe");
    (table_rows(&stdout, OFFSETS_HEADER), stderr)
}

fn reset_rows(group: &str, topic: &str, offsets: &[(usize, i64)]) -> Vec<Vec<String>> {
    offsets
        .iter()
        .map(|(partition, offset)| {
            vec![
                group.to_string(),
                topic.to_string(),
                partition.to_string(),
                offset.to_string(),
            ]
        })
        .collect()
}

const RESET_HEADER: &str = "GROUP TOPIC PARTITION NEW-OFFSET";

/// `Topic: …` description lines with the (random) topic id masked.
fn mask_topic_id(output: &str) -> String {
    output
        .lines()
        .map(|line| {
            line.split('\t')
                .map(|field| match field.strip_prefix("TopicId: ") {
                    Some(id) => {
                        assert_eq!(id.len(), 22, "a base64 Uuid: {id}");
                        "TopicId: <id>"
                    }
                    None => field,
                })
                .collect::<Vec<_>>()
                .join("\t")
        })
        .map(|line| line + "\n")
        .collect()
}

fn partition_lines(topic: &str, count: u32) -> String {
    (0..count)
        .map(|partition| {
            format!(
                "\tTopic: {topic}\tPartition: {partition}\tLeader: 1\tReplicas: 1\tIsr: 1\t\
                 Elr: N/A\tLastKnownElr: N/A\n"
            )
        })
        .collect()
}

#[test]
fn kafka_topics_create_list_describe_alter_delete() {
    let _matrix = covers(
        "kafka CLI tools",
        &[
            "admin_create_topics",
            "admin_describe_topics",
            "admin_delete_topics",
        ],
        "kafka_topics_create_list_describe_alter_delete",
    );
    let broker = Broker::start();
    let topic = topic_name("cli-topics");
    let other = topic_name("cli-topics-other");
    let configs = [
        "--config",
        "retention.ms=3600000",
        "--config",
        "max.message.bytes=2000000",
    ];
    let created = create_topic(&broker, &topic, 3, &configs);
    assert_eq!(created, format!("Created topic {topic}.\n"));
    assert_eq!(
        create_topic(&broker, &other, 1, &[]),
        format!("Created topic {other}.\n")
    );

    let mut names = [topic.clone(), other.clone()];
    names.sort();
    let listed = tool(&broker, TOPICS, &["--list"]);
    assert_eq!(listed, format!("{}\n{}\n", names[0], names[1]));

    // Only overridden configs are listed: broker defaults have source DEFAULT_CONFIG.
    let header = |partitions: u32| {
        format!(
            "Topic: {topic}\tTopicId: <id>\tPartitionCount: {partitions}\tReplicationFactor: 1\t\
             Configs: max.message.bytes=2000000,retention.ms=3600000\n"
        )
    };
    let described = tool(&broker, TOPICS, &["--describe", "--topic", &topic]);
    let expected = header(3) + &partition_lines(&topic, 3);
    assert_eq!(mask_topic_id(&described), expected);
    let described_other = tool(&broker, TOPICS, &["--describe", "--topic", &other]);
    let expected_other = format!(
        "Topic: {other}\tTopicId: <id>\tPartitionCount: 1\tReplicationFactor: 1\tConfigs: \n"
    ) + &partition_lines(&other, 1);
    assert_eq!(mask_topic_id(&described_other), expected_other);

    let altered = tool(
        &broker,
        TOPICS,
        &["--alter", "--topic", &topic, "--partitions", "5"],
    );
    assert_eq!(altered, "");
    let described = tool(&broker, TOPICS, &["--describe", "--topic", &topic]);
    assert_eq!(
        mask_topic_id(&described),
        header(5) + &partition_lines(&topic, 5)
    );

    assert_topic_changes_refused(&broker, &topic, 5);

    assert_eq!(tool(&broker, TOPICS, &["--delete", "--topic", &topic]), "");
    assert_eq!(tool(&broker, TOPICS, &["--list"]), format!("{other}\n"));
    let gone = tool_run(&broker, TOPICS, &["--describe", "--topic", &topic]);
    assert_eq!(gone.status.code(), Some(1), "{gone}");
    assert_eq!(
        gone.stdout,
        format!(
            "Error while executing topic command : Topic '{topic}' does not exist as expected\n"
        )
    );
}

/// Shrinking an existing topic of `partitions` and creating it again fail with Kafka's
/// messages (on stdout, exit status 1).
fn assert_topic_changes_refused(broker: &Broker, topic: &str, partitions: u32) {
    let shrink = ["--alter", "--topic", topic, "--partitions", "2"];
    let refused = tool_run(broker, TOPICS, &shrink);
    assert_eq!(refused.status.code(), Some(1), "{refused}");
    assert_eq!(
        refused.stdout,
        format!(
            "Error while executing topic command : Topic currently has {partitions} \
             partitions, 2 would not be an increase.\n"
        )
    );
    let again = tool_run(broker, TOPICS, &["--create", "--topic", topic]);
    assert_eq!(again.status.code(), Some(1), "{again}");
    assert_eq!(
        again.stdout,
        format!("Error while executing topic command : Topic '{topic}' already exists.\n")
    );
}

#[test]
fn console_producer_then_console_consumer_print_exact_lines() {
    let _matrix = covers(
        "kafka CLI tools",
        &["produce_none"],
        "console_producer_then_console_consumer_print_exact_lines",
    );
    let broker = Broker::start();
    let topic = topic_name("cli-console");
    create_topic(&broker, &topic, 3, &[]);
    let partitions = 3;
    // Keys of every length mod 4, so each murmur2 tail case decides a partition.
    let keys = [
        "a", "bb", "ccc", "dddd", "eeeee", "k0", "k1", "k2", "k3", "key-10", "key-11",
    ];
    let mut input = String::new();
    let mut expected = Vec::new();
    let mut next_offset = [0_i64; 3];
    for (index, key) in keys.iter().enumerate() {
        input.push_str(&format!("origin:cli,seq:{index}\t{key}:value {index}\n"));
        let partition = default_partition(key.as_bytes(), partitions) as usize;
        let offset = next_offset[partition];
        next_offset[partition] += 1;
        expected.push(format!(
            "Partition:{partition}\tOffset:{offset}\torigin:cli,seq:{index}\t{key}\tvalue {index}"
        ));
    }
    let bootstrap = broker.bootstrap();
    let producer_args = [
        "--bootstrap-server",
        &bootstrap,
        "--topic",
        &topic,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
        "--property",
        "parse.headers=true",
    ];
    let produced = kafka_tool(CONSOLE_PRODUCER, &producer_args, input.as_bytes());
    assert_eq!(produced.success("kafka-console-producer"), "");

    let count = keys.len().to_string();
    let consumer_args = [
        "--topic",
        &topic,
        "--from-beginning",
        "--max-messages",
        &count,
        "--timeout-ms",
        CONSUMER_IDLE_TIMEOUT_MS,
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.partition=true",
        "--property",
        "print.headers=true",
    ];
    let consumed = tool(&broker, CONSOLE_CONSUMER, &consumer_args);
    // Partitions interleave in any order; within one, offsets ascend.
    let lines: Vec<&str> = consumed.lines().collect();
    for partition in 0..partitions {
        let prefix = format!("Partition:{partition}\t");
        let in_partition = |line: &&str| line.starts_with(&prefix);
        let got: Vec<&str> = lines.iter().copied().filter(in_partition).collect();
        let want: Vec<&str> = expected
            .iter()
            .map(String::as_str)
            .filter(in_partition)
            .collect();
        assert_eq!(got, want, "partition {partition} of\n{consumed}");
    }
    assert_eq!(lines.len(), keys.len(), "{consumed}");
}

#[test]
fn consumer_groups_list_and_describe_show_lag_per_partition() {
    let _matrix = covers(
        "kafka CLI tools",
        &["consume_group", "commit_fetch_offsets"],
        "consumer_groups_list_and_describe_show_lag_per_partition",
    );
    let broker = Broker::start();
    let topic = topic_name("cli-lag");
    let group = format!("{topic}-group");
    let partitions = 3;
    create_topic(&broker, &topic, partitions, &[]);
    let (first, consumed) = keyed_lines(0..12, partitions);
    assert!(consumed.iter().all(|&count| count > 0), "{consumed:?}");
    produce_keyed(&broker, &topic, &first);
    let output = consume_in_group(&broker, &topic, &group, 12);
    assert_eq!(output.lines().count(), 12, "{output}");
    // Records the group has not read: the lag.
    let (second, unread) = keyed_lines(12..20, partitions);
    produce_keyed(&broker, &topic, &second);
    let end: Vec<i64> = consumed.iter().zip(&unread).map(|(a, b)| a + b).collect();

    assert_eq!(
        tool(&broker, CONSUMER_GROUPS, &["--list"]),
        format!("{group}\n")
    );
    let (rows, stderr) = describe_group_offsets(&broker, &group);
    assert_eq!(rows, inactive_offset_rows(&group, &topic, &consumed, &end));
    assert!(
        stderr.contains(&format!("Consumer group '{group}' has no active members.")),
        "{stderr}"
    );

    let state = tool(
        &broker,
        CONSUMER_GROUPS,
        &["--describe", "--group", &group, "--state"],
    );
    let state_rows = table_rows(
        &state,
        "GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS",
    );
    let coordinator = broker.bootstrap();
    let expected_state = [
        group.as_str(),
        coordinator.as_str(),
        "(1)",
        "-",
        "Empty",
        "0",
    ];
    assert_eq!(
        state_rows,
        vec![expected_state.map(str::to_string).to_vec()]
    );

    let listed = tool(&broker, CONSUMER_GROUPS, &["--list", "--state"]);
    let listed_rows = table_rows(&listed, "GROUP STATE");
    assert_eq!(listed_rows, vec![vec![group.clone(), "Empty".to_string()]]);
}

/// An inactive group that consumed all of a 3-partition topic, for the offset-reset tests.
struct ConsumedGroup {
    broker: Broker,
    topic: String,
    group: String,
    /// Each partition's log end offset.
    end: Vec<i64>,
}

impl ConsumedGroup {
    fn new() -> ConsumedGroup {
        let broker = Broker::start();
        let topic = topic_name("cli-reset");
        let group = format!("{topic}-group");
        let partitions = 3;
        create_topic(&broker, &topic, partitions, &[]);
        let (lines, end) = keyed_lines(0..15, partitions);
        assert!(end.iter().all(|&count| count > 1), "{end:?}");
        produce_keyed(&broker, &topic, &lines);
        consume_in_group(&broker, &topic, &group, 15);
        let consumed = ConsumedGroup {
            broker,
            topic,
            group,
            end,
        };
        consumed.assert_committed(&consumed.end);
        consumed
    }

    /// `--reset-offsets --group <group> <args>`: the NEW-OFFSET table's rows.
    fn reset(&self, args: &[&str]) -> Vec<Vec<String>> {
        let all = [&["--reset-offsets", "--group", &self.group][..], args].concat();
        table_rows(&tool(&self.broker, CONSUMER_GROUPS, &all), RESET_HEADER)
    }

    /// The rows a reset of every partition to `offsets` prints.
    fn reset_rows(&self, offsets: &[i64]) -> Vec<Vec<String>> {
        let offsets: Vec<(usize, i64)> = offsets.iter().copied().enumerate().collect();
        reset_rows(&self.group, &self.topic, &offsets)
    }

    fn assert_committed(&self, offsets: &[i64]) {
        let (rows, _) = describe_group_offsets(&self.broker, &self.group);
        let expected = inactive_offset_rows(&self.group, &self.topic, offsets, &self.end);
        assert_eq!(rows, expected);
    }
}

#[test]
fn consumer_groups_reset_offsets_of_an_inactive_group() {
    let consumed = ConsumedGroup::new();
    let (topic, end) = (consumed.topic.as_str(), consumed.end.as_slice());

    let earliest = consumed.reset(&["--topic", topic, "--to-earliest", "--execute"]);
    assert_eq!(earliest, consumed.reset_rows(&[0, 0, 0]));
    consumed.assert_committed(&[0, 0, 0]);

    let one_partition = format!("{topic}:1");
    let to_offset = consumed.reset(&["--topic", &one_partition, "--to-offset", "1", "--execute"]);
    assert_eq!(to_offset, reset_rows(&consumed.group, topic, &[(1, 1)]));
    consumed.assert_committed(&[0, 1, 0]);

    // Shifting is relative to each committed offset, clamped to the log's start.
    let shifted = consumed.reset(&["--topic", topic, "--shift-by", "1", "--execute"]);
    assert_eq!(shifted, consumed.reset_rows(&[1, 2, 1]));
    consumed.assert_committed(&[1, 2, 1]);
    let back = consumed.reset(&["--topic", topic, "--shift-by", "-2", "--execute"]);
    assert_eq!(back, consumed.reset_rows(&[0, 0, 0]));
    let latest = consumed.reset(&["--all-topics", "--to-latest", "--execute"]);
    assert_eq!(latest, consumed.reset_rows(end));
    consumed.assert_committed(end);

    let planned = consumed.reset(&["--topic", topic, "--to-earliest", "--dry-run"]);
    assert_eq!(planned, consumed.reset_rows(&[0, 0, 0]));
    consumed.assert_committed(end);
}

#[test]
fn consumer_groups_delete_offsets_then_the_group() {
    let consumed = ConsumedGroup::new();
    let (broker, group) = (&consumed.broker, consumed.group.as_str());
    let partition_0 = format!("{}:0", consumed.topic);
    let args = [
        "--delete-offsets",
        "--group",
        group,
        "--topic",
        &partition_0,
    ];
    let deleted_offsets = tool(broker, CONSUMER_GROUPS, &args);
    let (summary, table) = deleted_offsets
        .split_once("\n\n")
        .unwrap_or_else(|| panic!("{deleted_offsets}"));
    let expected = format!("Request succeeded for deleting offsets from group {group}.");
    assert_eq!(summary, expected);
    let deleted_rows = table_rows(table, "TOPIC PARTITION STATUS");
    let topic = consumed.topic.clone();
    assert_eq!(
        deleted_rows,
        vec![vec![topic, "0".into(), "Successful".into()]]
    );
    let (rows, _) = describe_group_offsets(broker, group);
    let end = &consumed.end;
    let all_rows = inactive_offset_rows(group, &consumed.topic, end, end);
    assert_eq!(rows, all_rows[1..]);

    let deleted = tool(broker, CONSUMER_GROUPS, &["--delete", "--group", group]);
    assert_eq!(
        deleted,
        format!("Deletion of requested consumer groups ('{group}') was successful.\n")
    );
    assert_eq!(tool(broker, CONSUMER_GROUPS, &["--list"]), "");
}

/// kafka-configs on `topic`: `--entity-type topics --entity-name <topic>`, then `action`
/// (split on spaces).
fn topic_configs(broker: &Broker, topic: &str, action: &str) -> ToolOutput {
    let entity = ["--entity-type", "topics", "--entity-name", topic];
    let action: Vec<&str> = action.split(' ').collect();
    tool_run(broker, CONFIGS, &[&entity[..], &action].concat())
}

/// `--describe --all`: every config of `topic`, name to value.
fn all_topic_configs(broker: &Broker, topic: &str) -> BTreeMap<String, String> {
    let all = topic_configs(broker, topic, "--describe --all").success("kafka-configs --all");
    let mut lines = all.lines();
    let title = format!("All configs for topic {topic} are:");
    assert_eq!(lines.next(), Some(title.as_str()), "{all}");
    lines
        .map(|line| {
            let (name, rest) = line.trim().split_once('=').expect("name=value");
            let (value, _) = rest.split_once(' ').expect("value then sensitive=");
            (name.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn kafka_configs_describe_alter_and_delete_topic_configs() {
    let _matrix = covers(
        "kafka CLI tools",
        &["admin_describe_configs"],
        "kafka_configs_describe_alter_and_delete_topic_configs",
    );
    let broker = Broker::start();
    let topic = topic_name("cli-configs");
    create_topic(&broker, &topic, 1, &["--config", "retention.ms=3600000"]);
    let described = topic_configs(&broker, &topic, "--describe").success("describe");
    assert_eq!(
        described,
        format!(
            "Dynamic configs for topic {topic} are:\n  retention.ms=3600000 sensitive=false \
             synonyms={{DYNAMIC_TOPIC_CONFIG:retention.ms=3600000, \
             DEFAULT_CONFIG:log.retention.ms=604800000}}\n"
        )
    );

    let add = "--alter --add-config retention.ms=7200000,segment.bytes=2097152";
    let altered = topic_configs(&broker, &topic, add).success("alter");
    assert_eq!(
        altered,
        format!("Completed updating config for topic {topic}.\n")
    );
    assert_eq!(
        topic_configs(&broker, &topic, "--describe").success("describe"),
        format!(
            "Dynamic configs for topic {topic} are:\n  retention.ms=7200000 sensitive=false \
             synonyms={{DYNAMIC_TOPIC_CONFIG:retention.ms=7200000, \
             DEFAULT_CONFIG:log.retention.ms=604800000}}\n  segment.bytes=2097152 \
             sensitive=false synonyms={{DYNAMIC_TOPIC_CONFIG:segment.bytes=2097152, \
             DEFAULT_CONFIG:log.segment.bytes=1073741824}}\n"
        )
    );

    let delete = "--alter --delete-config retention.ms";
    topic_configs(&broker, &topic, delete).success("delete-config");
    let expected: BTreeMap<String, String> = [
        ("cleanup.policy", "delete"),
        ("compression.type", "producer"),
        ("delete.retention.ms", "86400000"),
        ("index.interval.bytes", "4096"),
        ("max.compaction.lag.ms", "9223372036854775807"),
        ("max.message.bytes", "1048588"),
        // Not a Kafka 4.x key (KIP-724 removed it); sluice keeps it for legacy fetches.
        ("message.downconversion.enable", "true"),
        ("message.timestamp.type", "CreateTime"),
        ("min.cleanable.dirty.ratio", "0.5"),
        ("min.compaction.lag.ms", "0"),
        ("min.insync.replicas", "1"),
        ("retention.bytes", "-1"),
        ("retention.ms", "604800000"),
        ("segment.bytes", "2097152"),
        ("segment.ms", "604800000"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    assert_eq!(all_topic_configs(&broker, &topic), expected);
}

#[test]
fn kafka_configs_refuses_a_bad_value_and_changes_nothing() {
    let broker = Broker::start();
    let topic = topic_name("cli-configs-bad");
    create_topic(&broker, &topic, 1, &[]);
    let bad = "--alter --add-config retention.ms=soon";
    let refused = topic_configs(&broker, &topic, bad);
    assert_eq!(refused.status.code(), Some(1), "{refused}");
    assert_eq!(refused.stdout, "", "{refused}");
    let command = format!(
        "Error while executing config command with args '--bootstrap-server {} \
         --entity-type topics --entity-name {topic} {bad}'",
        broker.bootstrap(),
    );
    let cause = "java.util.concurrent.ExecutionException: \
                 org.apache.kafka.common.errors.InvalidConfigurationException: Invalid value \
                 soon for configuration retention.ms: Not a number";
    let lines: Vec<&str> = refused.stderr.lines().collect();
    let at = lines.iter().position(|line| *line == command);
    let at = at.unwrap_or_else(|| panic!("no {command:?} in {refused}"));
    assert_eq!(lines.get(at + 1), Some(&cause), "{refused}");
    let unchanged = topic_configs(&broker, &topic, "--describe").success("describe");
    assert_eq!(
        unchanged,
        format!("Dynamic configs for topic {topic} are:\n")
    );
}

#[test]
fn get_offsets_latest_and_earliest_per_partition() {
    let broker = Broker::start();
    let topic = topic_name("cli-offsets");
    let partitions = 3;
    create_topic(&broker, &topic, partitions, &[]);
    let (lines, end) = keyed_lines(0..20, partitions);
    assert!(end.iter().all(|&count| count > 2), "{end:?}");
    produce_keyed(&broker, &topic, &lines);
    let per_partition = |offsets: &[i64]| -> String {
        offsets
            .iter()
            .enumerate()
            .map(|(partition, offset)| format!("{topic}:{partition}:{offset}\n"))
            .collect()
    };

    assert_eq!(
        tool(&broker, GET_OFFSETS, &["--topic", &topic]),
        per_partition(&end)
    );
    let latest = tool(
        &broker,
        GET_OFFSETS,
        &["--topic", &topic, "--time", "latest"],
    );
    assert_eq!(latest, per_partition(&end));
    let earliest = tool(&broker, GET_OFFSETS, &["--topic", &topic, "--time", "-2"]);
    assert_eq!(earliest, per_partition(&[0, 0, 0]));

    // Move partition 1's log start with kafka-delete-records; earliest follows it.
    let scratch = tempfile::tempdir().expect("tempdir");
    let plan = scratch.path().join("delete.json");
    let json =
        format!(r#"{{"version":1,"partitions":[{{"topic":"{topic}","partition":1,"offset":2}}]}}"#);
    std::fs::write(&plan, json).expect("write plan");
    let plan = plan.to_string_lossy().into_owned();
    let deleted = tool(&broker, DELETE_RECORDS, &["--offset-json-file", &plan]);
    assert_eq!(
        deleted,
        format!(
            "Executing records delete operation\nRecords delete operation completed:\n\
             partition: {topic}-1\tlow_watermark: 2\n"
        )
    );
    let earliest = tool(
        &broker,
        GET_OFFSETS,
        &["--topic", &topic, "--time", "earliest"],
    );
    assert_eq!(earliest, per_partition(&[0, 2, 0]));
    let only = tool(
        &broker,
        GET_OFFSETS,
        &["--topic", &topic, "--partitions", "1,2", "--time", "-2"],
    );
    assert_eq!(only, format!("{topic}:1:2\n{topic}:2:0\n"));
    let latest = tool(
        &broker,
        GET_OFFSETS,
        &["--topic-partitions", &format!("{topic}:1")],
    );
    assert_eq!(latest, format!("{topic}:1:{}\n", end[1]));
}

/// Kafka 4.1 answers ConsumerGroupDescribe (and DescribeGroups v6) for an unknown group with
/// GROUP_ID_NOT_FOUND and the message `Group <id> not found.`, which kafka-consumer-groups
/// prints. (The admin client asks ConsumerGroupDescribe first, so that is the answer shown.)
#[test]
fn consumer_groups_describe_of_a_missing_group_says_not_found() {
    let broker = Broker::start();
    let group = topic_name("cli-missing-group");
    let output = tool_run(&broker, CONSUMER_GROUPS, &["--describe", "--group", &group]);
    // The tool reports the failure on stdout and still exits 0, as Kafka's does.
    let stdout = output.success("kafka-consumer-groups --describe");
    assert_eq!(
        stdout.lines().find(|line| !line.is_empty()),
        Some(
            format!(
                "Error: Executing consumer group command failed due to \
                 org.apache.kafka.common.errors.GroupIdNotFoundException: Group {group} not found."
            )
            .as_str()
        ),
        "{stdout}"
    );
}

/// A console consumer running in the background; SIGKILLed on drop if still running.
struct BackgroundConsumer {
    child: std::process::Child,
}

impl BackgroundConsumer {
    fn start(broker: &Broker, topic: &str, group: &str) -> BackgroundConsumer {
        let bootstrap = broker.bootstrap();
        let args = [
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--from-beginning",
            // No commits: CURRENT-OFFSET stays "-" while it runs, whatever the timing.
            "--consumer-property",
            "enable.auto.commit=false",
        ];
        let mut command = java_command(CONSOLE_CONSUMER, &args);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("spawn the console consumer");
        BackgroundConsumer { child }
    }

    /// SIGTERM: the console consumer's shutdown hook closes it, which leaves the group.
    fn terminate(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: plain syscall on the pid of a child not reaped yet, so not reused.
        let result = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(result, 0, "SIGTERM: {}", std::io::Error::last_os_error());
        wait_until(
            GROUP_CHANGE_DURATION_MAX,
            "the console consumer to exit",
            || self.child.try_wait().expect("poll the consumer"),
        );
    }
}

impl Drop for BackgroundConsumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How long a group may take to reach a state a test waits for (a JVM start and a join with
/// Kafka's 3 s initial rebalance delay, or a leave).
const GROUP_CHANGE_DURATION_MAX: Duration = Duration::from_secs(120);

/// The `--describe --state` row of `group` once its state is `state`.
fn wait_for_group_state(broker: &Broker, group: &str, state: &str) -> Vec<String> {
    let what = format!("group {group} to be {state}");
    wait_until(GROUP_CHANGE_DURATION_MAX, &what, || {
        let output = tool_run(
            broker,
            CONSUMER_GROUPS,
            &["--describe", "--group", group, "--state"],
        );
        let header = "GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS";
        if !output.status.success() || !output.stdout.contains("COORDINATOR") {
            return None;
        }
        let rows = table_rows(&output.stdout, header);
        rows.into_iter()
            .find(|row| row.get(4).map(String::as_str) == Some(state))
    })
}

fn row(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|field| field.to_string()).collect()
}

#[test]
fn consumer_groups_show_an_active_member_and_refuse_to_reset_or_delete_its_group() {
    let broker = Broker::start();
    let topic = topic_name("cli-active");
    let group = format!("{topic}-group");
    let partitions = 2;
    create_topic(&broker, &topic, partitions, &[]);
    let (lines, end) = keyed_lines(0..6, partitions);
    produce_keyed(&broker, &topic, &lines);

    let mut consumer = BackgroundConsumer::start(&broker, &topic, &group);
    let state = wait_for_group_state(&broker, &group, "Stable");
    let coordinator = broker.bootstrap();
    assert_eq!(
        state,
        row(&[&group, &coordinator, "(1)", "range", "Stable", "1"])
    );
    assert_active_member_shown(&broker, &group, &topic, &end);
    assert_active_group_refuses_reset_and_delete(&broker, &group, &topic);

    // A clean shutdown leaves the group at once (no session timeout), so it can go.
    consumer.terminate();
    let state = wait_for_group_state(&broker, &group, "Empty");
    assert_eq!(state[5], "0", "{state:?}");
    let deleted = tool(&broker, CONSUMER_GROUPS, &["--delete", "--group", &group]);
    assert_eq!(
        deleted,
        format!("Deletion of requested consumer groups ('{group}') was successful.\n")
    );
}

/// `--members` and the offsets table name the one console consumer; it has committed nothing,
/// so CURRENT-OFFSET and LAG are "-".
fn assert_active_member_shown(broker: &Broker, group: &str, topic: &str, end: &[i64]) {
    let args = ["--describe", "--group", group, "--members"];
    let members = tool(broker, CONSUMER_GROUPS, &args);
    let member_rows = table_rows(&members, "GROUP CONSUMER-ID HOST CLIENT-ID #PARTITIONS");
    assert_eq!(member_rows.len(), 1, "{members}");
    let member_id = member_rows[0][1].clone();
    assert!(member_id.starts_with("console-consumer-"), "{members}");
    let owner = [member_id.as_str(), "/127.0.0.1", "console-consumer"];
    assert_eq!(
        member_rows[0],
        row(&[&[group][..], &owner, &["2"]].concat())
    );

    let (rows, _) = describe_group_offsets(broker, group);
    let expected: Vec<Vec<String>> = end
        .iter()
        .enumerate()
        .map(|(partition, end)| {
            let (partition, end) = (partition.to_string(), end.to_string());
            row(&[&[group, topic, &partition, "-", &end, "-"][..], &owner].concat())
        })
        .collect();
    assert_eq!(rows, expected);
}

/// Offsets of a Stable group cannot be reset, nor can it be deleted; the tool says so on
/// stdout and exits 0, as against Kafka.
fn assert_active_group_refuses_reset_and_delete(broker: &Broker, group: &str, topic: &str) {
    let reset = [
        "--reset-offsets",
        "--group",
        group,
        "--topic",
        topic,
        "--to-latest",
    ];
    let refused = tool(
        broker,
        CONSUMER_GROUPS,
        &[&reset[..], &["--execute"]].concat(),
    );
    let (error, table) = refused
        .trim_start()
        .split_once('\n')
        .unwrap_or_else(|| panic!("{refused}"));
    assert_eq!(
        error,
        format!(
            "Error: Assignments can only be reset if the group '{group}' is inactive, but the \
             current state is Stable."
        )
    );
    assert_eq!(table_rows(table, RESET_HEADER), Vec::<Vec<String>>::new());

    let refused = tool(broker, CONSUMER_GROUPS, &["--delete", "--group", group]);
    assert_eq!(
        refused,
        format!(
            "\nError: Deletion of some consumer groups failed:\n* Group '{group}' could not be \
             deleted due to: org.apache.kafka.common.errors.GroupNotEmptyException: The group \
             is not empty.\n"
        )
    );
}
