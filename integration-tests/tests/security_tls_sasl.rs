//! Named listeners, TLS, mTLS and SASL/PLAIN with real clients (confluent-kafka, kafka-python)
//! and raw requests: exact records back over SASL_SSL and mTLS, wrong passwords and garbage
//! tokens refused with SASL_AUTHENTICATION_FAILED, plaintext to a TLS port refused, requests
//! before authentication closing the connection, a flood of failed logins that does not
//! stop another client, and SaslHandshake v0 followed by raw tokens (old clients). Certificates are made by the test (`openssl` CLI).

use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiVersionsRequest, MetadataRequest, SaslAuthenticateRequest, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use sluice_integration_tests::certs::Certs;
use sluice_integration_tests::kafka_cli::{kafka_tool, kafka_tool_ok, CONFIGS};
use sluice_integration_tests::raw_client::{frame, record_batch, RawClient, TestRecord};
use sluice_integration_tests::{run_java, run_python, topic_name, Broker};

const RECORD_COUNT: usize = 25;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const USERS: &str = "# test users\nalice:alice-secret\nbob:bob:with:colons\n";

/// A broker with PLAINTEXT, SASL_SSL and SASL_PLAINTEXT listeners and PLAIN users.
fn sasl_broker(certs: &Certs) -> Broker {
    let args = certs.sasl_listener_args(USERS);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Broker::start_with(&args)
}

/// A broker with PLAINTEXT and SSL listeners whose TLS clients must present a certificate
/// signed by `certs`' CA (the principal is its CN).
fn mtls_broker(certs: &Certs) -> Broker {
    let path = |path: std::path::PathBuf| path.to_str().expect("utf-8 path").to_string();
    let (certificate, key, ca) = (
        path(certs.server_certificate()),
        path(certs.server_key()),
        path(certs.ca()),
    );
    Broker::start_with(&[
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "--ssl-certificate-file",
        &certificate,
        "--ssl-key-file",
        &key,
        "--ssl-client-ca-file",
        &ca,
    ])
}

fn run_client(client: &str, bootstrap: &str, topic: &str, count: usize, settings: &Value) -> Value {
    let count = count.to_string();
    let settings = settings.to_string();
    let output = run_python(
        "security_clients.py",
        &[client, bootstrap, topic, &count, &settings],
    );
    serde_json::from_str(output.trim()).unwrap_or_else(|error| panic!("{error}: {output}"))
}

fn assert_round_trip(output: &Value, topic: &str) {
    let expected: Vec<Value> = (0..RECORD_COUNT)
        .map(|index| json!(format!("{topic}-secure-{index}")))
        .collect();
    assert_eq!(output["produced"], json!(expected));
    assert_eq!(
        output["consumed"],
        json!(expected),
        "every record back once, in order"
    );
}

fn sasl_ssl_plain(certs: &Certs, user: &str, password: &str) -> Value {
    json!({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": certs.ca().to_str().expect("utf-8 path"),
    })
}

#[test]
fn sasl_ssl_plain_round_trips_with_confluent_and_kafka_python() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    for (client, user, password) in [
        ("confluent", "alice", "alice-secret"),
        ("kafka-python", "bob", "bob:with:colons"),
    ] {
        let topic = topic_name(&format!("sasl-ssl-plain-{client}"));
        let settings = sasl_ssl_plain(&certs, user, password);
        let output = run_client(client, &bootstrap, &topic, RECORD_COUNT, &settings);
        assert_round_trip(&output, &topic);
    }
}

