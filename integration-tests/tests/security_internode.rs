//! TLS and SASL between nodes (issue 11): 3-node clusters whose only listener is SASL_SSL
//! (nodes authenticate to each other with SCRAM-SHA-512 as `User:broker`) or SSL with
//! client certificates (nodes are `User:<CN>` of their certificate), the authoriser on and
//! only the nodes and the admin super users. The Java producer (acks=all) and consumer round
//! trip every record, the ISR stays full, and after kill -9 of the leader the new leader
//! has every record: replication ran over the secured listener. A node with a wrong
//! inter-broker password cannot replicate, says why once per peer, and never logs a password;
//! nor can a node whose certificate names a principal without ClusterAction.
//!
//! Bootstrap of SCRAM credentials: they live in the cluster metadata, so the cluster starts
//! with a PLAIN users file holding only `admin`; the admin creates the SCRAM user `broker`
//! with kafka-configs. Until then nodes are admitted (the controller's address check is TLS +
//! ApiVersions, served before authentication) but cannot replicate.
//!
//! The mTLS cluster also runs its Raft port under mutual TLS (`--raft-tls`): the failover
//! needs the metadata quorum, and a plaintext Raft request is not answered.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sluice_integration_tests::certs::Certs;
use sluice_integration_tests::cluster::{Cluster, ClusterPlan, CLUSTER_DEADLINE};
use sluice_integration_tests::kafka_cli::{kafka_tool_ok, CONFIGS, CONSOLE_CONSUMER, TOPICS};
use sluice_integration_tests::{run_java, topic_name, wait_until, Broker};
use sluice_raft::controller::Operation;
use sluice_raft::network::frame::{cluster_fingerprint, encode_frame, RpcEnvelope, RpcRequest};

