package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
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
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * The Java client's produce/consume round trip: a KafkaProducer with its default configuration
 * (idempotence on, acks=all) sends records with headers and explicit timestamps to a fresh
 * topic, checking each RecordMetadata; a KafkaConsumer without a group (assign + seek) reads
 * them back exactly, then seeks partition 0 to a middle offset and reads exactly from there.
 *
 * <p>usage: ProduceConsume BOOTSTRAP TOPIC COUNT. Prints a one-line JSON summary.
 */
public final class ProduceConsume {
    private static final int PARTITIONS = 3;

    /** A record as compared: bytes as hex so that equality is content equality. */
    record Rec(int partition, long offset, String key, String value, List<List<String>> headers, long timestamp) {
        Rec withOffset(long newOffset) {
            return new Rec(partition, newOffset, key, value, headers, timestamp);
        }
    }

    private ProduceConsume() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        createTopic(bootstrap, topic);
        long baseTimestamp = System.currentTimeMillis() - 60_000;
        List<ProducerRecord<byte[], byte[]>> records = new ArrayList<>();
        for (int index = 0; index < count; index++) {
            records.add(makeRecord(topic, index, baseTimestamp));
        }
        List<Rec> produced = produce(bootstrap, records);
        List<Rec> consumed;
        int seekOffset;
        List<Rec> afterSeek;
        try (KafkaConsumer<byte[], byte[]> consumer = consumer(bootstrap)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (int partition = 0; partition < PARTITIONS; partition++) {
                partitions.add(new TopicPartition(topic, partition));
            }
            consumer.assign(partitions);
            partitions.forEach(partition -> consumer.seek(partition, 0));
            consumed = pollUntil(consumer, count);
            checkExact(produced, consumed);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(30));
            for (TopicPartition partition : partitions) {
                long expectedEnd = produced.stream().filter(r -> r.partition() == partition.partition()).count();
                checkEqual(expectedEnd, ends.get(partition), "end offset of " + partition);
                checkEqual(expectedEnd, consumer.position(partition), "position of " + partition);
            }
            List<Rec> partitionZero = produced.stream().filter(r -> r.partition() == 0).toList();
            seekOffset = partitionZero.size() / 2;
            consumer.seek(new TopicPartition(topic, 0), seekOffset);
            afterSeek = pollUntil(consumer, partitionZero.size() - seekOffset);
            checkEqual(partitionZero.subList(seekOffset, partitionZero.size()), afterSeek, "records after seek");
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", produced.size());
        summary.put("consumed", consumed.size());
        summary.put("seek_offset", seekOffset);
        summary.put("after_seek", afterSeek.size());
        summary.put("first_after_seek", afterSeek.get(0).offset());
        System.out.println(Checks.json(summary));
    }

    private static void createTopic(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(60, TimeUnit.SECONDS);
        }
    }

    private static ProducerRecord<byte[], byte[]> makeRecord(String topic, int index, long baseTimestamp) {
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
        List<Header> headers = new ArrayList<>();
        if (index % 9 != 0) {
            headers.add(new RecordHeader("index", Integer.toString(index).getBytes(StandardCharsets.UTF_8)));
            headers.add(new RecordHeader("dup", "first".getBytes(StandardCharsets.UTF_8)));
            headers.add(new RecordHeader("dup", "second".getBytes(StandardCharsets.UTF_8)));
            if (index % 5 == 0) {
                headers.add(new RecordHeader("null", null));
            }
        }
        return new ProducerRecord<>(topic, index % PARTITIONS, baseTimestamp + index * 10L, key, value, headers);
    }

    private static List<Rec> produce(String bootstrap, List<ProducerRecord<byte[], byte[]>> records)
            throws Exception {
        // Only what is needed to connect: the defaults (idempotence, acks=all) are under test.
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<Rec> produced = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            List<Future<RecordMetadata>> futures = new ArrayList<>();
            for (ProducerRecord<byte[], byte[]> record : records) {
                futures.add(producer.send(record));
            }
            producer.flush();
            long[] nextOffsets = new long[PARTITIONS];
            for (int index = 0; index < records.size(); index++) {
                ProducerRecord<byte[], byte[]> record = records.get(index);
                RecordMetadata metadata = futures.get(index).get(60, TimeUnit.SECONDS);
                checkEqual(record.partition(), metadata.partition(), "partition of record " + index);
                checkEqual(record.timestamp(), metadata.timestamp(), "timestamp of record " + index);
                checkEqual(nextOffsets[record.partition()], metadata.offset(), "offset of record " + index);
                nextOffsets[record.partition()] += 1;
                produced.add(rec(record.partition(), metadata.offset(), record.key(), record.value(),
                        record.headers(), record.timestamp()));
            }
        }
        return produced;
    }

    private static KafkaConsumer<byte[], byte[]> consumer(String bootstrap) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "none");
        config.put(ConsumerConfig.CHECK_CRCS_CONFIG, "true");
        return new KafkaConsumer<>(config);
    }

    /** Polls until {@code count} records arrived; returns them sorted by (partition, offset). */
    private static List<Rec> pollUntil(KafkaConsumer<byte[], byte[]> consumer, int count) {
        List<Rec> consumed = new ArrayList<>();
        Instant deadline = Instant.now().plus(Checks.DEADLINE);
        while (consumed.size() < count) {
            check(Instant.now().isBefore(deadline), "timed out with " + consumed.size() + " of " + count + " records");
            for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                checkEqual(TimestampType.CREATE_TIME, record.timestampType(), "timestamp type");
                consumed.add(rec(record.partition(), record.offset(), record.key(), record.value(),
                        record.headers(), record.timestamp()));
            }
        }
        check(consumed.size() == count, "consumed " + consumed.size() + " records, expected " + count);
        consumed.sort((a, b) -> a.partition() != b.partition()
                ? Integer.compare(a.partition(), b.partition()) : Long.compare(a.offset(), b.offset()));
        return consumed;
    }

    private static void checkExact(List<Rec> produced, List<Rec> consumed) {
        List<Rec> expected = new ArrayList<>(produced);
        expected.sort((a, b) -> a.partition() != b.partition()
                ? Integer.compare(a.partition(), b.partition()) : Long.compare(a.offset(), b.offset()));
        checkEqual(expected.size(), consumed.size(), "record count");
        for (int index = 0; index < expected.size(); index++) {
            checkEqual(expected.get(index), consumed.get(index), "record " + index + " (partition, offset order)");
        }
    }

    private static Rec rec(int partition, long offset, byte[] key, byte[] value,
            Iterable<Header> headers, long timestamp) {
        List<List<String>> headerList = new ArrayList<>();
        for (Header header : headers) {
            headerList.add(java.util.Arrays.asList(header.key(), hex(header.value())));
        }
        return new Rec(partition, offset, hex(key), hex(value), headerList, timestamp);
    }

    private static String hex(byte[] bytes) {
        return bytes == null ? null : HexFormat.of().formatHex(bytes);
    }
}
