package sluice.it;

import java.io.FileInputStream;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeSet;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
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
 * One client action as a principal, reporting what an authoriser let through: the records
 * produced or consumed, and the name of the exception that stopped it (null when none).
 *
 * <p>usage: AclProbe BOOTSTRAP PROPERTIES_FILE ACTION TOPIC COUNT [GROUP | TRANSACTIONAL_ID].
 * ACTION: produce (COUNT values TOPIC-acl-i), txn-produce (the same in one committed
 * transaction), read (assign partition 0 from the start, no group), group-read
 * (subscribe in GROUP), list-topics (Admin listTopics). Prints {"values": [...], "error":
 * name-or-null} or {"topics": [...]}.
 */
public final class AclProbe {
    private AclProbe() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        Properties security = new Properties();
        try (FileInputStream in = new FileInputStream(args[1])) {
            security.load(in);
        }
        String action = args[2];
        String topic = args[3];
        int count = Integer.parseInt(args[4]);
        Map<String, Object> summary = new LinkedHashMap<>();
        List<String> values = new ArrayList<>();
        Throwable error = null;
        try {
            switch (action) {
                case "produce" -> produce(bootstrap, security, topic, count, null, values);
                case "txn-produce" -> produce(bootstrap, security, topic, count, args[5], values);
                case "read" -> consume(bootstrap, security, topic, count, null, values);
                case "group-read" -> consume(bootstrap, security, topic, count, args[5], values);
                case "list-topics" -> {
                    summary.put("topics", listTopics(bootstrap, security));
                    System.out.println(Checks.json(summary));
                    return;
                }
                default -> Checks.fail("unknown action " + action);
            }
        } catch (Exception thrown) {
            error = thrown;
            while (error.getCause() != null && !(error instanceof org.apache.kafka.common.KafkaException)) {
                error = error.getCause();
            }
        }
        summary.put("values", values);
        summary.put("error", error == null ? null : error.getClass().getSimpleName());
        System.out.println(Checks.json(summary));
    }

    private static void produce(
            String bootstrap,
            Properties security,
            String topic,
            int count,
            String transactionalId,
            List<String> values)
            throws Exception {
        Properties props = new Properties();
        props.putAll(security);
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");
        if (transactionalId != null) {
            props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        }
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(props, new StringSerializer(), new StringSerializer())) {
            if (transactionalId != null) {
                producer.initTransactions();
                producer.beginTransaction();
            }
            List<String> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String value = topic + "-acl-" + i;
                producer.send(new ProducerRecord<>(topic, value)).get();
                sent.add(value);
            }
            if (transactionalId != null) {
                producer.commitTransaction();
            }
            values.addAll(sent);
        }
    }

    private static void consume(
            String bootstrap,
            Properties security,
            String topic,
            int count,
            String group,
            List<String> values) {
        Properties props = new Properties();
        props.putAll(security);
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(props, new StringDeserializer(), new StringDeserializer())) {
            if (group == null) {
                TopicPartition partition = new TopicPartition(topic, 0);
                consumer.assign(List.of(partition));
                consumer.seekToBeginning(List.of(partition));
            } else {
                consumer.subscribe(List.of(topic));
            }
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (values.size() < count) {
                Checks.check(Instant.now().isBefore(deadline), "timed out at " + values.size() + "/" + count);
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    values.add(record.value());
                }
            }
        }
    }

    private static List<String> listTopics(String bootstrap, Properties security) throws Exception {
        Properties props = new Properties();
        props.putAll(security);
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            return new ArrayList<>(new TreeSet<>(admin.listTopics().names().get()));
        }
    }
}
