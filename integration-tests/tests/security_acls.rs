//! ACL authorisation with real clients: Kafka's kafka-acls tool (over SASL_SSL/SCRAM as the
//! super user `admin`) grants, denies and revokes; the Java client as other principals gets
//! TOPIC_AUTHORIZATION_FAILED and no records without READ, does not see a topic without
//! DESCRIBE, loses READ to a DENY, and gets GROUP_AUTHORIZATION_FAILED without READ on its
//! group; raw requests show a revoked principal refused on its next request on the same
//! connection, ACL APIs refused to non-admins, and confluent-kafka refused a write; a 3-node
//! cluster whose nodes replicate as the PLAINTEXT super user keeps its ISR full; a Java
//! transactional producer needs WRITE on its transactional id. Raw requests check Kafka's
//! per-resource rules: AddPartitionsToTxn refuses only the topics it may not write (v0-3) or
//! needs CLUSTER_ACTION (v4+), OffsetDelete needs DELETE on the group then READ per topic,
//! and config resources, cluster authorised operations, CreateTopics configs, DeleteTopics,
//! ElectLeaders, DescribeTransactions and WriteTxnMarkers are checked as Kafka checks them.

use std::path::PathBuf;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, CreateAclsRequest, CreateTopicsRequest, DeleteAclsRequest,
    DeleteTopicsRequest, DescribeAclsRequest, DescribeClusterRequest, DescribeConfigsRequest,
    ElectLeadersRequest, FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, ProducerId, SaslAuthenticateRequest, SaslHandshakeRequest, TopicName,
    TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{json, Value};
use sluice_integration_tests::certs::Certs;
use sluice_integration_tests::cluster::{Cluster, CLUSTER_DEADLINE};
use sluice_integration_tests::kafka_cli::{kafka_tool_ok, CONFIGS};
use sluice_integration_tests::raw_client::{record_batch, RawClient, TestRecord};
use sluice_integration_tests::transactions::{
    add_partitions, describe, find_coordinator, init_at_coordinator, TIMEOUT_MS,
};
use sluice_integration_tests::{run_java, run_python, topic_name, wait_until, Broker};

/// `kafka-acls.sh`.
const ACLS: &str = "org.apache.kafka.tools.AclCommand";
const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
const USERS: &str = "admin:admin-secret\nalice:alice-secret\nbob:bob-secret\n";
const RECORD_COUNT: usize = 5;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

/// ACL codes (Kafka's ResourceType, PatternType, AclOperation, AclPermissionType).
const TOPIC: i8 = 2;
const LITERAL: i8 = 3;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;
const ANY: i8 = 1;

/// An authorising broker with PLAINTEXT, SASL_SSL and SASL_PLAINTEXT listeners; `admin` is
/// the super user, every user can log in with PLAIN.
fn acl_broker(certs: &Certs) -> Broker {
    let listeners = certs.sasl_listener_args(USERS);
    let mut args: Vec<&str> = listeners.iter().map(String::as_str).collect();
    args.extend([
        "--authorizer-class-name",
        STANDARD_AUTHORIZER,
        "--super-users",
        "User:admin",
    ]);
    Broker::start_with(&args)
}

/// Java client properties for `user` over SASL_SSL, written to a file.
fn client_properties(certs: &Certs, user: &str, mechanism: &str) -> PathBuf {
    let module = if mechanism == "PLAIN" {
        "plain.PlainLoginModule"
    } else {
        "scram.ScramLoginModule"
    };
    let ca = certs.ca();
    let properties = format!(
        "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
         sasl.mechanism={mechanism}\n\
         sasl.jaas.config=org.apache.kafka.common.security.{module} required \
         username=\"{user}\" password=\"{user}-secret\";\n",
        ca.display()
    );
    let file = certs.dir().join(format!("{user}-{mechanism}.properties"));
    std::fs::write(&file, properties).expect("write client properties");
    file
}

/// Runs kafka-acls as `admin` with `args`; returns stdout.
fn kafka_acls(bootstrap: &str, admin: &std::path::Path, args: &[&str]) -> String {
    let admin = admin.to_str().expect("utf-8 path");
    let base = ["--bootstrap-server", bootstrap, "--command-config", admin];
    kafka_tool_ok(ACLS, &[&base[..], args].concat())
}

/// One AclProbe action; returns its JSON summary.
fn probe(bootstrap: &str, properties: &std::path::Path, action: &[&str]) -> Value {
    let properties = properties.to_str().expect("utf-8 path");
    let output = run_java("AclProbe", &[&[bootstrap, properties][..], action].concat());
    serde_json::from_str(output.trim()).unwrap_or_else(|error| panic!("{error}: {output}"))
}

fn values(topic: &str) -> Value {
    json!((0..RECORD_COUNT)
        .map(|index| format!("{topic}-acl-{index}"))
        .collect::<Vec<_>>())
}

