package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;

import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * The Java Admin client: describeCluster, createTopics (and its "exists" error), describeTopics,
 * describeConfigs, deleteTopics.
 *
 * <p>usage: AdminOps BOOTSTRAP TOPIC. Prints a one-line JSON summary of the answers.
 */
public final class AdminOps {
    private static final long TIMEOUT_S = 60;

    private AdminOps() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        Map<String, Object> summary = new LinkedHashMap<>();
        try (Admin admin = Admin.create(config)) {
            summary.put("cluster", describeCluster(admin, bootstrap));
            NewTopic newTopic = new NewTopic(topic, 2, (short) 1).configs(Map.of("retention.ms", "86400000"));
            admin.createTopics(List.of(newTopic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            summary.put("create_again", createAgainError(admin, newTopic));
            Checks.waitFor(topic + " in listTopics", () -> topicNames(admin).contains(topic));
            summary.put("partitions", describeTopic(admin, topic));
            ConfigResource resource = new ConfigResource(ConfigResource.Type.TOPIC, topic);
            Config configs = admin.describeConfigs(List.of(resource)).all().get(TIMEOUT_S, TimeUnit.SECONDS)
                    .get(resource);
            check(configs.get("retention.ms") != null, "describeConfigs has no retention.ms: " + configs);
            summary.put("retention_ms", configs.get("retention.ms").value());
            admin.deleteTopics(List.of(topic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
            Checks.waitFor(topic + " gone from listTopics", () -> !topicNames(admin).contains(topic));
            summary.put("deleted", true);
        }
        checkEqual("86400000", summary.get("retention_ms"), "retention.ms");
        System.out.println(Checks.json(summary));
    }

    private static Map<String, Object> describeCluster(Admin admin, String bootstrap) throws Exception {
        DescribeClusterResult cluster = admin.describeCluster();
        Collection<Node> nodes = cluster.nodes().get(TIMEOUT_S, TimeUnit.SECONDS);
        String clusterId = cluster.clusterId().get(TIMEOUT_S, TimeUnit.SECONDS);
        Node controller = cluster.controller().get(TIMEOUT_S, TimeUnit.SECONDS);
        List<Object> nodeList = new ArrayList<>();
        for (Node node : nodes) {
            nodeList.add(List.of(node.id(), node.host() + ":" + node.port()));
        }
        checkEqual(List.of(List.of(1, bootstrap)), nodeList, "describeCluster nodes");
        check(clusterId != null && !clusterId.isEmpty(), "describeCluster: no cluster id");
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("nodes", nodeList);
        result.put("controller", controller == null ? null : controller.id());
        result.put("has_cluster_id", true);
        return result;
    }

    private static String createAgainError(Admin admin, NewTopic newTopic) throws Exception {
        try {
            admin.createTopics(List.of(newTopic)).all().get(TIMEOUT_S, TimeUnit.SECONDS);
        } catch (ExecutionException exception) {
            check(exception.getCause() instanceof TopicExistsException, "create again: " + exception.getCause());
            return exception.getCause().getClass().getSimpleName();
        }
        Checks.fail("creating " + newTopic.name() + " twice succeeded");
        return null;
    }

    private static List<Object> describeTopic(Admin admin, String topic) throws Exception {
        TopicDescription description = admin.describeTopics(List.of(topic)).allTopicNames()
                .get(TIMEOUT_S, TimeUnit.SECONDS).get(topic);
        checkEqual(topic, description.name(), "described topic");
        check(!description.isInternal(), "topic is internal");
        List<Object> partitions = new ArrayList<>();
        for (TopicPartitionInfo partition : description.partitions()) {
            List<Integer> replicas = partition.replicas().stream().map(Node::id).toList();
            List<Integer> isr = partition.isr().stream().map(Node::id).toList();
            partitions.add(List.of(partition.partition(), partition.leader().id(), replicas, isr));
        }
        checkEqual(List.of(List.of(0, 1, List.of(1), List.of(1)), List.of(1, 1, List.of(1), List.of(1))),
                partitions, "describeTopics partitions (id, leader, replicas, isr)");
        return partitions;
    }

    private static java.util.Set<String> topicNames(Admin admin) {
        try {
            return admin.listTopics().names().get(TIMEOUT_S, TimeUnit.SECONDS);
        } catch (Exception exception) {
            Checks.fail("listTopics: " + exception);
            return java.util.Set.of();
        }
    }
}