#[test]
fn wrong_password_is_refused_and_metadata_hands_out_the_same_listener() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let settings = sasl_ssl_plain(&certs, "alice", "wrong");
    let output = run_client("confluent", &bootstrap, "unused", 0, &settings);
    let error = output["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("Authentication failed"), "{output}");
    let output = run_client("kafka-python", &bootstrap, "unused", 0, &settings);
    let error = output["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("Authentication"), "{output}");

    // Metadata on each listener names that listener's endpoint.
    let sasl_plaintext = broker.listener_address("SASL_PLAINTEXT");
    let mut client = authenticated(&sasl_plaintext.to_string(), "alice", "alice-secret");
    let metadata = client.request(12, &MetadataRequest::default());
    assert_eq!(metadata.brokers.len(), 1);
    assert_eq!(metadata.brokers[0].port, i32::from(sasl_plaintext.port()));
    let mut plain = RawClient::connect(&broker.bootstrap());
    let metadata = plain.request(12, &MetadataRequest::default());
    assert_eq!(
        metadata.brokers[0].port,
        i32::from(broker.listener_address("PLAINTEXT").port())
    );
}

/// A raw client authenticated with SASL/PLAIN on a SASL_PLAINTEXT listener.
fn authenticated(address: &str, user: &str, password: &str) -> RawClient {
    let mut client = RawClient::connect(address);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str("PLAIN");
    let answer = client.request(1, &handshake);
    assert_eq!(answer.error_code, 0);
    assert!(answer.mechanisms.iter().any(|m| m.as_str() == "PLAIN"));
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::from(format!("\0{user}\0{password}"));
    let answer = client.request(2, &authenticate);
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    client
}

fn plain_attempt(address: &str, token: &[u8]) -> (i16, Option<String>, bool) {
    let mut client = RawClient::connect(address);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str("PLAIN");
    assert_eq!(client.request(1, &handshake).error_code, 0);
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::copy_from_slice(token);
    let answer = client.request(2, &authenticate);
    let closed = client.is_closed(Duration::from_secs(10));
    (
        answer.error_code,
        answer.error_message.map(|m| m.to_string()),
        closed,
    )
}

#[test]
fn garbage_tokens_and_early_requests_are_refused() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    for token in [
        &b""[..],
        b"\0\0\0\0",
        b"\xff\xfe\0alice\0",
        b"alice-secret",
        b"\0alice\0wrong",
        b"mallory\0alice\0alice-secret",
    ] {
        let (code, message, closed) = plain_attempt(&address, token);
        assert_eq!(code, SASL_AUTHENTICATION_FAILED, "{token:?}");
        assert_eq!(
            message.as_deref(),
            Some("Authentication failed: invalid credentials")
        );
        assert!(closed, "connection left open after a failed login");
    }
    // SCRAM garbage: refused the same way.
    let mut client = RawClient::connect(&address);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str("SCRAM-SHA-512");
    assert_eq!(client.request(1, &handshake).error_code, 0);
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::from_static(b"p=tls-unique,,n=alice,r=x");
    assert_eq!(
        client.request(2, &authenticate).error_code,
        SASL_AUTHENTICATION_FAILED
    );
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM (33).
    let mut client = RawClient::connect(&address);
    handshake.mechanism = StrBytes::from_static_str("GSSAPI");
    assert_eq!(client.request(1, &handshake).error_code, 33);
    // ApiVersions is allowed before authentication; Metadata closes the connection.
    let mut client = RawClient::connect(&address);
    let versions = client.request(2, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    client
        .send_request(12, &MetadataRequest::default())
        .expect("send");
    assert!(client.is_closed(Duration::from_secs(10)));
    // A good login still works afterwards.
    let mut client = authenticated(&address, "alice", "alice-secret");
    assert_eq!(
        client
            .request(12, &MetadataRequest::default())
            .brokers
            .len(),
        1
    );
}

#[test]
fn plaintext_client_to_tls_port_is_refused_and_the_broker_is_unharmed() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let tls = broker.listener_address("SASL_SSL").to_string();
    let mut client = RawClient::connect(&tls);
    client
        .send_request(2, &ApiVersionsRequest::default())
        .expect("send");
    assert!(
        client.is_closed(Duration::from_secs(15)),
        "TLS port answered plaintext"
    );
    let mut plain = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        plain.request(2, &ApiVersionsRequest::default()).error_code,
        0
    );
    let topic = topic_name("after-plaintext-probe");
    let settings = sasl_ssl_plain(&certs, "alice", "alice-secret");
    let output = run_client("confluent", &tls, &topic, RECORD_COUNT, &settings);
    assert_round_trip(&output, &topic);
}

#[test]
fn failed_login_flood_does_not_stop_another_client() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..4)
        .map(|_| {
            let address = address.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut refused = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (code, _, _) = plain_attempt(&address, b"\0alice\0guess");
                    assert_eq!(code, SASL_AUTHENTICATION_FAILED);
                    refused += 1;
                }
                refused
            })
        })
        .collect();
    let started = Instant::now();
    let topic = topic_name("during-flood");
    let settings = sasl_ssl_plain(&certs, "alice", "alice-secret");
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let output = run_client("confluent", &bootstrap, &topic, RECORD_COUNT, &settings);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let refused: u32 = attackers
        .into_iter()
        .map(|t| t.join().expect("attacker"))
        .sum();
    assert_round_trip(&output, &topic);
    assert!(
        refused >= 4,
        "the flood ran ({refused} refusals in {:?})",
        started.elapsed()
    );
}