const ACLS: &str = "org.apache.kafka.tools.AclCommand";
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const RECORD_COUNT: usize = 40;
/// Distinctive, so that finding it in a log cannot be a coincidence.
const BROKER_PASSWORD: &str = "br0ker-Pa55-internode";
const WRONG_PASSWORD: &str = "wr0ng-Pa55-internode";
const ADMIN_PASSWORD: &str = "adm1n-Pa55-internode";
const APP_PASSWORD: &str = "app-Pa55-internode";
/// The SASL session lifetime of the SASL_SSL clusters: several renewals per test.
const SESSION_LIFETIME_MS: &str = "4000";
/// Distinct reasons a node may log for one peer (the refusal, and a slow refusal timing out
/// on a busy machine): far fewer than its retries.
const REASONS_LOGGED_MAX: usize = 3;
/// A broker id no cluster here has.
const BROKER_ID_UNKNOWN: i32 = 99;
/// The first byte of a TLS alert record.
const TLS_ALERT_RECORD: u8 = 21;
/// How long the console consumer waits for a record before giving up.
const CONSUMER_IDLE_TIMEOUT_MS: &str = "60000";

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Flags of a node whose only listener is SASL_SSL on `port`, dialing the others with SCRAM.
fn sasl_ssl_node_args(certs: &Certs, port: u16, password: &str) -> Vec<String> {
    let users = certs.dir().join("plain-users");
    std::fs::write(&users, format!("admin:{ADMIN_PASSWORD}\n")).expect("write users");
    [
        "--listeners",
        &format!("SASL_SSL://127.0.0.1:{port}"),
        "--inter-broker-listener-name",
        "SASL_SSL",
        "--ssl-certificate-file",
        path_str(&certs.server_certificate()),
        "--ssl-key-file",
        path_str(&certs.server_key()),
        "--ssl-truststore-file",
        path_str(&certs.ca()),
        "--sasl-plain-users-file",
        path_str(&users),
        "--sasl-mechanism-inter-broker-protocol",
        "SCRAM-SHA-512",
        "--inter-broker-sasl-username",
        "broker",
        "--inter-broker-sasl-password",
        password,
        "--authorizer-class-name",
        STANDARD_AUTHORIZER,
        "--super-users",
        "User:broker;User:admin",
        // KIP-368 sessions: nodes open a fresh connection before theirs end.
        "--connections-max-reauth-ms",
        SESSION_LIFETIME_MS,
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect()
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A Java client properties file in the certs dir.
fn properties(certs: &Certs, name: &str, text: &str) -> PathBuf {
    let file = certs.dir().join(format!("{name}.properties"));
    std::fs::write(&file, text).expect("write properties");
    file
}

fn sasl_ssl_properties(
    certs: &Certs,
    name: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> PathBuf {
    let module = if mechanism == "PLAIN" {
        "plain.PlainLoginModule"
    } else {
        "scram.ScramLoginModule"
    };
    let text = format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         sasl.mechanism={mechanism}\n\
         sasl.jaas.config=org.apache.kafka.common.security.{module} required \
         username=\"{user}\" password=\"{password}\";\n",
        path_str(&certs.ca())
    );
    properties(certs, name, &text)
}

/// SSL with the client certificate `common_name` in a PEM keystore.
fn mtls_properties(certs: &Certs, common_name: &str) -> PathBuf {
    let (certificate, key) = certs.client(common_name);
    let keystore = certs.dir().join(format!("{common_name}-keystore.pem"));
    let pem = std::fs::read_to_string(&key).expect("key")
        + &std::fs::read_to_string(&certificate).expect("cert");
    std::fs::write(&keystore, pem).expect("write keystore");
    let text = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         ssl.keystore.type=PEM\nssl.keystore.location={}\n",
        path_str(&certs.ca()),
        keystore.display()
    );
    properties(certs, common_name, &text)
}

/// Runs a Kafka tool with `--bootstrap-server` and `--command-config`.
fn tool(main_class: &str, bootstrap: &str, config: &Path, args: &[&str]) -> String {
    let base = [
        "--bootstrap-server",
        bootstrap,
        "--command-config",
        path_str(config),
    ];
    kafka_tool_ok(main_class, &[&base[..], args].concat())
}

fn add_scram_user(bootstrap: &str, admin: &Path, user: &str, password: &str) {
    let credential = format!("SCRAM-SHA-512=[password={password}]");
    let added = tool(
        CONFIGS,
        bootstrap,
        admin,
        &[
            "--alter",
            "--add-config",
            &credential,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ],
    );
    assert_eq!(
        added.trim(),
        format!("Completed updating config for user {user}.")
    );
}

/// One partition led by node 1 (then 2, 3), min.insync.replicas=2.
fn create_topic(bootstrap: &str, admin: &Path, topic: &str) {
    tool(
        TOPICS,
        bootstrap,
        admin,
        &[
            "--create",
            "--topic",
            topic,
            "--replica-assignment",
            "1:2:3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
}

/// (leader, ISR) of partition 0, from kafka-topics --describe.
fn leader_and_isr(bootstrap: &str, admin: &Path, topic: &str) -> Option<(i32, Vec<i32>)> {
    let described = tool(TOPICS, bootstrap, admin, &["--describe", "--topic", topic]);
    let line = described
        .lines()
        .find(|line| line.contains("Partition: 0"))?;
    let field = |name: &str| {
        line.split('\t').find_map(|part| {
            part.trim()
                .strip_prefix(name)
                .map(str::trim)
                .map(str::to_string)
        })
    };
    let leader = field("Leader:")?.parse().ok()?;
    let mut isr: Vec<i32> = field("Isr:")?
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect();
    isr.sort_unstable();
    Some((leader, isr))
}

fn expected_values(topic: &str) -> Vec<Value> {
    (0..RECORD_COUNT)
        .map(|index| json!(format!("{topic}-secure-{index}")))
        .collect()
}

/// The Java producer (acks=all) and a consumer group over `bootstrap`: every record back
/// once, in order (one partition: at offsets 0..RECORD_COUNT).
fn java_round_trip(bootstrap: &str, topic: &str, client: &Path) {
    let count = RECORD_COUNT.to_string();
    let output = run_java(
        "SecureProduceConsume",
        &[bootstrap, topic, &count, path_str(client)],
    );
    let output: Value = serde_json::from_str(output.trim()).expect("JSON summary");
    let expected = json!(expected_values(topic));
    assert_eq!(output["produced"], expected);
    assert_eq!(
        output["consumed"], expected,
        "every record back once, in order"
    );
}

/// Every record from the beginning, read with the console consumer (a fresh group).
fn console_consume(bootstrap: &str, topic: &str, client: &Path) -> Vec<String> {
    let count = RECORD_COUNT.to_string();
    let group = format!("{topic}-after-failover");
    let consumed = kafka_tool_ok(
        CONSOLE_CONSUMER,
        &[
            "--bootstrap-server",
            bootstrap,
            "--consumer.config",
            path_str(client),
            "--topic",
            topic,
            "--group",
            &group,
            "--from-beginning",
            "--max-messages",
            &count,
            "--timeout-ms",
            CONSUMER_IDLE_TIMEOUT_MS,
        ],
    );
    consumed.lines().map(str::to_string).collect()
}

fn bootstrap_of(cluster: &Cluster, listener: &str, ids: &[i32]) -> String {
    let addresses: Vec<String> = ids
        .iter()
        .map(|id| cluster.node(*id).listener_address(listener).to_string())
        .collect();
    addresses.join(",")
}

/// Produce and consume with the ISR full, kill -9 the leader, read everything from the new
/// one. `client` is the Java client's settings, `admin` the tools'.
fn replicate_and_fail_over(cluster: &mut Cluster, listener: &str, admin: &Path, client: &Path) {
    let bootstrap = bootstrap_of(cluster, listener, &[1, 2, 3]);
    let topic = topic_name("internode");
    create_topic(&bootstrap, admin, &topic);
    java_round_trip(&bootstrap, &topic, client);
    // acks=all with min.insync.replicas=2 succeeded: followers fetched over the secured
    // listener. All three stay in sync.
    let (leader, _) = wait_until(CLUSTER_DEADLINE, "the ISR full after producing", || {
        leader_and_isr(&bootstrap, admin, &topic).filter(|(_, isr)| *isr == [1, 2, 3])
    });
    assert_eq!(leader, 1);

    cluster.kill9(leader);
    let survivors = bootstrap_of(cluster, listener, &[2, 3]);
    let (new_leader, _) = wait_until(CLUSTER_DEADLINE, "a new leader", || {
        leader_and_isr(&survivors, admin, &topic)
            .filter(|(new_leader, _)| *new_leader != leader && *new_leader > 0)
    });
    assert!([2, 3].contains(&new_leader), "{new_leader}");
    let consumed = console_consume(&survivors, &topic, client);
    let expected: Vec<String> = expected_values(&topic)
        .into_iter()
        .map(|value| value.as_str().expect("string").to_string())
        .collect();
    assert_eq!(
        consumed, expected,
        "the new leader has every record, in order"
    );
}

fn assert_no_password_logged(nodes: &[&Broker]) {
    for node in nodes {
        let log = node.stderr_all();
        for secret in [
            BROKER_PASSWORD,
            WRONG_PASSWORD,
            ADMIN_PASSWORD,
            APP_PASSWORD,
        ] {
            assert!(!log.contains(secret), "a password in a node's log");
        }
    }
}

#[test]
fn sasl_ssl_scram_only_nodes_replicate_as_user_broker() {
    let certs = Certs::generate();
    let plan = ClusterPlan::new(3);
    let mut cluster = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=3)
            .map(|id| {
                let mut args = plan.node_args(id);
                args.extend(sasl_ssl_node_args(
                    &certs,
                    plan.client_port(id),
                    BROKER_PASSWORD,
                ));
                scope.spawn(move || Broker::start_with(&as_strs(&args)))
            })
            .collect();
        Cluster::from_nodes(
            handles
                .into_iter()
                .map(|h| h.join().expect("node"))
                .collect(),
        )
    });
    let admin = sasl_ssl_properties(&certs, "admin", "PLAIN", "admin", ADMIN_PASSWORD);
    let bootstrap = bootstrap_of(&cluster, "SASL_SSL", &[1, 2, 3]);
    add_scram_user(&bootstrap, &admin, "broker", BROKER_PASSWORD);
    add_scram_user(&bootstrap, &admin, "app", APP_PASSWORD);
    tool(
        ACLS,
        &bootstrap,
        &admin,
        &[
            "--add",
            "--allow-principal",
            "User:app",
            "--operation",
            "All",
            "--topic",
            "*",
            "--group",
            "*",
        ],
    );
    let app = sasl_ssl_properties(&certs, "app", "SCRAM-SHA-512", "app", APP_PASSWORD);
    replicate_and_fail_over(&mut cluster, "SASL_SSL", &admin, &app);
    assert_no_password_logged(&[cluster.node(1), cluster.node(2), cluster.node(3)]);
    // Followers renewed their connections before the leader's sessions ran out: the leader
    // (node 1, killed) saw several `broker` logins and closed no expired session.
    let leader_log = cluster.node(1).stderr_all();
    let broker_logins = leader_log
        .lines()
        .filter(|line| line.contains("SASL authentication succeeded") && line.contains("broker"))
        .count();
    assert!(broker_logins >= 4, "{broker_logins} logins of User:broker");
    assert!(
        !leader_log.contains("SASL session expired"),
        "a node let its session expire"
    );
}

