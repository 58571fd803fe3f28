//! Client quotas against a real sluice: `kafka-configs --entity-type clients` from Apache
//! Kafka's Maven jars alters, describes and deletes quotas; confluent-kafka producers and
//! consumers over their quota are throttled to it (measured) while another client on the same
//! broker at the same time is not; raw AlterClientQuotas / DescribeClientQuotas requests get
//! Kafka's error codes.

use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::{AlterClientQuotasRequest, DescribeClientQuotasRequest};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;
use sluice_integration_tests::kafka_cli::{kafka_tool, ToolOutput, CONFIGS};
use sluice_integration_tests::metrics::sample;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::records::parse_output;
use sluice_integration_tests::{run_python, topic_name, Broker};

const INVALID_REQUEST: i16 = 42;

/// kafka-configs on client-id `client`, then `action` (split on spaces).
fn client_configs(broker: &Broker, client: &str, action: &str) -> ToolOutput {
    let bootstrap = broker.bootstrap();
    let head = [
        "--bootstrap-server",
        bootstrap.as_str(),
        "--entity-type",
        "clients",
        "--entity-name",
        client,
    ];
    let action: Vec<&str> = action.split(' ').collect();
    kafka_tool(CONFIGS, &[&head[..], &action].concat(), b"")
}

#[test]
fn kafka_configs_alters_describes_and_deletes_client_quotas() {
    let broker = Broker::start();
    let add = "--alter --add-config producer_byte_rate=1048576,consumer_byte_rate=2097152";
    let altered = client_configs(&broker, "slow", add).success("alter");
    assert_eq!(altered, "Completed updating config for client slow.\n");
    let described = client_configs(&broker, "slow", "--describe").success("describe");
    assert_eq!(
        described,
        "Quota configs for client-id 'slow' are consumer_byte_rate=2097152.0, \
         producer_byte_rate=1048576.0\n"
    );
    let other = client_configs(&broker, "other", "--describe").success("describe other");
    assert_eq!(other, "");

    let delete = "--alter --delete-config producer_byte_rate";
    client_configs(&broker, "slow", delete).success("delete-config");
    let described = client_configs(&broker, "slow", "--describe").success("describe");
    assert_eq!(
        described,
        "Quota configs for client-id 'slow' are consumer_byte_rate=2097152.0\n"
    );
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn alter_entry(entity_type: &str, name: Option<&str>, key: &str, value: f64) -> EntryData {
    let mut entity = EntityData::default();
    entity.entity_type = text(entity_type);
    entity.entity_name = name.map(text);
    let mut op = OpData::default();
    op.key = text(key);
    op.value = value;
    let mut entry = EntryData::default();
    entry.entity = vec![entity];
    entry.ops = vec![op];
    entry
}

fn alter(client: &mut RawClient, entries: Vec<EntryData>, validate_only: bool) -> Vec<i16> {
    let mut request = AlterClientQuotasRequest::default();
    request.entries = entries;
    request.validate_only = validate_only;
    let response = client.request(1, &request);
    response
        .entries
        .iter()
        .map(|entry| entry.error_code)
        .collect()
}

/// Every quota entity and its values, as `client-id=<name>: key=value,...` lines.
fn describe_all(client: &mut RawClient) -> Vec<String> {
    let response = client.request(1, &DescribeClientQuotasRequest::default());
    assert_eq!(response.error_code, 0);
    let mut lines: Vec<String> = response
        .entries
        .unwrap_or_default()
        .iter()
        .map(|entry| {
            let entity: Vec<String> = entry
                .entity
                .iter()
                .map(|e| {
                    format!(
                        "{}={}",
                        e.entity_type,
                        e.entity_name.as_deref().unwrap_or("<default>")
                    )
                })
                .collect();
            let values: Vec<String> = entry
                .values
                .iter()
                .map(|v| format!("{}={}", v.key, v.value))
                .collect();
            format!("{}: {}", entity.join(","), values.join(","))
        })
        .collect();
    lines.sort();
    lines
}

#[test]
fn raw_alter_and_describe_client_quotas_error_codes() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let good = || alter_entry("client-id", Some("a"), "producer_byte_rate", 1000.0);
    let codes = alter(
        &mut client,
        vec![
            alter_entry("clients", Some("a"), "producer_byte_rate", 1000.0),
            alter_entry("client-id", Some("a"), "producer_bytes_rate", 1000.0),
            alter_entry("client-id", Some("a"), "producer_byte_rate", -1.0),
            alter_entry("client-id", Some("a"), "producer_byte_rate", 10.5),
            alter_entry("ip", Some("127.0.0.1"), "producer_byte_rate", 1000.0),
        ],
        false,
    );
    assert_eq!(codes, vec![INVALID_REQUEST; 5]);
    assert_eq!(alter(&mut client, vec![good()], true), vec![0]);
    assert_eq!(describe_all(&mut client), Vec::<String>::new());

    let default_user = alter_entry("user", None, "request_percentage", 12.5);
    assert_eq!(
        alter(&mut client, vec![good(), default_user], false),
        vec![0, 0]
    );
    assert_eq!(
        describe_all(&mut client),
        vec![
            "client-id=a: producer_byte_rate=1000".to_string(),
            "user=<default>: request_percentage=12.5".to_string(),
        ]
    );

    let bad_filters = [(0, None), (1, Some("a")), (3, None)];
    for (match_type, matching) in bad_filters {
        let mut component = ComponentData::default();
        component.entity_type = text("client-id");
        component.match_type = match_type;
        component._match = matching.map(text);
        let mut request = DescribeClientQuotasRequest::default();
        request.components = vec![component];
        let response = client.request(1, &request);
        assert_eq!(
            response.error_code, INVALID_REQUEST,
            "{match_type} {matching:?}"
        );
    }
}

