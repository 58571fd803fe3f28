//! Connection limits on a real broker, with raw sockets from 127.0.0.1: connections beyond
//! `--max-connections-per-ip` or `--max-connection-creation-rate` are closed at once, without
//! an answer, while the connections already open keep being served.
//!
//! The admission check is off: the controller's probe of its own address comes from
//! 127.0.0.1 too and would take one of the address's slots at moments the test cannot see.

use std::time::Duration;

use kafka_protocol::messages::ApiVersionsRequest;
use kafka_protocol::protocol::StrBytes;
use sluice_integration_tests::raw_client::RawClient;
use sluice_integration_tests::{wait_until, Broker};

const PER_IP_MAX: usize = 3;
const CREATION_RATE_PER_SEC: usize = 5;
/// A refused connection is closed at once; this only bounds a broken broker's wait.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(10);
const API_VERSIONS_VERSION: i16 = 3;

fn api_versions_request() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-connection-limits"))
        .with_client_software_version(StrBytes::from_static_str("0.1"))
}

/// Whether `client` gets an answer to ApiVersions.
fn serves(client: &mut RawClient) -> bool {
    client
        .try_request(API_VERSIONS_VERSION, &api_versions_request())
        .is_ok_and(|response| response.error_code == 0)
}

/// A new connection, if the broker serves it.
fn served_connection(broker: &Broker) -> Option<RawClient> {
    let mut client = RawClient::try_connect(&broker.bootstrap()).ok()?;
    serves(&mut client).then_some(client)
}

#[test]
fn connections_over_the_per_ip_limit_are_closed_at_once() {
    let per_ip = PER_IP_MAX.to_string();
    let broker = Broker::start_with(&[
        "--max-connections-per-ip",
        &per_ip,
        "--admission-check",
        "false",
    ]);
    // The harness's readiness probe may hold a slot until the broker sees it closed: take
    // the slots one by one.
    let mut held: Vec<RawClient> = (0..PER_IP_MAX)
        .map(|_| {
            wait_until(DEADLINE, "a connection within the limit", || {
                served_connection(&broker)
            })
        })
        .collect();
    for attempt in 0..3 {
        let mut extra = RawClient::connect(&broker.bootstrap());
        assert!(
            extra.is_closed(CLOSE_WITHIN),
            "connection {} beyond the limit stayed open",
            attempt + 1
        );
    }
    for (index, client) in held.iter_mut().enumerate() {
        assert!(serves(client), "held connection {index} stopped serving");
    }
    // Closing one frees its slot for a new connection.
    drop(held.pop());
    let mut replacement = wait_until(DEADLINE, "the freed slot", || served_connection(&broker));
    assert!(serves(&mut replacement));
    let mut extra = RawClient::connect(&broker.bootstrap());
    assert!(extra.is_closed(CLOSE_WITHIN));
}

#[test]
fn connections_over_the_creation_rate_are_closed_at_once() {
    let rate = CREATION_RATE_PER_SEC.to_string();
    let broker = Broker::start_with(&[
        "--max-connection-creation-rate",
        &rate,
        "--admission-check",
        "false",
    ]);
    // A burst far over the rate, opened well within one second.
    let burst = 4 * CREATION_RATE_PER_SEC;
    let started = std::time::Instant::now();
    let clients: Vec<RawClient> = (0..burst)
        .map(|_| RawClient::connect(&broker.bootstrap()))
        .collect();
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "burst too slow"
    );
    let mut served = served_only(clients);
    // The readiness probe may have used some of the last second's budget.
    assert!(
        (1..=CREATION_RATE_PER_SEC).contains(&served.len()),
        "{} of {burst} served",
        served.len()
    );
    for client in &mut served {
        assert!(serves(client), "an admitted connection stopped serving");
    }
    // Once the burst leaves the one-second window, new connections are served again.
    let mut later = wait_until(DEADLINE, "a connection after the window", || {
        served_connection(&broker)
    });
    assert!(serves(&mut later));
}

/// The connections the broker serves; every other one must have been closed at once.
fn served_only(clients: Vec<RawClient>) -> Vec<RawClient> {
    let mut served = Vec::new();
    for mut client in clients {
        if serves(&mut client) {
            served.push(client);
        } else {
            assert!(client.is_closed(CLOSE_WITHIN), "unanswered but still open");
        }
    }
    served
}