/// What a Raft listener under mutual TLS answers a well-formed plaintext Raft request (a
/// forwarded operation that changes nothing, which a plaintext listener answers): nothing,
/// or a TLS alert (record type 21), never a Raft frame.
fn assert_plaintext_raft_refused(cluster: &Cluster, target: i32) {
    let voters: BTreeMap<u64, String> = cluster
        .ids()
        .map(|id| (id as u64, cluster.raft_address(id).to_string()))
        .collect();
    let envelope = RpcEnvelope {
        cluster_fingerprint: cluster_fingerprint(&voters),
        target: target as u64,
        request: RpcRequest::Forward(Operation::FenceBroker {
            broker_id: BROKER_ID_UNKNOWN,
        }),
    };
    let address = cluster.raft_address(target);
    let frame = encode_frame(&envelope).expect("encode a frame");
    let mut stream = TcpStream::connect(address).expect("connect to the raft listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("read timeout");
    stream.write_all(&frame).expect("send");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => {}
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(error) => {
            panic!("the raft listener kept a plaintext connection open ({error}), after {answer:?}")
        }
    }
    assert!(
        answer.is_empty() || answer[0] == TLS_ALERT_RECORD,
        "a plaintext Raft request was answered: {answer:?}"
    );
}

#[test]
fn mtls_only_nodes_replicate_as_their_certificate_name_with_raft_over_mtls() {
    let certs = Certs::generate();
    let (certificate, key) = certs.node("broker");
    let ca = certs.ca();
    let args = [
        "--listeners",
        "SSL://127.0.0.1:0",
        "--ssl-certificate-file",
        path_str(&certificate),
        "--ssl-key-file",
        path_str(&key),
        // Clients must present a certificate; this CA is also the one nodes trust.
        "--ssl-client-ca-file",
        path_str(&ca),
        "--authorizer-class-name",
        STANDARD_AUTHORIZER,
        "--super-users",
        "User:broker;User:admin",
        "--default-replication-factor",
        "3",
        "--raft-tls",
    ];
    let mut cluster = Cluster::start_with(3, &args);
    for id in 1..=3 {
        assert_plaintext_raft_refused(&cluster, id);
    }
    let admin = mtls_properties(&certs, "admin");
    replicate_and_fail_over(&mut cluster, "SSL", &admin, &admin);
}

