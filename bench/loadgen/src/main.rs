//! sluice-loadgen: the non-JVM load generator of `bench/` (librdkafka through the `rdkafka`
//! crate). Every subcommand prints one JSON object on stdout so `bench/harness.py` can parse it;
//! progress and errors go to stderr.
//!
//! ```text
//! sluice-loadgen produce      --bootstrap B --topic T --records N --size S [--acks 1|all] [--compression none|lz4]
//! sluice-loadgen consume      --bootstrap B --topic T --records N [--group G]
//! sluice-loadgen fanout       --bootstrap B --topic T --records N --size S --consumers C [--groups true]
//! sluice-loadgen latency      --bootstrap B --topic T --rate R --seconds S --size S [--acks 1|all]
//! sluice-loadgen probe        --bootstrap B --topic T [--deadline-ms D]
//! sluice-loadgen create-topics --bootstrap B --partitions P TOPIC...
//! sluice-loadgen tcp-ceiling  [--seconds S]
//! ```

mod admin;
mod args;
mod consume;
mod fanout;
mod latency;
mod payload;
mod probe;
mod produce;
mod tcp_ceiling;

use std::process::ExitCode;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = argv.split_first() else {
        eprintln!("usage: sluice-loadgen COMMAND [--flag value]... (see src/main.rs)");
        return ExitCode::from(2);
    };
    let parsed = match args::Args::parse(rest) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("sluice-loadgen: {message}");
            return ExitCode::from(2);
        }
    };
    let result = match command.as_str() {
        "produce" => produce::run(&parsed),
        "consume" => consume::run(&parsed),
        "fanout" => fanout::run(&parsed),
        "latency" => latency::run(&parsed),
        "probe" => probe::run(&parsed),
        "create-topics" => admin::run(&parsed),
        "tcp-ceiling" => tcp_ceiling::run(&parsed),
        other => Err(format!("unknown command {other}")),
    };
    match result {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("sluice-loadgen {command}: {message}");
            ExitCode::FAILURE
        }
    }
}
