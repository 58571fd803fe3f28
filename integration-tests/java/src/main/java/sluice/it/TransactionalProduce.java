package sluice.it;

import static sluice.it.Checks.check;

import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeProducersResult;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.ProducerState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The Java transactional producer against sluice.
 *
 * <p>{@code commit-abort BOOTSTRAP TOPIC TXN_ID COUNT}: three transactions of COUNT records over
 * three partitions (commit, abort, commit); then a read_committed and a read_uncommitted
 * consumer read every partition from the start to its end offset.
 *
 * <p>{@code zombie BOOTSTRAP TOPIC TXN_ID}: producer A begins a transaction and sends; producer B
 * with the same transactional id initialises (fencing A and aborting its transaction), sends
 * and commits; A's next send and commit must fail as fenced.
 *
 * <p>Prints a one-line JSON summary: the values each consumer saw, per partition in offset order,
 * and per partition the highest producer epoch DescribeProducers reports (the markers' epoch: it
 * moves on with every transaction only when the client runs transaction version 2).
 */
public final class TransactionalProduce {
    private static final int PARTITIONS = 3;

    private TransactionalProduce() {}

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        String transactionalId = args[3];
        createTopic(bootstrap, topic);
        Map<String, Object> summary = new LinkedHashMap<>();
        switch (mode) {
            case "commit-abort" -> commitAbort(bootstrap, topic, transactionalId, Integer.parseInt(args[4]), summary);
            case "zombie" -> zombie(bootstrap, topic, transactionalId, summary);
            default -> Checks.fail("unknown mode " + mode);
        }
        // The markers are written after commitTransaction returns: read to the log end once the
        // last stable offset has reached it.
        Map<TopicPartition, Long> logEnds = endOffsets(bootstrap, topic, "read_uncommitted");
        Checks.waitFor("the last stable offsets to reach " + logEnds,
                () -> endOffsets(bootstrap, topic, "read_committed").equals(logEnds));
        summary.put("producer_epochs", producerEpochs(bootstrap, topic));
        summary.put("read_committed", readAll(bootstrap, topic, "read_committed"));
        summary.put("read_uncommitted", readAll(bootstrap, topic, "read_uncommitted"));
        System.out.println(Checks.json(summary));
    }

    private static void commitAbort(
            String bootstrap, String topic, String transactionalId, int count, Map<String, Object> summary) {
        try (KafkaProducer<String, String> producer = producer(bootstrap, transactionalId)) {
            producer.initTransactions();
            String[] prefixes = {"commit1", "abort", "commit2"};
            for (String prefix : prefixes) {
                producer.beginTransaction();
                for (int index = 0; index < count; index++) {
                    producer.send(new ProducerRecord<>(topic, index % PARTITIONS, null, prefix + "-" + index));
                }
                if (prefix.startsWith("abort")) {
                    producer.flush();
                    producer.abortTransaction();
                } else {
                    producer.commitTransaction();
                }
            }
        }
        summary.put("transactions", 3);
    }

    private static void zombie(String bootstrap, String topic, String transactionalId, Map<String, Object> summary)
            throws Exception {
        try (KafkaProducer<String, String> first = producer(bootstrap, transactionalId)) {
            first.initTransactions();
            first.beginTransaction();
            first.send(new ProducerRecord<>(topic, 0, null, "zombie-1")).get();
            try (KafkaProducer<String, String> second = producer(bootstrap, transactionalId)) {
                second.initTransactions();
                second.beginTransaction();
                second.send(new ProducerRecord<>(topic, 0, null, "current-1")).get();
                second.commitTransaction();
            }
            String error = "none";
            try {
                first.send(new ProducerRecord<>(topic, 1, null, "zombie-2")).get();
                first.commitTransaction();
            } catch (ExecutionException failed) {
                error = failed.getCause().getClass().getSimpleName();
            } catch (RuntimeException failed) {
                error = failed.getClass().getSimpleName();
            }
            summary.put("zombie_error", error);
        }
    }

    private static List<TopicPartition> partitions(String topic) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (int partition = 0; partition < PARTITIONS; partition++) {
            partitions.add(new TopicPartition(topic, partition));
        }
        return partitions;
    }

    private static Map<TopicPartition, Long> endOffsets(String bootstrap, String topic, String isolation) {
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig(bootstrap, isolation))) {
            return consumer.endOffsets(partitions(topic), Duration.ofSeconds(30));
        }
    }

    /** Every partition from 0 to its end offset: values in offset order, per partition. */
    private static List<List<String>> readAll(String bootstrap, String topic, String isolation) {
        List<List<String>> values = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig(bootstrap, isolation))) {
            List<TopicPartition> partitions = partitions(topic);
            partitions.forEach(partition -> values.add(new ArrayList<>()));
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            // read_committed: the end offset is the last stable offset.
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (!partitions.stream().allMatch(p -> consumer.position(p) >= ends.get(p))) {
                check(Instant.now().isBefore(deadline), isolation + ": timed out reading to " + ends);
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    values.get(record.partition()).add(record.value());
                }
            }
        }
        return values;
    }

    private static Properties consumerConfig(String bootstrap, String isolation) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return config;
    }

    private static KafkaProducer<String, String> producer(String bootstrap, String transactionalId) {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return new KafkaProducer<>(config);
    }

    private static List<Integer> producerEpochs(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            Map<TopicPartition, DescribeProducersResult.PartitionProducerState> described =
                    admin.describeProducers(partitions(topic)).all().get();
            List<Integer> epochs = new ArrayList<>();
            for (TopicPartition partition : partitions(topic)) {
                int highest = -1;
                for (ProducerState state : described.get(partition).activeProducers()) {
                    highest = Math.max(highest, state.producerEpoch());
                }
                epochs.add(highest);
            }
            return epochs;
        }
    }

    private static void createTopic(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get();
        }
    }
}