/// The quota given to client-id `slow`, bytes/s, for producing and for consuming.
const QUOTA_BYTES_PER_SEC: f64 = 262_144.0;
/// How far a throttled client's steady rate may be from its quota: a client is throttled
/// after it overshoots, and the measurement window holds only a few throttle periods.
const QUOTA_TOLERANCE: f64 = 0.25;
/// An unthrottled client must move at least this many times the quota.
const UNTHROTTLED_FACTOR_MIN: f64 = 4.0;
const RUN_SECONDS: &str = "8";

/// Runs the clients at the same time; their rates by client id.
fn rates(broker: &Broker, topic: &str, mode: &str, clients: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let args = [&[bootstrap.as_str(), topic, mode, RUN_SECONDS][..], clients].concat();
    let output = run_python("confluent_quota_rates.py", &args);
    let rates = parse_output(&output)["rates"].clone();
    println!("{mode} rates: {rates}");
    rates
}

fn assert_throttled(rates: &Value, client: &str) {
    let steady = rates[client]["steady"].as_f64().expect("steady rate");
    let low = QUOTA_BYTES_PER_SEC * (1.0 - QUOTA_TOLERANCE);
    let high = QUOTA_BYTES_PER_SEC * (1.0 + QUOTA_TOLERANCE);
    assert!(
        low <= steady && steady <= high,
        "{client}: {steady} B/s, not near the quota: {rates}"
    );
}

fn assert_unthrottled(rates: &Value, client: &str) {
    let overall = rates[client]["overall"].as_f64().expect("overall rate");
    let floor = QUOTA_BYTES_PER_SEC * UNTHROTTLED_FACTOR_MIN;
    assert!(
        overall >= floor,
        "{client}: {overall} B/s, throttled: {rates}"
    );
}

