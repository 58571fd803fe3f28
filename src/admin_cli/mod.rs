//! `sluice groups`: consumer groups and their lag, for operators without a JVM (what
//! `kafka-consumer-groups --describe` shows). It is a Kafka client like any other: it connects
//! to a broker, lists groups (ListGroups), reads their committed offsets (OffsetFetch) and the
//! partitions' log end offsets (ListOffsets), and prints one line per group and partition.
//! `sluice reassignments` lists the partition moves in progress (see [`reassignments`]).

mod client;
mod reassignments;

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};

use client::AdminClient;

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Lists consumer groups with committed offset, log end offset and lag per partition.
    Groups(GroupsArgs),
    /// Lists partition reassignments in progress, with how far each adding replica lags.
    Reassignments(reassignments::ReassignmentsArgs),
    /// Lists every registered broker, fenced ones too, with why a broker's advertised address
    /// was refused.
    Brokers(BrokersArgs),
    /// Node operations: `drain ID` moves every replica off a broker (the balancer does it,
    /// throttled); `drain ID --undo` lets it hold replicas again.
    #[command(subcommand)]
    Node(NodeCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum NodeCommand {
    /// Marks a broker for decommissioning: the balancer moves every replica off it.
    Drain(DrainArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// The broker to drain.
    pub broker_id: i32,
    /// Stop draining: the broker may hold replicas again.
    #[arg(long)]
    pub undo: bool,
    /// host:port of a sluice broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
}

#[derive(Debug, Clone, Args)]
pub struct BrokersArgs {
    /// host:port of a sluice broker.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,
}

#[derive(Debug, Clone, Args)]
pub struct GroupsArgs {
    /// host:port of a sluice (or Kafka) broker, or a comma-separated list of them.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,

    /// Only this group (default: every group).
    #[arg(long)]
    pub group: Option<String>,
}

/// Runs a subcommand; the process exits with its result.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Groups(args) => {
            let stdout = std::io::stdout();
            groups(&args, &mut stdout.lock())
        }
        Command::Reassignments(args) => {
            let stdout = std::io::stdout();
            reassignments::run(&args, &mut stdout.lock())
        }
        Command::Brokers(args) => {
            let stdout = std::io::stdout();
            brokers(&args, &mut stdout.lock())
        }
        Command::Node(NodeCommand::Drain(args)) => {
            let mut client = AdminClient::connect(&args.bootstrap_server)
                .with_context(|| format!("connecting to {}", args.bootstrap_server))?;
            client.set_draining(args.broker_id, !args.undo)?;
            let verb = if args.undo {
                "no longer draining"
            } else {
                "draining"
            };
            println!("broker {} {verb}", args.broker_id);
            Ok(())
        }
    }
}

/// One registered broker as `sluice brokers` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerRow {
    pub broker_id: i32,
    pub address: String,
    pub rack: Option<String>,
    pub fenced: bool,
    /// Marked `sluice.drain=true`: the balancer moves its replicas away.
    pub draining: bool,
    /// Why the controller refused the advertised address, if it did.
    pub refusal: Option<String>,
}

fn brokers(args: &BrokersArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut client = AdminClient::connect(&args.bootstrap_server)
        .with_context(|| format!("connecting to {}", args.bootstrap_server))?;
    let (controller_id, rows) = client.describe_brokers()?;
    writeln!(out, "controller: {controller_id}")?;
    writeln!(
        out,
        "{:<6} {:<30} {:<10} {:<8} REASON",
        "ID", "ADDRESS", "RACK", "STATE"
    )?;
    for row in rows {
        let state = match (row.fenced, row.draining) {
            (true, _) => "fenced",
            (false, true) => "draining",
            (false, false) => "active",
        };
        writeln!(
            out,
            "{:<6} {:<30} {:<10} {:<8} {}",
            row.broker_id,
            row.address,
            row.rack.as_deref().unwrap_or("-"),
            state,
            row.refusal.as_deref().unwrap_or("-")
        )?;
    }
    Ok(())
}

/// One output row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// `None`: the partition has no committed offset.
    pub committed: Option<i64>,
    /// `None`: the partition does not exist (any more).
    pub log_end: Option<i64>,
}

impl LagRow {
    /// Log end minus committed; unknown without both.
    pub fn lag(&self) -> Option<i64> {
        Some(self.log_end? - self.committed?)
    }
}

fn groups(args: &GroupsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut client = AdminClient::connect(&args.bootstrap_server)
        .with_context(|| format!("connecting to {}", args.bootstrap_server))?;
    let group_ids = match &args.group {
        Some(group) => vec![group.clone()],
        None => client.list_groups()?,
    };
    let mut rows = Vec::new();
    for group in &group_ids {
        let committed = client.committed_offsets(group)?;
        let partitions: Vec<(String, i32)> = committed.keys().cloned().collect();
        let ends = client.log_end_offsets(&partitions)?;
        for ((topic, partition), offset) in committed {
            let log_end = ends.get(&(topic.clone(), partition)).copied();
            rows.push(LagRow {
                group: group.clone(),
                topic,
                partition,
                committed: Some(offset),
                log_end,
            });
        }
    }
    write_rows(out, &rows).context("writing to stdout")
}

fn write_rows(out: &mut impl Write, rows: &[LagRow]) -> std::io::Result<()> {
    let show = |value: Option<i64>| value.map_or_else(|| "-".to_string(), |v| v.to_string());
    writeln!(
        out,
        "{:<30} {:<30} {:>9} {:>15} {:>15} {:>10}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
    )?;
    for row in rows {
        writeln!(
            out,
            "{:<30} {:<30} {:>9} {:>15} {:>15} {:>10}",
            row.group,
            row.topic,
            row.partition,
            show(row.committed),
            show(row.log_end),
            show(row.lag())
        )?;
    }
    Ok(())
}

/// Rows sorted as printed: by group, topic, partition.
pub type CommittedOffsets = BTreeMap<(String, i32), i64>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_print_lag_or_a_dash() {
        let rows = [
            LagRow {
                group: "g".into(),
                topic: "t".into(),
                partition: 0,
                committed: Some(4),
                log_end: Some(10),
            },
            LagRow {
                group: "g".into(),
                topic: "gone".into(),
                partition: 1,
                committed: Some(3),
                log_end: None,
            },
        ];
        let mut out = Vec::new();
        write_rows(&mut out, &rows).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "GROUP",
                "TOPIC",
                "PARTITION",
                "CURRENT-OFFSET",
                "LOG-END-OFFSET",
                "LAG"
            ]
        );
        assert_eq!(lines[1], ["g", "t", "0", "4", "10", "6"]);
        assert_eq!(lines[2], ["g", "gone", "1", "3", "-", "-"]);
    }
}