#[test]
fn kafka_acls_grants_denies_and_revokes_for_java_clients() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    // The super user logs in with PLAIN to give itself a SCRAM credential, then uses SCRAM.
    let admin_plain = client_properties(&certs, "admin", "PLAIN");
    let added = kafka_tool_ok(
        CONFIGS,
        &[
            "--bootstrap-server",
            &bootstrap,
            "--command-config",
            admin_plain.to_str().expect("utf-8 path"),
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=admin-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "admin",
        ],
    );
    assert_eq!(added.trim(), "Completed updating config for user admin.");
    let admin = client_properties(&certs, "admin", "SCRAM-SHA-512");
    let alice = client_properties(&certs, "alice", "PLAIN");
    let bob = client_properties(&certs, "bob", "PLAIN");
    let topic = topic_name("acl-orders");
    let group = format!("{topic}-group");
    let count = RECORD_COUNT.to_string();

    // The super user creates the topic (auto-creation) and writes it.
    let produced = probe(&bootstrap, &admin, &["produce", &topic, &count]);
    assert_eq!(produced, json!({"values": values(&topic), "error": null}));

    // Nothing granted: alice neither sees nor reads the topic.
    let listed = probe(&bootstrap, &alice, &["list-topics", "-", "0"]);
    assert_eq!(listed, json!({"topics": []}));
    let read = probe(&bootstrap, &alice, &["read", &topic, &count]);
    assert_eq!(
        read,
        json!({"values": [], "error": "TopicAuthorizationException"})
    );

    // DESCRIBE only: alice sees the topic (bob still does not) but reads nothing.
    let topic_args = ["--topic", topic.as_str()];
    let describe = [
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Describe",
        ][..],
        &topic_args[..],
    ]
    .concat();
    kafka_acls(&bootstrap, &admin, &describe);
    let listed = probe(&bootstrap, &alice, &["list-topics", "-", "0"]);
    assert_eq!(listed, json!({"topics": [topic]}));
    let listed = probe(&bootstrap, &bob, &["list-topics", "-", "0"]);
    assert_eq!(listed, json!({"topics": []}));
    let read = probe(&bootstrap, &alice, &["read", &topic, &count]);
    assert_eq!(
        read,
        json!({"values": [], "error": "TopicAuthorizationException"})
    );

    // READ on the topic but not on the group: GROUP_AUTHORIZATION_FAILED.
    let read_topic = [
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
        ][..],
        &topic_args[..],
    ]
    .concat();
    kafka_acls(&bootstrap, &admin, &read_topic);
    let grouped = probe(&bootstrap, &alice, &["group-read", &topic, &count, &group]);
    assert_eq!(
        grouped,
        json!({"values": [], "error": "GroupAuthorizationException"})
    );
    // READ on both (the group by prefix): every record back, in a group and without one.
    kafka_acls(
        &bootstrap,
        &admin,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--group",
            &topic,
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    let grouped = probe(&bootstrap, &alice, &["group-read", &topic, &count, &group]);
    assert_eq!(grouped, json!({"values": values(&topic), "error": null}));
    let read = probe(&bootstrap, &alice, &["read", &topic, &count]);
    assert_eq!(read, json!({"values": values(&topic), "error": null}));

    // WRITE on the topic: alice's (idempotent) Java producer gets a producer id (WRITE on a
    // topic stands for IDEMPOTENT_WRITE) and writes.
    let write = [
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
        ][..],
        &topic_args[..],
    ]
    .concat();
    kafka_acls(&bootstrap, &admin, &write);
    let produced = probe(&bootstrap, &alice, &["produce", &topic, &count]);
    assert_eq!(produced, json!({"values": values(&topic), "error": null}));

    // A DENY beats the ALLOW.
    let deny = [
        &["--deny-principal", "User:alice", "--operation", "Read"][..],
        &topic_args[..],
    ]
    .concat();
    kafka_acls(&bootstrap, &admin, &[&["--add"][..], &deny].concat());
    let read = probe(&bootstrap, &alice, &["read", &topic, &count]);
    assert_eq!(
        read,
        json!({"values": [], "error": "TopicAuthorizationException"})
    );
    let listed = kafka_acls(&bootstrap, &admin, &[&["--list"][..], &topic_args].concat());
    let mut lines: Vec<&str> = listed
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('('))
        .collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        [
            "(principal=User:alice, host=*, operation=DESCRIBE, permissionType=ALLOW)",
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW)",
            "(principal=User:alice, host=*, operation=READ, permissionType=DENY)",
            "(principal=User:alice, host=*, operation=WRITE, permissionType=ALLOW)",
        ],
        "{listed}"
    );
    assert!(
        listed.contains(&format!(
            "Current ACLs for resource `ResourcePattern(resourceType=TOPIC, name={topic}, patternType=LITERAL)`:"
        )),
        "{listed}"
    );

    // Revoking the DENY restores READ.
    kafka_acls(
        &bootstrap,
        &admin,
        &[&["--remove", "--force"][..], &deny].concat(),
    );
    // Both rounds of records: the super user's and alice's.
    let both = (2 * RECORD_COUNT).to_string();
    let read = probe(&bootstrap, &alice, &["read", &topic, &both]);
    let mut written = values(&topic).as_array().expect("list").clone();
    written.extend(written.clone());
    assert_eq!(read, json!({"values": written, "error": null}));
    // Removing every ACL of the topic: alice no longer sees it.
    kafka_acls(
        &bootstrap,
        &admin,
        &[&["--remove", "--force"][..], &topic_args].concat(),
    );
    let listed = probe(&bootstrap, &alice, &["list-topics", "-", "0"]);
    assert_eq!(listed, json!({"topics": []}));
}

