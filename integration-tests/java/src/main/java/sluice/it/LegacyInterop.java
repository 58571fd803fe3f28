package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client beside clients of the Kafka 0.8-0.10 era on one topic (the topic exists):
 * it reads what they wrote, and writes records they can read (no headers, which the old message
 * formats cannot carry). Records are reported as JSON in the shape of python/common.py's
 * {@code to_json} (bytes as hex), so the Rust test compares them with the old clients' reports.
 *
 * <p>usage: LegacyInterop consume BOOTSTRAP TOPIC COUNT PARTITIONS (assign + seek to 0; prints
 * {"consumed": [...]}) | LegacyInterop produce BOOTSTRAP TOPIC CODEC COUNT PARTITIONS (prints
 * {"produced": [...]}).
 */
public final class LegacyInterop {
    private LegacyInterop() {}

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        Map<String, Object> output = new LinkedHashMap<>();
        if (mode.equals("consume")) {
            output.put("consumed", consume(bootstrap, topic, Integer.parseInt(args[3]), Integer.parseInt(args[4])));
        } else if (mode.equals("produce")) {
            output.put("produced",
                    produce(bootstrap, topic, args[3], Integer.parseInt(args[4]), Integer.parseInt(args[5])));
        } else {
            Checks.fail("unknown mode " + mode);
        }
        System.out.println(Checks.json(output));
    }

    /** The record number {@code index}: null keys and values, binary bytes, as common.py's. */
    private static ProducerRecord<byte[], byte[]> makeRecord(
            String topic, int index, int partitions, long baseTimestamp) {
        byte[] key = index % 7 == 3 ? null : (topic + "-key-" + index).getBytes(StandardCharsets.UTF_8);
        byte[] value = null;
        if (index % 11 != 5 || key == null) {
            byte[] prefix = (topic + "-value-" + index + "-" + "x".repeat(index % 50)).getBytes(StandardCharsets.UTF_8);
            value = new byte[prefix.length + 3];
            System.arraycopy(prefix, 0, value, 0, prefix.length);
            value[prefix.length] = (byte) index;
            value[prefix.length + 1] = 0;
            value[prefix.length + 2] = (byte) 0xff;
        }
        return new ProducerRecord<>(topic, index % partitions, baseTimestamp + index * 10L, key, value);
    }

    private static List<Map<String, Object>> produce(
            String bootstrap, String topic, String codec, int count, int partitions) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        config.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        long baseTimestamp = System.currentTimeMillis() - 60_000;
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int index = 0; index < count; index++) {
            records.add(makeRecord(topic, index, partitions, baseTimestamp));
        }
        List<Map<String, Object>> produced = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (ProducerRecord<byte[], byte[]> record : records) {
                futures.add(producer.send(record));
            }
            producer.flush();
            for (int index = 0; index < count; index++) {
                ProducerRecord<byte[], byte[]> record = records.get(index);
                RecordMetadata metadata = futures.get(index).get(60, TimeUnit.SECONDS);
                checkEqual(record.partition(), metadata.partition(), "partition of record " + index);
                checkEqual(record.timestamp(), metadata.timestamp(), "timestamp of record " + index);
                produced.add(json(record.partition(), metadata.offset(), record.key(), record.value(),
                        record.headers(), record.timestamp()));
            }
        }
        return produced;
    }

    private static List<Map<String, Object>> consume(String bootstrap, String topic, int count, int partitions) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        config.put(ConsumerConfig.CHECK_CRCS_CONFIG, "true");
        List<Map<String, Object>> consumed = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            List<TopicPartition> assigned = new ArrayList<>();
            for (int partition = 0; partition < partitions; partition++) {
                assigned.add(new TopicPartition(topic, partition));
            }
            consumer.assign(assigned);
            assigned.forEach(partition -> consumer.seek(partition, 0));
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (consumed.size() < count) {
                check(Instant.now().isBefore(deadline), "timed out with " + consumed.size() + " of " + count);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    checkEqual(TimestampType.CREATE_TIME, record.timestampType(), "timestamp type");
                    consumed.add(json(record.partition(), record.offset(), record.key(), record.value(),
                            record.headers(), record.timestamp()));
                }
            }
            // Nothing past what the old clients wrote: the end offsets add up to `count`.
            long total = consumer.endOffsets(assigned, Checks.DEADLINE).values().stream()
                    .mapToLong(Long::longValue).sum();
            checkEqual((long) count, total, "sum of end offsets");
        }
        checkEqual(count, consumed.size(), "records consumed");
        consumed.sort(Comparator.comparing((Map<String, Object> r) -> (Integer) r.get("partition"))
                .thenComparing(r -> (Long) r.get("offset")));
        return consumed;
    }

    private static Map<String, Object> json(int partition, long offset, byte[] key, byte[] value,
            Iterable<Header> headers, long timestamp) {
        List<List<String>> headerList = new ArrayList<>();
        for (Header header : headers) {
            headerList.add(java.util.Arrays.asList(header.key(), hex(header.value())));
        }
        Map<String, Object> record = new LinkedHashMap<>();
        record.put("partition", partition);
        record.put("offset", offset);
        record.put("key", hex(key));
        record.put("value", hex(value));
        record.put("headers", headerList);
        record.put("timestamp", timestamp);
        return record;
    }

    private static String hex(byte[] bytes) {
        return bytes == null ? null : HexFormat.of().formatHex(bytes);
    }
}
