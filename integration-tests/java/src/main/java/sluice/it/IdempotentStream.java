package sluice.it;

import static sluice.it.Checks.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLongArray;
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
 * An idempotent produce stream that survives a broker crash: a KafkaProducer with its default
 * settings (idempotence on, acks=all, five requests in flight, retries) sends COUNT records of
 * 512 bytes, paced so the stream lasts seconds, printing "acked N" lines as acknowledgements
 * arrive. The
 * test harness kill -9s the broker during the stream and restarts it on the same port; the
 * producer retries what was in flight. Afterwards every partition is read back: each record
 * must be there exactly once, in send order, at the offset its acknowledgement reported.
 *
 * <p>usage: IdempotentStream BOOTSTRAP TOPIC COUNT. Prints a one-line JSON summary last.
 */
public final class IdempotentStream {
    private static final int PARTITIONS = 2;
    /** Records sent between two 1 ms pauses: enough to keep a broker that fsyncs every
     * append busy, so a kill lands between a write and its acknowledgement. */
    private static final int RECORDS_PER_PAUSE = 10;
    /** Value size: "record-N|" padded with dots. */
    private static final int VALUE_BYTES = 512;
    /** An "acked N" line every this many acknowledgements. */
    private static final int PROGRESS_EVERY = 50;

    private IdempotentStream() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        createTopic(bootstrap, topic);
        AtomicLongArray ackedOffsets = new AtomicLongArray(count);
        for (int index = 0; index < count; index++) {
            ackedOffsets.set(index, -1);
        }
        AtomicInteger failed = new AtomicInteger();
        produce(bootstrap, topic, count, ackedOffsets, failed);
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("sent", count);
        summary.put("failed", failed.get());
        summary.putAll(verify(bootstrap, topic, count, ackedOffsets));
        System.out.println(Checks.json(summary));
    }

    private static void createTopic(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(60, TimeUnit.SECONDS);
        }
    }

    private static byte[] value(int index) {
        String name = "record-" + index + "|";
        return (name + ".".repeat(VALUE_BYTES - name.length())).getBytes(StandardCharsets.UTF_8);
    }

    private static void produce(String bootstrap, String topic, int count, AtomicLongArray ackedOffsets,
            AtomicInteger failed) throws Exception {
        // The defaults (idempotence, acks=all, retries until delivery.timeout.ms) are under
        // test; only the reconnect backoff is shortened so the restart is noticed quickly.
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "180000");
        AtomicInteger acked = new AtomicInteger();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int index = 0; index < count; index++) {
                int sent = index;
                ProducerRecord<byte[], byte[]> record =
                        new ProducerRecord<>(topic, index % PARTITIONS, null, value(index));
                producer.send(record, (metadata, error) -> {
                    if (error != null) {
                        System.err.println("record " + sent + " failed: " + error);
                        failed.incrementAndGet();
                        return;
                    }
                    ackedOffsets.set(sent, metadata.offset());
                    int done = acked.incrementAndGet();
                    if (done % PROGRESS_EVERY == 0) {
                        System.out.println("acked " + done);
                        System.out.flush();
                    }
                });
                if (index % RECORDS_PER_PAUSE == 0) {
                    Thread.sleep(1);
                }
            }
            producer.flush();
        }
        System.out.println("acked " + acked.get());
    }

    /** Reads both partitions to their end and compares with what was sent and acknowledged. */
    private static Map<String, Object> verify(String bootstrap, String topic, int count, AtomicLongArray ackedOffsets) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        List<List<String>> consumed = new ArrayList<>();
        List<List<Long>> offsets = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (int partition = 0; partition < PARTITIONS; partition++) {
                partitions.add(new TopicPartition(topic, partition));
                consumed.add(new ArrayList<>());
                offsets.add(new ArrayList<>());
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (partitions.stream().anyMatch(p -> consumer.position(p) < ends.get(p))) {
                check(Instant.now().isBefore(deadline), "timed out reading back to " + ends);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    consumed.get(record.partition()).add(new String(record.value(), StandardCharsets.UTF_8));
                    offsets.get(record.partition()).add(record.offset());
                }
            }
        }
        int total = 0;
        int mismatches = 0;
        int offsetMismatches = 0;
        for (int partition = 0; partition < PARTITIONS; partition++) {
            List<String> got = consumed.get(partition);
            total += got.size();
            int position = 0;
            for (int index = partition; index < count; index += PARTITIONS, position++) {
                String expected = new String(value(index), StandardCharsets.UTF_8);
                if (position >= got.size() || !got.get(position).equals(expected)) {
                    if (mismatches < 10) {
                        System.err.println("partition " + partition + " position " + position + ": expected "
                                + expected + ", got " + (position < got.size() ? got.get(position) : "nothing"));
                    }
                    mismatches++;
                } else if (offsets.get(partition).get(position) != position
                        || ackedOffsets.get(index) != position) {
                    System.err.println("record " + index + ": stored at " + offsets.get(partition).get(position)
                            + ", acknowledged at " + ackedOffsets.get(index) + ", expected " + position);
                    offsetMismatches++;
                }
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("consumed", total);
        result.put("mismatches", mismatches);
        result.put("offset_mismatches", offsetMismatches);
        return result;
    }
}