/// A raw client logged in with SASL/PLAIN on a SASL_PLAINTEXT listener.
fn login(address: &str, user: &str) -> RawClient {
    let mut client = RawClient::connect(address);
    let mut handshake = SaslHandshakeRequest::default();
    handshake.mechanism = StrBytes::from_static_str("PLAIN");
    assert_eq!(client.request(1, &handshake).error_code, 0);
    let mut authenticate = SaslAuthenticateRequest::default();
    authenticate.auth_bytes = Bytes::from(format!("\0{user}\0{user}-secret"));
    let answer = client.request(2, &authenticate);
    assert_eq!(answer.error_code, 0, "{:?}", answer.error_message);
    client
}

fn metadata(client: &mut RawClient, topic: Option<&str>, create: bool) -> MetadataResponse {
    let mut request = MetadataRequest::default();
    request.topics = topic.map(|name| {
        vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))]
    });
    request.allow_auto_topic_creation = create;
    client.request(12, &request)
}

fn topic_names(response: &MetadataResponse) -> Vec<String> {
    response
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect()
}

fn describe_grant(topic: &str, principal: &str) -> AclCreation {
    AclCreation::default()
        .with_resource_type(TOPIC)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_resource_pattern_type(LITERAL)
        .with_principal(StrBytes::from_string(principal.to_string()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(DESCRIBE)
        .with_permission_type(ALLOW)
}

fn any_filter() -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(ANY)
        .with_operation(ANY)
        .with_permission_type(ANY)
}

#[test]
fn revoked_principal_is_refused_on_its_next_request() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let topic = topic_name("acl-revoke");
    let mut admin = login(&address, "admin");
    let created = metadata(&mut admin, Some(&topic), true);
    assert_eq!(created.topics[0].error_code, 0);

    // ACL APIs need ALTER / DESCRIBE on the cluster.
    let mut bob = login(&address, "bob");
    let grant =
        CreateAclsRequest::default().with_creations(vec![describe_grant(&topic, "User:bob")]);
    let refused = bob.request(3, &grant);
    assert_eq!(refused.results[0].error_code, CLUSTER_AUTHORIZATION_FAILED);
    assert_eq!(
        bob.request(3, &any_filter()).error_code,
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(
        metadata(&mut bob, Some(&topic), false).topics[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );

    let granted = admin.request(3, &grant);
    assert_eq!(granted.results[0].error_code, 0);
    let described = admin.request(3, &any_filter());
    assert_eq!(described.error_code, 0);
    assert_eq!(described.resources.len(), 1);
    assert_eq!(described.resources[0].resource_name.as_str(), topic);
    assert_eq!(described.resources[0].acls.len(), 1);
    assert_eq!(
        described.resources[0].acls[0].principal.as_str(),
        "User:bob"
    );
    assert_eq!(
        metadata(&mut bob, Some(&topic), false).topics[0].error_code,
        0
    );
    // Authorised operations come from the ACLs: DESCRIBE only for bob, everything for admin.
    let mut asking = MetadataRequest::default();
    asking.topics = Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.clone()))))]);
    asking.include_topic_authorized_operations = true;
    let operations =
        |client: &mut RawClient| client.request(12, &asking).topics[0].topic_authorized_operations;
    assert_eq!(operations(&mut bob), 1 << DESCRIBE);
    let topic_operations_all = [3, 4, 5, 6, 7, 8, 10, 11]
        .iter()
        .fold(0, |bits, op| bits | (1 << op));
    assert_eq!(operations(&mut admin), topic_operations_all);
    let cluster =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    assert_eq!(bob.request(1, &cluster).cluster_authorized_operations, 0);
    assert_eq!(
        topic_names(&metadata(&mut bob, None, false)),
        std::slice::from_ref(&topic)
    );

    // Revoked while bob's connection stays open: his very next request is refused.
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(ANY)
        .with_resource_name_filter(None)
        .with_host_filter(None)
        .with_pattern_type_filter(ANY)
        .with_principal_filter(Some(StrBytes::from_static_str("User:bob")))
        .with_operation(ANY)
        .with_permission_type(ANY);
    let deleted = admin.request(3, &DeleteAclsRequest::default().with_filters(vec![filter]));
    assert_eq!(deleted.filter_results[0].error_code, 0);
    assert_eq!(deleted.filter_results[0].matching_acls.len(), 1);
    assert_eq!(
        metadata(&mut bob, Some(&topic), false).topics[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );
    assert!(topic_names(&metadata(&mut bob, None, false)).is_empty());
    assert!(admin.request(3, &any_filter()).resources.is_empty());

    // Anonymous PLAINTEXT clients are not super users either.
    let mut anonymous = RawClient::connect(&broker.bootstrap());
    assert_eq!(
        metadata(&mut anonymous, Some(&topic), false).topics[0].error_code,
        TOPIC_AUTHORIZATION_FAILED
    );

    // librdkafka: a write without WRITE fails delivery with TOPIC_AUTHORIZATION_FAILED.
    let settings = json!({
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "bob",
        "sasl.password": "bob-secret",
        "ssl.ca.location": certs.ca().to_str().expect("utf-8 path"),
    });
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let output = run_python(
        "acl_clients.py",
        &["produce", &bootstrap, &topic, "3", &settings.to_string()],
    );
    let output: Value = serde_json::from_str(output.trim()).expect("JSON summary");
    assert_eq!(
        output,
        json!({"values": [], "error": "TOPIC_AUTHORIZATION_FAILED"})
    );
}