#[test]
fn mtls_round_trips_with_confluent_and_kafka_python() {
    let certs = Certs::generate();
    let (certificate, key) = certs.client("alice");
    let ca = certs.ca();
    let broker = mtls_broker(&certs);
    let bootstrap = broker.listener_address("SSL").to_string();
    let settings = json!({
        "security.protocol": "SSL",
        "ssl.ca.location": ca.to_str().expect("utf-8 path"),
        "ssl.certificate.location": certificate.to_str().expect("utf-8 path"),
        "ssl.key.location": key.to_str().expect("utf-8 path"),
    });
    for client in ["confluent", "kafka-python"] {
        let topic = topic_name(&format!("mtls-{client}"));
        let output = run_client(client, &bootstrap, &topic, RECORD_COUNT, &settings);
        assert_round_trip(&output, &topic);
    }
    // Without a client certificate the handshake fails.
    let anonymous = json!({
        "security.protocol": "SSL",
        "ssl.ca.location": ca.to_str().expect("utf-8 path"),
    });
    let output = run_client("confluent", &bootstrap, "unused", 0, &anonymous);
    assert!(output["error"].is_string(), "{output}");
}

#[test]
fn expired_and_untrusted_client_certificates_are_refused() {
    let certs = Certs::generate();
    let strangers = Certs::generate();
    let ca = certs.ca();
    let broker = mtls_broker(&certs);
    let bootstrap = broker.listener_address("SSL").to_string();
    let presenting = |(certificate, key): (std::path::PathBuf, std::path::PathBuf)| {
        json!({
            "security.protocol": "SSL",
            "ssl.ca.location": ca.to_str().expect("utf-8 path"),
            "ssl.certificate.location": certificate.to_str().expect("utf-8 path"),
            "ssl.key.location": key.to_str().expect("utf-8 path"),
        })
    };
    // Expired (signed by the trusted CA), and valid but signed by another CA.
    // The broker itself refuses them (its log says why), not the client. Both test CAs have
    // the same name, so the stranger's certificate fails on the signature.
    for (what, pair, reason) in [
        ("expired", certs.expired_client("late"), "Expired"),
        ("untrusted", strangers.client("stranger"), "BadSignature"),
    ] {
        let output = run_client("confluent", &bootstrap, "unused", 0, &presenting(pair));
        let error = output["error"].as_str().unwrap_or_default().to_string();
        assert!(
            error.contains("SSL"),
            "{what} certificate accepted: {output}"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let refused = |log: &str| {
            log.lines()
                .any(|line| line.contains("TLS handshake failed") && line.contains(reason))
        };
        while !refused(&broker.stderr_all()) {
            assert!(
                Instant::now() < deadline,
                "no {reason} refusal logged:\n{}",
                broker.stderr_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // The broker is unharmed: a valid certificate still round-trips.
    let topic = topic_name("after-refused-certificates");
    let output = run_client(
        "confluent",
        &bootstrap,
        &topic,
        RECORD_COUNT,
        &presenting(certs.client("valid")),
    );
    assert_round_trip(&output, &topic);
}

/// SaslHandshake + SaslAuthenticate v1 with PLAIN on `client`'s connection (a login, or a
/// KIP-368 re-authentication); returns (error code, session lifetime).
fn plain_login(client: &mut RawClient, user: &str, password: &str) -> (i16, i64) {
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str("PLAIN");
    assert_eq!(client.request(1, &handshake).error_code, 0);
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::from(format!("\0{user}\0{password}"));
    let answer = client.request(1, &authenticate);
    (answer.error_code, answer.session_lifetime_ms)
}

#[test]
fn sasl_sessions_expire_unless_reauthenticated() {
    let certs = Certs::generate();
    let users = certs.dir().join("users");
    std::fs::write(&users, USERS).expect("write users");
    let lifetime = Duration::from_millis(1500);
    let lifetime_ms = lifetime.as_millis().to_string();
    let broker = Broker::start_with(&[
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://127.0.0.1:0",
        "--sasl-plain-users-file",
        users.to_str().expect("utf-8 path"),
        "--connections-max-reauth-ms",
        &lifetime_ms,
    ]);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let logged_in = Instant::now();
    let mut renewing = RawClient::connect(&address);
    let mut lapsing = RawClient::connect(&address);
    for client in [&mut renewing, &mut lapsing] {
        assert_eq!(
            plain_login(client, "alice", "alice-secret"),
            (0, lifetime.as_millis() as i64)
        );
        let metadata = client.request(12, &MetadataRequest::default());
        assert_eq!(metadata.brokers.len(), 1);
    }
    // Let both sessions run out: the lifetime is what is being tested, not an event.
    std::thread::sleep(lifetime.saturating_sub(logged_in.elapsed()) + Duration::from_millis(100));
    // Re-authenticating on the same connection renews the session ...
    assert_eq!(
        plain_login(&mut renewing, "alice", "alice-secret"),
        (0, lifetime.as_millis() as i64)
    );
    let metadata = renewing.request(12, &MetadataRequest::default());
    assert_eq!(metadata.brokers.len(), 1);
    // ... the other connection is closed at its next request.
    lapsing
        .send_request(12, &MetadataRequest::default())
        .expect("send");
    assert!(
        lapsing.is_closed(Duration::from_secs(10)),
        "expired session served"
    );
    // A re-authentication may not change the principal.
    assert_eq!(
        plain_login(&mut renewing, "bob", "bob:with:colons").0,
        SASL_AUTHENTICATION_FAILED
    );
    assert!(renewing.is_closed(Duration::from_secs(10)));
}

/// kafka-configs `--entity-type users` on the PLAINTEXT listener.
fn user_configs(broker: &Broker, user: &str, action: &[&str]) -> String {
    let bootstrap = broker.bootstrap();
    let entity = ["--entity-type", "users", "--entity-name", user];
    let args = [
        &["--bootstrap-server", bootstrap.as_str()][..],
        action,
        &entity[..],
    ]
    .concat();
    kafka_tool_ok(CONFIGS, &args)
}

fn sasl_ssl_scram(certs: &Certs, mechanism: &str, user: &str, password: &str) -> Value {
    json!({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password,
        "ssl.ca.location": certs.ca().to_str().expect("utf-8 path"),
    })
}

#[test]
fn scram_credentials_set_with_kafka_configs_authenticate_real_clients() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let added = user_configs(
        &broker,
        "carol",
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=8192,password=carol-secret],SCRAM-SHA-256=[password=carol-256]",
        ],
    );
    assert_eq!(added.trim(), "Completed updating config for user carol.");
    let described = user_configs(&broker, "carol", &["--describe"]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-256=iterations=4096, SCRAM-SHA-512=iterations=8192"
    );
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    for (client, mechanism, password) in [
        ("confluent", "SCRAM-SHA-512", "carol-secret"),
        ("kafka-python", "SCRAM-SHA-512", "carol-secret"),
        ("confluent", "SCRAM-SHA-256", "carol-256"),
    ] {
        let topic = topic_name(&format!("scram-{client}-{mechanism}"));
        let settings = sasl_ssl_scram(&certs, mechanism, "carol", password);
        let output = run_client(client, &bootstrap, &topic, RECORD_COUNT, &settings);
        assert_round_trip(&output, &topic);
    }
    // A wrong password, and a deleted mechanism, are refused.
    let wrong = sasl_ssl_scram(&certs, "SCRAM-SHA-512", "carol", "carol-256");
    let output = run_client("confluent", &bootstrap, "unused", 0, &wrong);
    let error = output["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("Authentication failed"), "{output}");
    let deleted = user_configs(
        &broker,
        "carol",
        &["--alter", "--delete-config", "SCRAM-SHA-256"],
    );
    assert_eq!(deleted.trim(), "Completed updating config for user carol.");
    let described = user_configs(&broker, "carol", &["--describe"]);
    assert_eq!(
        described.trim(),
        "SCRAM credential configs for user-principal 'carol' are SCRAM-SHA-512=iterations=8192"
    );
    let gone = sasl_ssl_scram(&certs, "SCRAM-SHA-256", "carol", "carol-256");
    let output = run_client("confluent", &bootstrap, "unused", 0, &gone);
    let error = output["error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("Authentication failed"), "{output}");
    // Too few iterations: refused by the broker, nothing stored.
    let refused = kafka_tool(
        CONFIGS,
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=1000,password=weak]",
            "--entity-type",
            "users",
            "--entity-name",
            "dave",
        ],
        b"",
    );
    assert!(!refused.status.success(), "{}", refused.stdout);
}

/// The Java client (kafka-clients) over `bootstrap` with `properties` as its security
/// settings; asserts every record back once, in order.
fn java_round_trip(certs: &Certs, bootstrap: &str, topic: &str, properties: &str) {
    let file = certs.dir().join(format!("{topic}.properties"));
    std::fs::write(&file, properties).expect("write client properties");
    let count = RECORD_COUNT.to_string();
    let output = run_java(
        "SecureProduceConsume",
        &[bootstrap, topic, &count, file.to_str().expect("utf-8 path")],
    );
    let output: Value = serde_json::from_str(output.trim()).expect("JSON summary");
    assert_round_trip(&output, topic);
}

#[test]
fn java_client_over_sasl_ssl_scram_and_plain_and_mtls() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let added = user_configs(
        &broker,
        "erin",
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=erin-secret]",
        ],
    );
    assert_eq!(added.trim(), "Completed updating config for user erin.");
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let ca = certs.ca();
    let ca = ca.to_str().expect("utf-8 path");
    let jaas = |module: &str, user: &str, password: &str| {
        format!(
            "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
             sasl.jaas.config=org.apache.kafka.common.security.{module} required \
             username=\"{user}\" password=\"{password}\";\n"
        )
    };
    let scram =
        jaas("scram.ScramLoginModule", "erin", "erin-secret") + "sasl.mechanism=SCRAM-SHA-512\n";
    java_round_trip(&certs, &bootstrap, &topic_name("java-scram"), &scram);
    let plain = jaas("plain.PlainLoginModule", "alice", "alice-secret") + "sasl.mechanism=PLAIN\n";
    java_round_trip(&certs, &bootstrap, &topic_name("java-plain"), &plain);
    drop(broker);

    // mTLS: the client's key and certificate in one PEM keystore.
    let (certificate, key) = certs.client("java");
    let keystore = certs.dir().join("java-keystore.pem");
    let pem = std::fs::read_to_string(&key).expect("key")
        + &std::fs::read_to_string(&certificate).expect("cert");
    std::fs::write(&keystore, pem).expect("write keystore");
    let broker = mtls_broker(&certs);
    let properties = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={ca}\n\
         ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        keystore.display()
    );
    let bootstrap = broker.listener_address("SSL").to_string();
    java_round_trip(&certs, &bootstrap, &topic_name("java-mtls"), &properties);
}

