package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The read storm of issue 6 (the Kafkapocalypse postmortem): one producer at a fixed rate and
 * many consumer groups each reading everything, so a node is asked to send far more than it
 * takes in.
 *
 * <p>{@code run BOOTSTRAP TOPIC PARTITIONS REPLICATION GROUPS RECORDS RECORD_BYTES RATE}: creates
 * the topic; a producer sends RECORDS records of RECORD_BYTES (value starts with its index) at
 * RATE records/s with acks=all; GROUPS consumer groups of one consumer each read until they
 * have seen every index. Fails unless every group saw every record. Prints a one-line JSON
 * summary with each group's time to finish.
 */
public final class ReadStorm {
    /** The whole storm must be over by then, however throttled. */
    static final Duration DEADLINE = Duration.ofSeconds(240);

    private ReadStorm() {}

    public static void main(String[] args) throws Exception {
        checkEqual("run", args[0], "mode");
        String bootstrap = args[1];
        String topic = args[2];
        int partitions = Integer.parseInt(args[3]);
        short replication = Short.parseShort(args[4]);
        int groups = Integer.parseInt(args[5]);
        int records = Integer.parseInt(args[6]);
        int recordBytes = Integer.parseInt(args[7]);
        int rate = Integer.parseInt(args[8]);
        createTopic(bootstrap, topic, partitions, replication);
        Instant started = Instant.now();
        ExecutorService pool = Executors.newFixedThreadPool(groups + 1);
        Future<Integer> produced = pool.submit(() -> produce(bootstrap, topic, records, recordBytes, rate));
        List<Future<Long>> finished = new ArrayList<>();
        for (int group = 0; group < groups; group++) {
            String groupId = topic + "-g" + group;
            finished.add(pool.submit(() -> consumeAll(bootstrap, topic, groupId, records, started)));
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", produced.get(DEADLINE.toSeconds(), TimeUnit.SECONDS));
        List<Object> finishMs = new ArrayList<>();
        for (Future<Long> group : finished) {
            finishMs.add(group.get(DEADLINE.toSeconds(), TimeUnit.SECONDS));
        }
        summary.put("groups_finished_ms", finishMs);
        pool.shutdown();
        System.out.println(Checks.json(summary));
    }

    static void createTopic(String bootstrap, String topic, int partitions, short replication) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, partitions, replication))).all().get(60, TimeUnit.SECONDS);
        }
    }

    static int produce(String bootstrap, String topic, int records, int recordBytes, int rate) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<Future<RecordMetadata>> sends = new ArrayList<>();
        long started = System.nanoTime();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int index = 0; index < records; index++) {
                // Paced: record i leaves no earlier than i / rate seconds after the start.
                long due = started + (long) index * 1_000_000_000L / rate;
                long wait = due - System.nanoTime();
                if (wait > 0) {
                    Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
                }
                sends.add(producer.send(new ProducerRecord<>(topic, value(index, recordBytes))));
            }
            producer.flush();
        }
        for (Future<RecordMetadata> send : sends) {
            send.get(60, TimeUnit.SECONDS);
        }
        return records;
    }

    static byte[] value(int index, int recordBytes) {
        byte[] value = new byte[recordBytes];
        java.util.Arrays.fill(value, (byte) 'x');
        byte[] prefix = (index + ":").getBytes(StandardCharsets.UTF_8);
        System.arraycopy(prefix, 0, value, 0, Math.min(prefix.length, recordBytes));
        return value;
    }

    /** Reads until every index in [0, records) was seen; returns ms from the storm's start. */
    static long consumeAll(String bootstrap, String topic, String group, int records, Instant started) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        config.put(ConsumerConfig.CLIENT_ID_CONFIG, group);
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "true");
        config.put(ConsumerConfig.AUTO_COMMIT_INTERVAL_MS_CONFIG, "500");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        BitSet seen = new BitSet(records);
        Instant deadline = started.plus(DEADLINE);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            consumer.subscribe(List.of(topic));
            while (seen.cardinality() < records) {
                check(Instant.now().isBefore(deadline),
                        group + " saw " + seen.cardinality() + " of " + records + " records by the deadline");
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    String text = new String(record.value(), 0, Math.min(16, record.value().length), StandardCharsets.UTF_8);
                    int index = Integer.parseInt(text.substring(0, text.indexOf(':')));
                    check(index >= 0 && index < records, group + " read a record index " + index);
                    seen.set(index);
                }
            }
            consumer.commitSync();
        }
        return Duration.between(started, Instant.now()).toMillis();
    }
}