/// `(leader, isr)` of partition 0 of `topic` as `node` sees it, once it has a leader.
fn partition_state(node: &Broker, topic: &str) -> Option<(i32, Vec<i32>)> {
    let mut client = RawClient::try_connect(&node.bootstrap()).ok()?;
    let mut request = MetadataRequest::default();
    request.topics = Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.to_string()))))]);
    let response = client.try_request(12, &request).ok()?;
    let partition = response.topics.first()?.partitions.first()?;
    let isr = partition.isr_nodes.iter().map(|id| id.0).collect();
    (partition.leader_id.0 > 0).then_some((partition.leader_id.0, isr))
}

#[test]
fn nodes_replicate_as_a_super_user_with_the_authoriser_on() {
    let cluster = Cluster::start_with(
        3,
        &[
            "--authorizer-class-name",
            STANDARD_AUTHORIZER,
            "--super-users",
            "User:ANONYMOUS",
        ],
    );
    let topic = topic_name("acl-replicated");
    wait_until(CLUSTER_DEADLINE, "3 brokers", || {
        let mut client = RawClient::try_connect(&cluster.node(1).bootstrap()).ok()?;
        let response = client.try_request(12, &MetadataRequest::default()).ok()?;
        (response.brokers.len() == 3).then_some(())
    });
    let config = CreatableTopicConfig::default()
        .with_name(StrBytes::from_static_str("min.insync.replicas"))
        .with_value(Some(StrBytes::from_static_str("3")));
    let creatable = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.clone())))
        .with_num_partitions(1)
        .with_replication_factor(3)
        .with_configs(vec![config]);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![creatable])
        .with_timeout_ms(30_000);
    let created = RawClient::connect(&cluster.node(1).bootstrap()).request(7, &request);
    assert_eq!(created.topics[0].error_code, 0, "{created:?}");
    let (leader, _) = wait_until(CLUSTER_DEADLINE, "the full ISR at the leader", || {
        let (leader, _) = partition_state(cluster.node(1), &topic)?;
        partition_state(cluster.node(leader), &topic).filter(|(_, isr)| isr.len() == 3)
    });
    // acks=all with min.insync.replicas = 3: answered only once both followers' (authorised)
    // replica fetches carried the records.
    let mut client = RawClient::connect(&cluster.node(leader).bootstrap());
    for (index, value) in ["first", "second"].into_iter().enumerate() {
        let records = record_batch(&[TestRecord::new(b"k", value.as_bytes())]);
        let answer = client
            .produce(&topic, 0, -1, records)
            .expect("acks=all answers");
        assert_eq!((answer.error_code, answer.base_offset), (0, index as i64));
    }
    let (_, isr) = partition_state(cluster.node(leader), &topic).expect("metadata");
    assert_eq!(isr.len(), 3, "a follower fell out of the ISR: {isr:?}");
}

#[test]
fn a_transactional_producer_needs_write_on_its_transactional_id() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let bootstrap = broker.listener_address("SASL_SSL").to_string();
    let admin = client_properties(&certs, "admin", "PLAIN");
    let alice = client_properties(&certs, "alice", "PLAIN");
    let topic = topic_name("acl-txn");
    let count = RECORD_COUNT.to_string();
    let transactional_id = format!("{topic}-tx");
    let produced = probe(&bootstrap, &admin, &["produce", &topic, &count]);
    assert_eq!(produced, json!({"values": values(&topic), "error": null}));
    kafka_acls(
        &bootstrap,
        &admin,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--topic",
            &topic,
        ],
    );
    let txn = [
        "txn-produce",
        topic.as_str(),
        count.as_str(),
        &transactional_id,
    ];
    let refused = probe(&bootstrap, &alice, &txn);
    assert_eq!(
        refused,
        json!({"values": [], "error": "TransactionalIdAuthorizationException"})
    );
    kafka_acls(
        &bootstrap,
        &admin,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
            "--transactional-id",
            &transactional_id,
        ],
    );
    let committed = probe(&bootstrap, &alice, &txn);
    assert_eq!(committed, json!({"values": values(&topic), "error": null}));
}

