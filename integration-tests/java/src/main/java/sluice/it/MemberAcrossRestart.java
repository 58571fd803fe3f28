package sluice.it;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collection;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * One KIP-848 consumer (group.protocol=consumer) that keeps consuming while the test kills and
 * restarts the broker: it prints every record, its member id and epoch whenever they change,
 * and every rebalance callback, so the test can tell whether the member carried on.
 *
 * <p>Args: bootstrap topic group scratch-dir replicas (of the topic). Files the test creates in scratch-dir: `produce`
 * (send the second batch), `stop` (describe the group, close, print `done`).
 */
final class MemberAcrossRestart {
    private MemberAcrossRestart() {}

    static final int BATCH = 600;
    /** Set once the consumer closes: the revocation close() makes is not a rebalance. */
    static volatile boolean closing = false;

    /** Prints the callbacks with partitions in them. */
    static final class Printing implements ConsumerRebalanceListener {
        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                System.out.println("assigned " + partitions.size());
            }
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                System.out.println((closing ? "revoked-on-close " : "revoked ") + partitions.size());
            }
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                System.out.println("lost " + partitions.size());
            }
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        Path scratch = Path.of(args[3]);
        short replicas = Short.parseShort(args[4]);
        Properties adminConfig = new Properties();
        adminConfig.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(adminConfig)) {
            admin.createTopics(List.of(new NewTopic(topic, GroupConsume.PARTITIONS, replicas)))
                    .all().get(60, TimeUnit.SECONDS);
        }
        GroupConsume.produce(bootstrap, topic, "a", BATCH, false);
        Properties config = ConsumerProtocolGroup.consumerConfig(bootstrap, group, "uniform");
        boolean produced = false;
        String member = "";
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config)) {
            consumer.subscribe(List.of(topic), new Printing());
            while (!Files.exists(scratch.resolve("stop"))) {
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    System.out.println("consumed " + record.partition() + " " + record.offset() + " " + record.value());
                }
                try {
                    consumer.commitSync(Duration.ofSeconds(10));
                } catch (RuntimeException error) {
                    System.out.println("commit-error " + error.getClass().getSimpleName());
                }
                var metadata = consumer.groupMetadata();
                String now = metadata.memberId() + " " + metadata.generationId();
                if (!metadata.memberId().isEmpty() && !now.equals(member)) {
                    member = now;
                    System.out.println("member " + member);
                }
                if (!produced && Files.exists(scratch.resolve("produce"))) {
                    GroupConsume.produce(bootstrap, topic, "b", BATCH, false);
                    produced = true;
                }
                System.out.flush();
            }
            describe(bootstrap, group);
            closing = true;
        }
        System.out.println("done");
    }

    /** Prints the group epoch and each member as Admin's ConsumerGroupDescribe sees them. */
    static void describe(String bootstrap, String group) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            ConsumerGroupDescription description =
                    admin.describeConsumerGroups(List.of(group)).all().get(60, TimeUnit.SECONDS).get(group);
            System.out.println("group-epoch " + description.groupEpoch().orElse(-1));
            for (MemberDescription described : description.members()) {
                System.out.println("described " + described.consumerId() + " " + described.memberEpoch().orElse(-1)
                        + " " + described.assignment().topicPartitions().size());
            }
        }
    }
}
