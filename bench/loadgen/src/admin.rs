//! Topic creation through the admin API (CreateTopics), one request for all topics.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use crate::args::Args;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub fn run(args: &Args) -> Result<String, String> {
    let bootstrap = args.string("bootstrap")?;
    let partitions: i32 = args.number("partitions")?;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let topics: Vec<NewTopic> = args
        .positional
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let results = futures_executor::block_on(admin.create_topics(&topics, &options))
        .map_err(|e| e.to_string())?;
    for result in results {
        if let Err((topic, code)) = result {
            return Err(format!("creating {topic}: {code}"));
        }
    }
    Ok(format!("{{\"created\":{}}}", topics.len()))
}