/// ACL codes beyond the ones above: resource types, operations.
const GROUP: i8 = 3;
const CLUSTER: i8 = 4;
const TRANSACTIONAL_ID: i8 = 5;
const READ: i8 = 3;
const WRITE: i8 = 4;
const DELETE: i8 = 6;
const CLUSTER_ACTION: i8 = 9;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const INVALID_TXN_STATE: i16 = 48;

/// An ALLOW entry for `principal` from any host, created by `admin`.
fn grant(admin: &mut RawClient, resource_type: i8, name: &str, principal: &str, operation: i8) {
    let creation = AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()))
        .with_resource_pattern_type(LITERAL)
        .with_principal(StrBytes::from_string(principal.to_string()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(ALLOW);
    let created = admin.request(
        3,
        &CreateAclsRequest::default().with_creations(vec![creation]),
    );
    assert_eq!(created.results[0].error_code, 0, "{created:?}");
}

/// AddPartitionsToTxn v4 `verify_only` for one transaction: (top-level error, per-partition
/// errors in request order).
fn verify_v4(
    client: &mut RawClient,
    id: &str,
    producer: (i64, i16),
    partitions: &[(&str, i32)],
) -> (i16, Vec<i16>) {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    let mut transaction = AddPartitionsToTxnTransaction::default();
    transaction.transactional_id = TransactionalId(StrBytes::from_string(id.to_string()));
    transaction.producer_id = ProducerId(producer.0);
    transaction.producer_epoch = producer.1;
    transaction.verify_only = true;
    for (topic, partition) in partitions {
        let mut entry = AddPartitionsToTxnTopic::default();
        entry.name = TopicName(StrBytes::from_string(topic.to_string()));
        entry.partitions = vec![*partition];
        transaction.topics.push(entry);
    }
    let mut request = AddPartitionsToTxnRequest::default();
    request.transactions = vec![transaction];
    let response = client.request(4, &request);
    let codes = response
        .results_by_transaction
        .iter()
        .flat_map(|result| &result.topic_results)
        .flat_map(|topic| &topic.results_by_partition)
        .map(|partition| partition.partition_error_code)
        .collect();
    (response.error_code, codes)
}

#[test]
fn add_partitions_to_txn_refuses_only_the_topics_it_may_not_write() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let mut admin = login(&address, "admin");
    let writable = topic_name("apt-writable");
    let other = topic_name("apt-other");
    for topic in [&writable, &other] {
        assert_eq!(admin.create_topic(topic, 2, &[]), 0);
    }
    let id = format!("{writable}-tx");
    grant(&mut admin, TRANSACTIONAL_ID, &id, "User:alice", WRITE);
    grant(&mut admin, TOPIC, &writable, "User:alice", WRITE);
    let mut alice = login(&address, "alice");
    find_coordinator(&mut alice, &id);
    let (error, producer_id, epoch) = init_at_coordinator(&mut alice, &id, TIMEOUT_MS);
    assert_eq!(error, 0);
    let producer = (producer_id, epoch);

    // v3 (clients): the refused topic and internal topics TOPIC_AUTHORIZATION_FAILED, the
    // rest OPERATION_NOT_ATTEMPTED; an unknown topic UNKNOWN_TOPIC_OR_PARTITION.
    let refused = add_partitions(
        &mut alice,
        &id,
        producer,
        &[
            (&writable, 0),
            (&writable, 1),
            (&other, 0),
            ("__consumer_offsets", 0),
        ],
    );
    let expected = [
        OPERATION_NOT_ATTEMPTED,
        OPERATION_NOT_ATTEMPTED,
        TOPIC_AUTHORIZATION_FAILED,
        TOPIC_AUTHORIZATION_FAILED,
    ];
    assert_eq!(refused, expected);
    let missing = topic_name("apt-missing");
    grant(&mut admin, TOPIC, &missing, "User:alice", WRITE);
    let unknown = add_partitions(&mut alice, &id, producer, &[(&writable, 0), (&missing, 0)]);
    assert_eq!(
        unknown,
        [OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    let added = add_partitions(&mut alice, &id, producer, &[(&writable, 0), (&writable, 1)]);
    assert_eq!(added, [0, 0]);

    // v4+ (nodes): CLUSTER_ACTION on the cluster, refused as a whole without it; with it no
    // transactional id or topic checks (bob may write neither).
    let wanted = [(writable.as_str(), 0), (other.as_str(), 0)];
    let (top, codes) = verify_v4(&mut alice, &id, producer, &wanted);
    assert_eq!((top, codes), (CLUSTER_AUTHORIZATION_FAILED, vec![]));
    grant(
        &mut admin,
        CLUSTER,
        "kafka-cluster",
        "User:bob",
        CLUSTER_ACTION,
    );
    let mut bob = login(&address, "bob");
    let (top, codes) = verify_v4(&mut bob, &id, producer, &wanted);
    assert_eq!((top, codes), (0, vec![0, INVALID_TXN_STATE]));
}

/// OffsetCommit v8 of `offset` for each partition, as a simple (group-less) consumer.
fn commit(client: &mut RawClient, group: &str, partitions: &[(&str, i32)], offset: i64) {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    request.generation_id_or_member_epoch = -1;
    for (topic, partition) in partitions {
        let mut entry = OffsetCommitRequestTopic::default();
        entry.name = TopicName(StrBytes::from_string(topic.to_string()));
        let mut wanted = OffsetCommitRequestPartition::default();
        wanted.partition_index = *partition;
        wanted.committed_offset = offset;
        entry.partitions.push(wanted);
        request.topics.push(entry);
    }
    let response = client.request(8, &request);
    for topic in &response.topics {
        for partition in &topic.partitions {
            assert_eq!(partition.error_code, 0, "{response:?}");
        }
    }
}

/// OffsetDelete of `partitions`: (group error, per-partition errors in request order).
fn offset_delete(
    client: &mut RawClient,
    group: &str,
    partitions: &[(&str, i32)],
) -> (i16, Vec<i16>) {
    use kafka_protocol::messages::offset_delete_request::{
        OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
    };
    let mut request = OffsetDeleteRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    for (topic, partition) in partitions {
        let mut entry = OffsetDeleteRequestTopic::default();
        entry.name = TopicName(StrBytes::from_string(topic.to_string()));
        let mut wanted = OffsetDeleteRequestPartition::default();
        wanted.partition_index = *partition;
        entry.partitions.push(wanted);
        request.topics.push(entry);
    }
    let response = client.request(0, &request);
    let codes = response
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .map(|partition| partition.error_code)
        .collect();
    (response.error_code, codes)
}

/// The committed offset of each partition (-1: none), OffsetFetch v7.
fn committed(client: &mut RawClient, group: &str, partitions: &[(&str, i32)]) -> Vec<i64> {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let mut request = OffsetFetchRequest::default();
    request.group_id = GroupId(StrBytes::from_string(group.to_string()));
    let topics = partitions
        .iter()
        .map(|(topic, partition)| {
            let mut entry = OffsetFetchRequestTopic::default();
            entry.name = TopicName(StrBytes::from_string(topic.to_string()));
            entry.partition_indexes = vec![*partition];
            entry
        })
        .collect();
    request.topics = Some(topics);
    let response = client.request(7, &request);
    assert_eq!(response.error_code, 0, "{response:?}");
    response
        .topics
        .iter()
        .flat_map(|topic| &topic.partitions)
        .map(|partition| partition.committed_offset)
        .collect()
}

#[test]
fn offset_delete_needs_group_delete_then_read_on_each_topic() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let mut admin = login(&address, "admin");
    let readable = topic_name("od-readable");
    let other = topic_name("od-other");
    for topic in [&readable, &other] {
        assert_eq!(admin.create_topic(topic, 1, &[]), 0);
    }
    let group = format!("{readable}-group");
    find_group_coordinator(&mut admin, &group);
    let partitions = [(readable.as_str(), 0), (other.as_str(), 0)];
    commit(&mut admin, &group, &partitions, 7);
    assert_eq!(committed(&mut admin, &group, &partitions), [7, 7]);

    let mut alice = login(&address, "alice");
    grant(&mut admin, TOPIC, &readable, "User:alice", READ);
    let (error, codes) = offset_delete(&mut alice, &group, &partitions);
    assert_eq!((error, codes), (GROUP_AUTHORIZATION_FAILED, vec![]));
    grant(&mut admin, GROUP, &group, "User:alice", DELETE);
    let (error, codes) = offset_delete(&mut alice, &group, &partitions);
    assert_eq!((error, codes), (0, vec![0, TOPIC_AUTHORIZATION_FAILED]));
    assert_eq!(committed(&mut admin, &group, &partitions), [-1, 7]);
}

/// FindCoordinator for a group until it names a node (creating the offsets topic).
fn find_group_coordinator(client: &mut RawClient, group: &str) {
    wait_until(CLUSTER_DEADLINE, "a group coordinator", || {
        let request = FindCoordinatorRequest::default()
            .with_key(StrBytes::from_string(group.to_string()))
            .with_key_type(0);
        (client.request(3, &request).error_code == 0).then_some(())
    });
}

const CREATE: i8 = 5;
const ALTER: i8 = 7;
const DESCRIBE_CONFIGS: i8 = 10;
const INVALID_REQUEST: i16 = 42;
/// ConfigResource types.
const CONFIG_BROKER_LOGGER: i8 = 8;
const CONFIG_GROUP: i8 = 32;

/// DescribeConfigs v4 of one config resource: its error code.
fn describe_config_error(client: &mut RawClient, resource_type: i8, name: &str) -> i16 {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    let resource = DescribeConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()));
    let request = DescribeConfigsRequest::default().with_resources(vec![resource]);
    client.request(4, &request).results[0].error_code
}

