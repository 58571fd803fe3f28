// Fetch throughput with the real Java client: reads N records of one topic from the beginning
// with assign(), no consumer group (Kafka's own ConsumerPerformance subscribes through a group;
// this measures the fetch path alone, and works against a broker without group APIs).
// Prints one summary line.
//
// Usage: java -cp 'target/classes:target/deps/*' FetchPerformance BOOTSTRAP TOPIC RECORDS

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class FetchPerformance {
    /** Give up when no record arrives for this long: the broker stalled. */
    private static final Duration IDLE_MAX = Duration.ofSeconds(30);

    public static void main(String[] args) {
        if (args.length != 3) {
            System.err.println("usage: FetchPerformance BOOTSTRAP TOPIC RECORDS");
            System.exit(2);
        }
        String bootstrap = args[0];
        String topic = args[1];
        long wanted = Long.parseLong(args[2]);
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "10000");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(config)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            long records = 0;
            long bytes = 0;
            long started = System.nanoTime();
            long lastRecordAt = started;
            while (records < wanted) {
                ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(500));
                long now = System.nanoTime();
                if (batch.isEmpty()) {
                    if (now - lastRecordAt > IDLE_MAX.toNanos()) {
                        System.err.printf("stalled after %d of %d records%n", records, wanted);
                        System.exit(1);
                    }
                    continue;
                }
                lastRecordAt = now;
                for (ConsumerRecord<byte[], byte[]> record : batch) {
                    records++;
                    bytes += record.serializedValueSize() + Math.max(0, record.serializedKeySize());
                }
            }
            double seconds = (System.nanoTime() - started) / 1e9;
            System.out.printf(
                "%d records fetched in %.2f s, %.1f records/sec (%.2f MB/sec)%n",
                records, seconds, records / seconds, bytes / seconds / (1024.0 * 1024.0));
        }
    }
}