/// Replaces `to` with `from` at once (write beside, then rename), as a deploy tool would.
fn replace_file(from: &std::path::Path, to: &std::path::Path) {
    let staging = to.with_extension("staging");
    std::fs::copy(from, &staging).expect("copy");
    std::fs::rename(&staging, to).expect("rename");
}

#[test]
fn certificates_are_reloaded_without_a_restart() {
    let first = Certs::generate();
    let second = Certs::generate();
    let live_certificate = first.dir().join("live.pem");
    let live_key = first.dir().join("live.key");
    replace_file(&first.server_certificate(), &live_certificate);
    replace_file(&first.server_key(), &live_key);
    let broker = Broker::start_with(&[
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0",
        "--ssl-certificate-file",
        live_certificate.to_str().expect("utf-8 path"),
        "--ssl-key-file",
        live_key.to_str().expect("utf-8 path"),
    ]);
    let bootstrap = broker.listener_address("SSL").to_string();
    let trusting = |certs: &Certs| {
        json!({
            "security.protocol": "SSL",
            "ssl.ca.location": certs.ca().to_str().expect("utf-8 path"),
        })
    };
    let connect =
        |certs: &Certs| run_client("confluent", &bootstrap, "unused", 0, &trusting(certs));
    assert_eq!(connect(&first)["error"], Value::Null);
    assert!(
        connect(&second)["error"].is_string(),
        "trusted an unknown CA"
    );
    // Rotate: the key first, then the certificate; the next connection sees the new pair.
    replace_file(&second.server_key(), &live_key);
    replace_file(&second.server_certificate(), &live_certificate);
    assert_eq!(connect(&second)["error"], Value::Null);
    assert!(
        connect(&first)["error"].is_string(),
        "still serving the old certificate"
    );
}