/// IncrementalAlterConfigs v1 of one config resource (no changes): its error code.
fn alter_config_error(client: &mut RawClient, resource_type: i8, name: &str) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
    let resource = AlterConfigsResource::default()
        .with_resource_type(resource_type)
        .with_resource_name(StrBytes::from_string(name.to_string()));
    let request = IncrementalAlterConfigsRequest::default()
        .with_resources(vec![resource])
        .with_validate_only(true);
    client.request(1, &request).responses[0].error_code
}

/// Metadata v10 and DescribeCluster v1 asking for the cluster's authorised operations.
fn cluster_operations(client: &mut RawClient) -> (i32, i32) {
    let mut metadata = MetadataRequest::default();
    metadata.topics = Some(vec![]);
    metadata.include_cluster_authorized_operations = true;
    let from_metadata = client.request(10, &metadata).cluster_authorized_operations;
    let cluster =
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
    let from_cluster = client.request(1, &cluster).cluster_authorized_operations;
    (from_metadata, from_cluster)
}

/// CreateTopics v7 of one 3-partition topic: (error, topic config error, partitions,
/// replication factor, config count).
fn create_topic_v7(client: &mut RawClient, name: &str) -> (i16, i16, i32, i16, usize) {
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_string(name.to_string()));
    topic.num_partitions = 3;
    topic.replication_factor = 1;
    let mut request = CreateTopicsRequest::default();
    request.topics.push(topic);
    request.timeout_ms = 30_000;
    let response = client.request(7, &request);
    let result = &response.topics[0];
    (
        result.error_code,
        result.topic_config_error_code,
        result.num_partitions,
        result.replication_factor,
        result.configs.as_ref().map_or(0, Vec::len),
    )
}

