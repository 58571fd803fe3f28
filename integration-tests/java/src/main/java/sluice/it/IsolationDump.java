package sluice.it;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Reads partition 0 of a topic from the beginning to its end with the Java consumer at the
 * given isolation level (no group: assign + seekToBeginning), and prints each record as
 * {@code value@offset}, one per line, then {@code end=N} (the end offset the consumer was told:
 * the LSO for read_committed). The consumer itself drops aborted transactions' records and
 * skips control batches.
 *
 * <p>usage: IsolationDump BOOTSTRAP TOPIC read_committed|read_uncommitted
 */
public final class IsolationDump {
    private static final Duration DEADLINE = Duration.ofSeconds(60);

    private IsolationDump() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String isolation = args[2];
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation.toLowerCase(Locale.ROOT));
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        TopicPartition partition = new TopicPartition(topic, 0);
        StringBuilder out = new StringBuilder();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.assign(List.of(partition));
            consumer.seekToBeginning(List.of(partition));
            Map<TopicPartition, Long> ends = consumer.endOffsets(List.of(partition));
            long end = ends.get(partition);
            Instant deadline = Instant.now().plus(DEADLINE);
            while (consumer.position(partition) < end) {
                if (Instant.now().isAfter(deadline)) {
                    throw new IllegalStateException(
                            "position " + consumer.position(partition) + " never reached " + end);
                }
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    String value = new String(record.value(), StandardCharsets.UTF_8);
                    out.append(value).append('@').append(record.offset()).append('\n');
                }
            }
            out.append("end=").append(end).append('\n');
        }
        System.out.print(out);
    }
}