#[test]
fn java_clients_reauthenticate_before_their_sessions_expire() {
    let certs = Certs::generate();
    let users = certs.dir().join("users");
    std::fs::write(&users, USERS).expect("write users");
    let certificate = certs.server_certificate();
    let key = certs.server_key();
    let broker = Broker::start_with(&[
        "--listeners",
        "PLAINTEXT://127.0.0.1:0,SASL_SSL://127.0.0.1:0",
        "--ssl-certificate-file",
        certificate.to_str().expect("utf-8 path"),
        "--ssl-key-file",
        key.to_str().expect("utf-8 path"),
        "--sasl-plain-users-file",
        users.to_str().expect("utf-8 path"),
        "--connections-max-reauth-ms",
        "2000",
    ]);
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let ca = certs.ca();
    let properties = format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         sasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security.plain.\
         PlainLoginModule required username=\"alice\" password=\"alice-secret\";\n",
        ca.display()
    );
    // Producing and consuming in a group outlasts a 2 s session several times over.
    java_round_trip(&certs, &bootstrap, &topic_name("java-reauth"), &properties);
    let log = broker.stderr_all();
    assert!(
        log.contains("SASL re-authentication started"),
        "the Java client never re-authenticated:\n{}",
        broker.stderr_tail()
    );
    assert!(
        !log.contains("SASL session expired"),
        "{}",
        broker.stderr_tail()
    );
}