/// DeleteTopics v6 of one topic by id: (error, name in the answer).
fn delete_by_id(client: &mut RawClient, by_id: &DeleteTopicState) -> (i16, Option<String>) {
    let request = DeleteTopicsRequest::default()
        .with_topics(vec![by_id.clone()])
        .with_timeout_ms(30_000);
    let response = client.request(6, &request);
    let result = &response.responses[0];
    (
        result.error_code,
        result.name.as_ref().map(|n| n.0.to_string()),
    )
}

/// The DeleteTopics entry naming `name` by its id only.
fn by_id(client: &mut RawClient, name: &str) -> DeleteTopicState {
    let id = metadata(client, Some(name), false).topics[0].topic_id;
    DeleteTopicState::default().with_topic_id(id)
}

#[test]
fn admin_apis_authorise_per_resource_as_kafka() {
    let certs = Certs::generate();
    let broker = acl_broker(&certs);
    let address = broker.listener_address("SASL_PLAINTEXT").to_string();
    let mut admin = login(&address, "admin");
    let mut bob = login(&address, "bob");
    let base = topic_name("apis");

    // Config resources: a group is checked on the group, a broker logger on the cluster.
    let group = format!("{base}-group");
    assert_eq!(
        describe_config_error(&mut bob, CONFIG_GROUP, &group),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(
        alter_config_error(&mut bob, CONFIG_GROUP, &group),
        GROUP_AUTHORIZATION_FAILED
    );
    assert_eq!(
        describe_config_error(&mut bob, CONFIG_BROKER_LOGGER, "1"),
        CLUSTER_AUTHORIZATION_FAILED
    );
    assert_eq!(describe_config_error(&mut bob, 99, "x"), INVALID_REQUEST);

    // Cluster authorised operations: none without DESCRIBE on the cluster.
    grant(&mut admin, CLUSTER, "kafka-cluster", "User:bob", CREATE);
    assert_eq!(cluster_operations(&mut bob), (0, 0));
    grant(&mut admin, CLUSTER, "kafka-cluster", "User:bob", DESCRIBE);
    let allowed = (1 << CREATE) | (1 << DESCRIBE);
    assert_eq!(cluster_operations(&mut bob), (allowed, allowed));

    // CreateTopics: configs, partitions and replication factor only with DESCRIBE_CONFIGS.
    let hidden = format!("{base}-hidden");
    assert_eq!(
        create_topic_v7(&mut bob, &hidden),
        (0, TOPIC_AUTHORIZATION_FAILED, -1, -1, 0)
    );
    let shown = format!("{base}-shown");
    grant(&mut admin, TOPIC, &shown, "User:bob", DESCRIBE_CONFIGS);
    let (error, config_error, partitions, replication, configs) = create_topic_v7(&mut bob, &shown);
    assert_eq!((error, config_error, partitions, replication), (0, 0, 3, 1));
    assert!(configs > 0, "no configs returned");

    // DeleteTopics by id: the name only to a principal that may DESCRIBE it; DELETE on the
    // cluster deletes any topic.
    let hidden_id = by_id(&mut admin, &hidden);
    assert_eq!(
        delete_by_id(&mut bob, &hidden_id),
        (TOPIC_AUTHORIZATION_FAILED, None)
    );
    grant(&mut admin, TOPIC, &hidden, "User:bob", DESCRIBE);
    assert_eq!(
        delete_by_id(&mut bob, &hidden_id),
        (TOPIC_AUTHORIZATION_FAILED, Some(hidden.clone()))
    );
    let missing = format!("{base}-missing");
    let by_name = |name: &str| {
        DeleteTopicsRequest::default()
            .with_topic_names(vec![TopicName(StrBytes::from_string(name.to_string()))])
            .with_timeout_ms(30_000)
    };
    let code = |client: &mut RawClient, name: &str| {
        client.request(5, &by_name(name)).responses[0].error_code
    };
    assert_eq!(code(&mut bob, &missing), TOPIC_AUTHORIZATION_FAILED);
    grant(&mut admin, TOPIC, &missing, "User:bob", DESCRIBE);
    assert_eq!(code(&mut bob, &missing), UNKNOWN_TOPIC_OR_PARTITION);
    grant(&mut admin, CLUSTER, "kafka-cluster", "User:alice", DELETE);
    let mut alice = login(&address, "alice");
    assert_eq!(
        delete_by_id(&mut alice, &hidden_id),
        (0, Some(hidden.clone()))
    );

    // ElectLeaders v0 (no top-level error): every partition asked for is refused.
    let mut elect = ElectLeadersRequest::default();
    elect.topic_partitions = Some(vec![TopicPartitions::default()
        .with_topic(TopicName(StrBytes::from_string(shown.clone())))
        .with_partitions(vec![0, 1])]);
    elect.timeout_ms = 30_000;
    let refused = bob.request(0, &elect);
    let codes: Vec<i16> = refused
        .replica_election_results
        .iter()
        .flat_map(|topic| &topic.partition_result)
        .map(|partition| partition.error_code)
        .collect();
    assert_eq!(
        codes,
        [CLUSTER_AUTHORIZATION_FAILED, CLUSTER_AUTHORIZATION_FAILED]
    );

    // DescribeTransactions: only the partitions of topics the principal may DESCRIBE.
    let id = format!("{base}-tx");
    find_coordinator(&mut admin, &id);
    let (error, producer_id, epoch) = init_at_coordinator(&mut admin, &id, TIMEOUT_MS);
    assert_eq!(error, 0);
    let other = format!("{base}-other");
    assert_eq!(admin.create_topic(&other, 1, &[]), 0);
    let added = add_partitions(
        &mut admin,
        &id,
        (producer_id, epoch),
        &[(&shown, 0), (&other, 0)],
    );
    assert_eq!(added, [0, 0]);
    grant(&mut admin, TRANSACTIONAL_ID, &id, "User:bob", DESCRIBE);
    grant(&mut admin, TOPIC, &shown, "User:bob", DESCRIBE);
    let (error, state, _, partitions) = describe(&mut bob, &id);
    assert_eq!((error, state.as_str()), (0, "Ongoing"));
    assert_eq!(partitions, [(shown.clone(), 0)]);
    let (_, _, _, partitions) = describe(&mut admin, &id);
    // The coordinator lists them by name.
    assert_eq!(partitions, [(other.clone(), 0), (shown.clone(), 0)]);

    // WriteTxnMarkers: ALTER on the cluster is enough (kafka-transactions abort).
    let markers = abort_marker(producer_id, epoch, &other);
    let refused = bob.request(1, &markers);
    assert_eq!(marker_codes(&refused), [CLUSTER_AUTHORIZATION_FAILED]);
    grant(&mut admin, CLUSTER, "kafka-cluster", "User:bob", ALTER);
    let written = bob.request(1, &markers);
    assert_eq!(marker_codes(&written), [0]);
}

/// WriteTxnMarkers v1: one ABORT marker for `topic` partition 0.
fn abort_marker(producer_id: i64, epoch: i16, topic: &str) -> WriteTxnMarkersRequest {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let topic = WritableTxnMarkerTopic::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_string())))
        .with_partition_indexes(vec![0]);
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_transaction_result(false)
        .with_topics(vec![topic])
        .with_coordinator_epoch(0);
    WriteTxnMarkersRequest::default().with_markers(vec![marker])
}

fn marker_codes(response: &WriteTxnMarkersResponse) -> Vec<i16> {
    response
        .markers
        .iter()
        .flat_map(|marker| &marker.topics)
        .flat_map(|topic| &topic.partitions)
        .map(|partition| partition.error_code)
        .collect()
}