#[test]
fn clients_over_their_quota_are_throttled_to_it_and_others_are_not() {
    let broker = Broker::start();
    let topic = topic_name("quotas");
    let mut client = RawClient::connect(&broker.bootstrap());
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let quota = QUOTA_BYTES_PER_SEC as u64;
    let add = format!("--alter --add-config producer_byte_rate={quota},consumer_byte_rate={quota}");
    client_configs(&broker, "slow", &add).success("alter");

    let produced = rates(&broker, &topic, "produce", &["slow", "fast"]);
    assert_throttled(&produced, "slow");
    assert_unthrottled(&produced, "fast");
    // The fast producer's bytes are more than the slow consumer can read in a run.
    let consumed = rates(&broker, &topic, "consume", &["slow", "fast"]);
    assert_throttled(&consumed, "slow");
    assert_unthrottled(&consumed, "fast");

    let (status, metrics) = broker.http_get("/metrics");
    assert_eq!(status, 200);
    let name = "sluice_client_quota_throttle_ms_total";
    for api in ["Produce", "Fetch"] {
        let slow = sample(&metrics, name, &[("client_id", "slow"), ("api", api)]);
        assert!(slow.is_some_and(|ms| ms > 0.0), "{api}: {slow:?}");
        assert_eq!(
            sample(&metrics, name, &[("client_id", "fast"), ("api", api)]),
            None
        );
    }

    let delete = "--alter --delete-config producer_byte_rate,consumer_byte_rate";
    client_configs(&broker, "slow", delete).success("delete-config");
    assert_eq!(
        client_configs(&broker, "slow", "--describe").success("describe"),
        ""
    );
    let lifted = rates(&broker, &topic, "produce", &["slow"]);
    assert_unthrottled(&lifted, "slow");
}

/// Metadata round trips `client` makes in `duration`; the largest throttle_time_ms answered,
/// and whether every request after a throttled answer waited out its throttle.
fn metadata_storm(client: &mut RawClient, duration: std::time::Duration) -> (usize, i32, bool) {
    use kafka_protocol::messages::MetadataRequest;
    let started = std::time::Instant::now();
    let (mut requests, mut throttle_max, mut honoured) = (0, 0, true);
    let mut owed = std::time::Duration::ZERO;
    while started.elapsed() < duration {
        let sent = std::time::Instant::now();
        let response = client.request(12, &MetadataRequest::default());
        // The broker muted the connection after a throttled answer: this request was read
        // only once the throttle had passed (a little slack for timer granularity).
        let slack = std::time::Duration::from_millis(5);
        honoured &= sent.elapsed() + slack >= owed;
        owed = std::time::Duration::from_millis(response.throttle_time_ms as u64);
        throttle_max = throttle_max.max(response.throttle_time_ms);
        requests += 1;
    }
    (requests, throttle_max, honoured)
}

#[test]
fn a_client_over_its_request_percentage_is_throttled() {
    let broker = Broker::start();
    let mut client = RawClient::connect(&broker.bootstrap());
    let window = std::time::Duration::from_secs(2);
    let (free_requests, free_throttle, _) = metadata_storm(&mut client, window);
    assert_eq!(free_throttle, 0, "no quota, no throttle");

    // 1 % of a worker's time: 10 ms of request handling per second.
    let raw_client_id = sluice_integration_tests::raw_client::CLIENT_ID;
    let add = "--alter --add-config request_percentage=1";
    client_configs(&broker, raw_client_id, add).success("alter");
    let (limited_requests, throttle_max, honoured) = metadata_storm(&mut client, window);
    assert!(
        throttle_max > 0,
        "over its quota, the client is told to back off"
    );
    assert!(
        honoured,
        "a throttled connection is muted for the throttle time"
    );
    assert!(
        limited_requests * 2 < free_requests,
        "the quota cuts the request rate: {limited_requests} vs {free_requests} unthrottled"
    );
    let metrics = broker.scrape();
    let throttled_ms = sample(
        &metrics,
        "sluice_client_quota_throttle_ms_total",
        &[("api", "Metadata"), ("client_id", raw_client_id)],
    );
    assert!(throttled_ms.is_some_and(|ms| ms > 0.0), "{metrics}");

    // Removing the quota frees it again.
    let delete = "--alter --delete-config request_percentage";
    client_configs(&broker, raw_client_id, delete).success("delete-config");
    let mut fresh = RawClient::connect(&broker.bootstrap());
    let (_, after_throttle, _) = metadata_storm(&mut fresh, std::time::Duration::from_millis(500));
    assert_eq!(after_throttle, 0);
}