/// SaslHandshake v0 for `mechanism` on a fresh connection: from here on tokens travel raw.
fn handshake_v0(address: &str, mechanism: &'static str) -> RawClient {
    let mut client = RawClient::connect(address);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str(mechanism);
    let answer = client.request(0, &handshake);
    assert_eq!(answer.error_code, 0);
    assert!(answer.mechanisms.iter().any(|m| m.as_str() == mechanism));
    client
}

#[test]
fn handshake_v0_is_followed_by_raw_tokens_as_old_clients_send_them() {
    let certs = Certs::generate();
    let broker = sasl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    // PLAIN: one raw token, answered by an empty raw token; then requests are served.
    let mut client = handshake_v0(&address, "PLAIN");
    client
        .send_raw(&frame(b"\0alice\0alice-secret"))
        .expect("send token");
    assert_eq!(
        client.read_response_bytes().expect("reply token"),
        Bytes::new()
    );
    let topic = topic_name("sasl-v0-raw");
    assert_eq!(client.create_topic(&topic, 1, &[]), 0);
    let records = [TestRecord::new(b"k0", b"v0"), TestRecord::new(b"k1", b"v1")];
    let produced = client.produce(&topic, 0, -1, record_batch(&records));
    assert_eq!(
        produced.map(|p| (p.error_code, p.base_offset)),
        Some((0, 0))
    );
    let fetched = client.fetch_all_from(&topic, 0, 0);
    assert_eq!(fetched.len(), records.len());
    assert!(records.iter().zip(&fetched).all(|(r, f)| r.matches(f)));

    // A wrong password: no answer at all, the connection is closed (Kafka's v0 behaviour).
    let mut client = handshake_v0(&address, "PLAIN");
    client
        .send_raw(&frame(b"\0alice\0wrong"))
        .expect("send token");
    let refused = client
        .read_response_bytes()
        .expect_err("no reply to a wrong password");
    assert_eq!(
        refused.kind(),
        std::io::ErrorKind::UnexpectedEof,
        "{refused}"
    );
    // A SaslAuthenticate after a v0 handshake is not a token of the mechanism: refused.
    let mut client = handshake_v0(&address, "PLAIN");
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::from_static(b"\0alice\0alice-secret");
    client.send_request(2, &authenticate).expect("send");
    assert!(client.read_response_bytes().is_err());

    // kafka-python told the broker is 0.10.0 uses SaslHandshake v0 and raw tokens: PLAIN
    // and SCRAM-SHA-512 round trip, a wrong password is refused.
    let added = user_configs(
        &broker,
        "carol",
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=carol-secret]",
        ],
    );
    assert_eq!(added.trim(), "Completed updating config for user carol.");
    let old = |mechanism: &str, user: &str, password: &str| {
        json!({
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": mechanism,
            "sasl.username": user,
            "sasl.password": password,
            "api.version": [0, 10, 0],
        })
    };
    for (mechanism, user, password) in [
        ("PLAIN", "bob", "bob:with:colons"),
        ("SCRAM-SHA-512", "carol", "carol-secret"),
    ] {
        let topic = topic_name(&format!("sasl-v0-{mechanism}"));
        let settings = old(mechanism, user, password);
        let output = run_client("kafka-python", &address, &topic, RECORD_COUNT, &settings);
        assert_round_trip(&output, &topic);
    }
    let wrong = old("SCRAM-SHA-512", "carol", "wrong");
    let output = run_client("kafka-python", &address, "unused", 0, &wrong);
    assert_ne!(output["error"], Value::Null, "{output}");
    assert!(
        broker.stderr_all().contains("SASL authentication failed"),
        "the refusal is logged"
    );
}
