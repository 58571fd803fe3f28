package sluice.it;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * A produce stream and a consumer that run while the test kills brokers under them.
 *
 * <p>Creates TOPIC (PARTITIONS partitions, replication factor REPLICAS, min.insync.replicas
 * 2), then an idempotent acks=all producer sends the values "v-00000000", "v-00000001", …
 * (value N to partition N % PARTITIONS), paced, until the file STOP_FILE exists; then it
 * flushes and closes. Every outcome is one line on stdout, printed as it happens:
 * "acked PARTITION OFFSET VALUE" or "failed VALUE ERROR"; meanwhile a consumer reading every
 * partition from the beginning prints "consumed PARTITION OFFSET VALUE". The test judges the
 * lines; the program itself only checks that the topic could be created.
 *
 * <p>With GROUP the consumer subscribes as a member of that consumer group (partitions come
 * and go with rebalances; it starts from the earliest offset and commits nothing) instead of
 * assigning every partition to itself.
 *
 * <p>usage: FailoverStream BOOTSTRAP TOPIC PARTITIONS REPLICAS STOP_FILE [GROUP]
 */
public final class FailoverStream {
    /** Pause between two sends: a steady stream of a few hundred records a second. */
    private static final long SEND_PAUSE_MS = 3;
    /** Long enough to ride out a leader election and a controller election back to back. */
    private static final String DELIVERY_TIMEOUT_MS = "120000";

    private static final Object OUTPUT = new Object();

    private FailoverStream() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int partitions = Integer.parseInt(args[2]);
        short replicas = Short.parseShort(args[3]);
        Path stopFile = Path.of(args[4]);
        String group = args.length > 5 ? args[5] : null;
        createTopic(bootstrap, topic, partitions, replicas);
        print("created " + topic);
        AtomicBoolean stopConsumer = new AtomicBoolean();
        Thread consumer = new Thread(() -> consume(bootstrap, topic, partitions, group, stopConsumer), "consumer");
        consumer.start();
        int sent = produce(bootstrap, topic, partitions, stopFile);
        print("sent " + sent);
        stopConsumer.set(true);
        consumer.join(TimeUnit.SECONDS.toMillis(30));
        print("done");
    }

    private static void print(String line) {
        synchronized (OUTPUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    private static void createTopic(String bootstrap, String topic, int partitions, short replicas) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            NewTopic newTopic = new NewTopic(topic, partitions, replicas).configs(Map.of("min.insync.replicas", "2"));
            try {
                admin.createTopics(List.of(newTopic)).all().get(60, TimeUnit.SECONDS);
            } catch (java.util.concurrent.ExecutionException error) {
                if (!(error.getCause() instanceof org.apache.kafka.common.errors.TopicExistsException)) {
                    throw error;
                }
            }
        }
    }

    private static String value(int index) {
        return String.format("v-%08d", index);
    }

    /** Sends until STOP_FILE exists; returns how many records were sent. */
    private static int produce(String bootstrap, String topic, int partitions, Path stopFile) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        config.put(ProducerConfig.RETRIES_CONFIG, Integer.toString(Integer.MAX_VALUE));
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, DELIVERY_TIMEOUT_MS);
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        config.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        int index = 0;
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            while (!Files.exists(stopFile)) {
                String value = value(index);
                ProducerRecord<byte[], byte[]> record = new ProducerRecord<>(
                        topic, index % partitions, null, value.getBytes(StandardCharsets.UTF_8));
                producer.send(record, (metadata, error) -> {
                    if (error != null) {
                        print("failed " + value + " " + error.getClass().getSimpleName());
                    } else {
                        print("acked " + metadata.partition() + " " + metadata.offset() + " " + value);
                    }
                });
                index++;
                Thread.sleep(SEND_PAUSE_MS);
            }
            producer.flush();
        }
        return index;
    }

    private static void consume(String bootstrap, String topic, int partitions, String group, AtomicBoolean stop) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        if (group != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            if (group == null) {
                List<TopicPartition> assigned = new ArrayList<>();
                for (int partition = 0; partition < partitions; partition++) {
                    assigned.add(new TopicPartition(topic, partition));
                }
                consumer.assign(assigned);
                consumer.seekToBeginning(assigned);
            } else {
                consumer.subscribe(List.of(topic));
            }
            while (!stop.get()) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    String value = new String(record.value(), StandardCharsets.UTF_8);
                    print("consumed " + record.partition() + " " + record.offset() + " " + value);
                }
            }
        } catch (RuntimeException error) {
            print("consumer-error " + error);
        }
    }
}