#[test]
fn a_node_with_a_wrong_inter_broker_password_cannot_replicate() {
    let certs = Certs::generate();
    let plan = ClusterPlan::new(3);
    let nodes: Vec<Broker> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=3)
            .map(|id| {
                let password = if id == 3 {
                    WRONG_PASSWORD
                } else {
                    BROKER_PASSWORD
                };
                let mut args = plan.node_args(id);
                args.extend(sasl_ssl_node_args(&certs, plan.client_port(id), password));
                scope.spawn(move || Broker::start_with(&as_strs(&args)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node"))
            .collect()
    });
    let cluster = Cluster::from_nodes(nodes);
    let admin = sasl_ssl_properties(&certs, "admin", "PLAIN", "admin", ADMIN_PASSWORD);
    let bootstrap = bootstrap_of(&cluster, "SASL_SSL", &[1, 2, 3]);
    add_scram_user(&bootstrap, &admin, "broker", BROKER_PASSWORD);
    let topic = topic_name("internode-wrong-password");
    create_topic(&bootstrap, &admin, &topic);
    // Records from the admin (a super user): acks=all succeeds once node 3 has left the ISR.
    java_round_trip(&bootstrap, &topic, &admin);
    let (leader, _) = wait_until(CLUSTER_DEADLINE, "node 3 out of the ISR", || {
        leader_and_isr(&bootstrap, &admin, &topic).filter(|(_, isr)| *isr == [1, 2])
    });
    assert_eq!(leader, 1);

    // Node 3 says why, once per peer and reason, not on every retry.
    let log = cluster.node(3).stderr_all();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("cannot connect to a peer node"))
        .collect();
    assert!(
        refusals
            .iter()
            .any(|line| line.contains("SASL authentication failed")),
        "{refusals:?}"
    );
    let leader_address = cluster.node(1).listener_address("SASL_SSL").to_string();
    let to_leader = refusals
        .iter()
        .filter(|line| {
            line.contains(&leader_address) && line.contains("SASL authentication failed")
        })
        .count();
    // Once per distinct reason, not once per retry (every 100 ms for many seconds by now).
    assert!(
        (1..=REASONS_LOGGED_MAX).contains(&to_leader),
        "{refusals:?}"
    );
    // The leader logged the failed logins with the user name.
    let leader_log = cluster.node(1).stderr_all();
    assert!(
        leader_log
            .lines()
            .any(|line| line.contains("SASL authentication failed") && line.contains("broker")),
        "the leader logs the refused login"
    );
    // Still out of the ISR after all that (node 3 keeps trying).
    assert_eq!(
        leader_and_isr(&bootstrap, &admin, &topic),
        Some((1, vec![1, 2]))
    );
    assert_no_password_logged(&[cluster.node(1), cluster.node(2), cluster.node(3)]);
}

