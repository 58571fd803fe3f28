//! `sluice reassignments`: the partition moves in progress (ListPartitionReassignments) and,
//! for each replica being added, how many bytes it still lacks compared with the leader
//! (DescribeLogDirs on both brokers): the catch-up the reassignment throttle paces.

use std::io::Write;

use anyhow::Context;
use clap::Args;

use super::client::{AdminClient, Reassignment};

#[derive(Debug, Clone, Args)]
pub struct ReassignmentsArgs {
    /// host:port of a sluice (or Kafka) broker, or a comma-separated list of them.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
}

/// One output row: a replica being added to a moving partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRow {
    pub topic: String,
    pub partition: i32,
    pub reassignment: Reassignment,
    pub leader: i32,
    pub adding_replica: i32,
    /// Leader bytes minus the adding replica's; `None` when either could not be read.
    pub lag_bytes: Option<i64>,
}

pub fn run(args: &ReassignmentsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut client = AdminClient::connect(&args.bootstrap_server)
        .with_context(|| format!("connecting to {}", args.bootstrap_server))?;
    let moving = client.list_reassignments()?;
    let topics: Vec<String> = moving.keys().map(|(topic, _)| topic.clone()).collect();
    let (brokers, leaders) = client.brokers_and_leaders(&topics)?;
    let bytes_on = |broker: i32, topic: &str, partition: i32| -> Option<i64> {
        let address = brokers.get(&broker)?;
        let mut peer = AdminClient::connect(address).ok()?;
        // A replica without the partition yet holds nothing of it.
        let bytes = peer.partition_bytes(topic, partition).ok()?;
        Some(bytes.unwrap_or(0))
    };
    let mut rows = Vec::new();
    for ((topic, partition), reassignment) in moving {
        let leader = leaders
            .get(&(topic.clone(), partition))
            .copied()
            .unwrap_or(-1);
        let leader_bytes = bytes_on(leader, &topic, partition);
        for adding_replica in reassignment.adding.clone() {
            let replica_bytes = bytes_on(adding_replica, &topic, partition);
            rows.push(MoveRow {
                topic: topic.clone(),
                partition,
                reassignment: reassignment.clone(),
                leader,
                adding_replica,
                lag_bytes: leader_bytes
                    .zip(replica_bytes)
                    .map(|(leader, replica)| (leader - replica).max(0)),
            });
        }
    }
    write_rows(out, &rows).context("writing to stdout")
}

fn write_rows(out: &mut impl Write, rows: &[MoveRow]) -> std::io::Result<()> {
    let ids = |ids: &[i32]| {
        let text: Vec<String> = ids.iter().map(i32::to_string).collect();
        if text.is_empty() {
            "-".to_string()
        } else {
            text.join(",")
        }
    };
    writeln!(
        out,
        "{:<30} {:>9} {:<12} {:<8} {:<8} {:>6} {:>6} {:>12}",
        "TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING", "LEADER", "REPLICA", "LAG-BYTES"
    )?;
    for row in rows {
        let lag = row
            .lag_bytes
            .map_or_else(|| "-".to_string(), |lag| lag.to_string());
        writeln!(
            out,
            "{:<30} {:>9} {:<12} {:<8} {:<8} {:>6} {:>6} {:>12}",
            row.topic,
            row.partition,
            ids(&row.reassignment.replicas),
            ids(&row.reassignment.adding),
            ids(&row.reassignment.removing),
            row.leader,
            row.adding_replica,
            lag
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_print_sets_and_lag() {
        let rows = [MoveRow {
            topic: "orders".into(),
            partition: 3,
            reassignment: Reassignment {
                replicas: vec![3, 2, 1],
                adding: vec![3],
                removing: vec![1],
            },
            leader: 1,
            adding_replica: 3,
            lag_bytes: Some(4096),
        }];
        let mut out = Vec::new();
        write_rows(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines,
            vec![
                vec![
                    "TOPIC",
                    "PARTITION",
                    "REPLICAS",
                    "ADDING",
                    "REMOVING",
                    "LEADER",
                    "REPLICA",
                    "LAG-BYTES"
                ],
                vec!["orders", "3", "3,2,1", "3", "1", "1", "3", "4096"],
            ]
        );
    }
}