#[test]
fn a_node_whose_certificate_names_another_principal_cannot_replicate() {
    let certs = Certs::generate();
    let broker = certs.node("broker");
    // Signed by the same CA, so TLS succeeds; but User:intruder has no ClusterAction.
    let intruder = certs.node("intruder");
    let ca = certs.ca();
    let plan = ClusterPlan::new(3);
    let nodes: Vec<Broker> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=3)
            .map(|id| {
                let (certificate, key) = if id == 3 { &intruder } else { &broker };
                let mut args = plan.node_args(id);
                args.extend(
                    [
                        "--listeners",
                        &format!("SSL://127.0.0.1:{}", plan.client_port(id)),
                        "--ssl-certificate-file",
                        path_str(certificate),
                        "--ssl-key-file",
                        path_str(key),
                        "--ssl-client-ca-file",
                        path_str(&ca),
                        "--authorizer-class-name",
                        STANDARD_AUTHORIZER,
                        "--super-users",
                        "User:broker;User:admin",
                    ]
                    .map(str::to_string),
                );
                scope.spawn(move || Broker::start_with(&as_strs(&args)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("node"))
            .collect()
    });
    let cluster = Cluster::from_nodes(nodes);
    let admin = mtls_properties(&certs, "admin");
    let bootstrap = bootstrap_of(&cluster, "SSL", &[1, 2, 3]);
    let topic = topic_name("internode-intruder");
    create_topic(&bootstrap, &admin, &topic);
    java_round_trip(&bootstrap, &topic, &admin);
    let (leader, _) = wait_until(CLUSTER_DEADLINE, "node 3 out of the ISR", || {
        leader_and_isr(&bootstrap, &admin, &topic).filter(|(_, isr)| *isr == [1, 2])
    });
    assert_eq!(leader, 1);
    // Node 3 says why, once per peer and reason.
    let leader_address = cluster.node(1).listener_address("SSL").to_string();
    let log = cluster.node(3).stderr_all();
    let refusals = log
        .lines()
        .filter(|line| line.contains("a peer node refuses this node's requests"))
        .filter(|line| line.contains(&leader_address))
        .count();
    assert!(
        (1..=REASONS_LOGGED_MAX).contains(&refusals),
        "{refusals} refusals logged"
    );
    assert_eq!(
        leader_and_isr(&bootstrap, &admin, &topic),
        Some((1, vec![1, 2]))
    );
}
