package sluice.it;

import static sluice.it.Checks.check;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Exactly-once consume-transform-produce (KIP-98/447) while a test kill -9s brokers: the input
 * topic gets COUNT records "in-N"; a read_committed consumer of group GROUP and a transactional
 * producer turn each into "out-N@T" on the output topic, T being the transaction's number,
 * committing the consumed offsets in the same transaction (sendOffsetsToTransaction). Every
 * third transaction is aborted on purpose and its input re-read from the committed offsets; a
 * transaction that fails (a broker died) is aborted or its producer replaced (the new one's
 * InitProducerId fences and aborts the old) and re-read the same way.
 *
 * <p>Prints "seeded", then "committed T N" / "aborted T N" / "failed T ..." per transaction,
 * then a JSON summary of the checks: read_committed sees every input's output exactly once
 * and nothing of an aborted transaction; read_uncommitted sees every record the aborted
 * transactions sent, and only output records (the markers are skipped).
 *
 * <p>usage: TransactionalStream BOOTSTRAP INPUT OUTPUT COUNT GROUP REPLICATION_FACTOR [PROTOCOL]
 * (PROTOCOL: the consumer's group.protocol, classic by default or consumer for KIP-848).
 */
public final class TransactionalStream {
    private static final int PARTITIONS = 2;
    /** Records per transaction at most. */
    private static final int RECORDS_PER_POLL = 25;
    /** How long the whole processing may take (kills and restarts included). */
    private static final Duration PROCESS_DEADLINE = Duration.ofSeconds(400);

    private final String bootstrap;
    private final String input;
    private final String output;
    private final String group;
    private final String groupProtocol;
    /** Transactions aborted on purpose: their number → the values they sent. */
    private final Map<Long, List<String>> aborted = new HashMap<>();
    private final Set<Long> committed = new HashSet<>();
    private long transactions;
    private int failures;

    private TransactionalStream(String bootstrap, String input, String output, String group,
            String groupProtocol) {
        this.groupProtocol = groupProtocol;
        this.bootstrap = bootstrap;
        this.input = input;
        this.output = output;
        this.group = group;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        int count = Integer.parseInt(args[3]);
        short replication = Short.parseShort(args[5]);
        String protocol = args.length > 6 ? args[6] : "classic";
        TransactionalStream stream = new TransactionalStream(bootstrap, args[1], args[2], args[4], protocol);
        stream.createTopics(replication);
        stream.seed(count);
        System.out.println("seeded");
        System.out.flush();
        stream.process();
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("inputs", count);
        summary.put("transactions", stream.transactions);
        summary.put("committed_transactions", stream.committed.size());
        summary.put("aborted_transactions", stream.aborted.size());
        summary.put("failed_transactions", stream.failures);
        summary.putAll(stream.verify(count));
        System.out.println(Checks.json(summary));
    }

    private void createTopics(short replication) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            for (String topic : List.of(input, output)) {
                try {
                    admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, replication)))
                            .all().get(60, TimeUnit.SECONDS);
                } catch (ExecutionException error) {
                    check(error.getCause() instanceof TopicExistsException, "create " + topic + ": " + error);
                }
            }
        }
    }

    private void seed(int count) {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int index = 0; index < count; index++) {
                producer.send(new ProducerRecord<>(input, index % PARTITIONS, null, bytes("in-" + index)));
            }
            producer.flush();
        }
    }

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private KafkaProducer<byte[], byte[]> newProducer() {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, group + "-txn");
        config.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "20000");
        config.put(ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        config.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        config.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        config.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config);
        try {
            producer.initTransactions();
        } catch (KafkaException error) {
            producer.close(Duration.ZERO);
            throw error;
        }
        return producer;
    }

    private KafkaConsumer<byte[], byte[]> newConsumer(String isolation, String groupId) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.toString(RECORDS_PER_POLL));
        config.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "500");
        config.put(ConsumerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        if (groupId != null) {
            config.put(ConsumerConfig.GROUP_ID_CONFIG, groupId);
            config.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, groupProtocol);
        }
        return new KafkaConsumer<>(config);
    }

    /** The loop: one transaction per poll until the committed offsets reach the input's end. */
    private void process() {
        List<TopicPartition> partitions = new ArrayList<>();
        for (int partition = 0; partition < PARTITIONS; partition++) {
            partitions.add(new TopicPartition(input, partition));
        }
        Instant deadline = Instant.now().plus(PROCESS_DEADLINE);
        try (KafkaConsumer<byte[], byte[]> consumer = newConsumer("read_committed", group)) {
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(60));
            consumer.subscribe(List.of(input));
            KafkaProducer<byte[], byte[]> producer = retryUntil(deadline, "a producer", this::newProducer);
            while (!caughtUp(consumer, ends)) {
                check(Instant.now().isBefore(deadline), "processing did not finish; committed " + committed.size());
                ConsumerRecords<byte[], byte[]> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (KafkaException error) {
                    System.out.println("poll-error " + error);
                    continue;
                }
                if (records.isEmpty()) {
                    continue;
                }
                producer = transact(consumer, producer, records, deadline);
            }
            producer.close(Duration.ofSeconds(10));
        }
    }

    /** One transaction over {@code records}; returns the producer to go on with. */
    private KafkaProducer<byte[], byte[]> transact(KafkaConsumer<byte[], byte[]> consumer,
            KafkaProducer<byte[], byte[]> producer, ConsumerRecords<byte[], byte[]> records, Instant deadline) {
        long number = ++transactions;
        boolean abort = number % 3 == 0;
        List<String> sent = new ArrayList<>();
        List<Future<RecordMetadata>> writes = new ArrayList<>();
        try {
            producer.beginTransaction();
            Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
            for (ConsumerRecord<byte[], byte[]> record : records) {
                String in = new String(record.value(), StandardCharsets.UTF_8);
                String out = "out-" + in.substring("in-".length()) + "@" + number;
                writes.add(producer.send(new ProducerRecord<>(output, record.partition(), null, bytes(out))));
                sent.add(out);
                offsets.put(new TopicPartition(record.topic(), record.partition()),
                        new OffsetAndMetadata(record.offset() + 1));
            }
            producer.sendOffsetsToTransaction(offsets, consumer.groupMetadata());
            if (abort) {
                // Sent records not yet written would be dropped by the abort; flushed first,
                // every one of them is in the log for read_uncommitted to find.
                producer.flush();
                List<String> written = new ArrayList<>();
                for (int at = 0; at < sent.size(); at++) {
                    if (writes.get(at).isDone() && !isFailed(writes.get(at))) {
                        written.add(sent.get(at));
                    }
                }
                producer.abortTransaction();
                aborted.put(number, written);
                System.out.println("aborted " + number + " " + sent.size());
                rewind(consumer, deadline);
            } else {
                producer.commitTransaction();
                committed.add(number);
                System.out.println("committed " + number + " " + sent.size());
            }
            System.out.flush();
            return producer;
        } catch (KafkaException error) {
            // A broker died, the group rebalanced, or this producer was fenced: the
            // transaction's outcome is whatever the coordinator decides; its input is re-read
            // from the offsets that are committed.
            failures++;
            System.out.println("failed " + number + " " + error);
            System.out.flush();
            producer.close(Duration.ZERO);
            KafkaProducer<byte[], byte[]> replacement = retryUntil(deadline, "a producer", this::newProducer);
            rewind(consumer, deadline);
            return replacement;
        }
    }

    private static boolean isFailed(Future<RecordMetadata> write) {
        try {
            write.get();
            return false;
        } catch (InterruptedException | ExecutionException error) {
            return true;
        }
    }

    /** Seeks every assigned partition back to its committed offset (stable: read_committed). */
    private void rewind(KafkaConsumer<byte[], byte[]> consumer, Instant deadline) {
        Set<TopicPartition> assigned = consumer.assignment();
        Map<TopicPartition, OffsetAndMetadata> offsets =
                retryUntil(deadline, "committed offsets", () -> consumer.committed(assigned, Duration.ofSeconds(15)));
        // Fetching the offsets runs the consumer's background events: a KIP-848 member found
        // unknown (its coordinator restarted) loses its partitions meanwhile. A partition no
        // longer assigned starts from its committed offset when it comes back.
        Set<TopicPartition> still = consumer.assignment();
        for (TopicPartition partition : assigned) {
            if (!still.contains(partition)) {
                continue;
            }
            OffsetAndMetadata offset = offsets.get(partition);
            try {
                if (offset == null) {
                    consumer.seekToBeginning(List.of(partition));
                } else {
                    consumer.seek(partition, offset.offset());
                }
            } catch (IllegalStateException revokedMeanwhile) {
                // As above: it starts from its committed offset when it comes back.
            }
        }
    }

    private static boolean caughtUp(KafkaConsumer<byte[], byte[]> consumer, Map<TopicPartition, Long> ends) {
        Set<TopicPartition> assigned = consumer.assignment();
        if (!assigned.containsAll(ends.keySet())) {
            return false;
        }
        for (Map.Entry<TopicPartition, Long> end : ends.entrySet()) {
            try {
                if (consumer.position(end.getKey(), Duration.ofSeconds(5)) < end.getValue()) {
                    return false;
                }
            } catch (KafkaException error) {
                return false;
            }
        }
        return true;
    }

    private static <T> T retryUntil(Instant deadline, String what, java.util.function.Supplier<T> attempt) {
        while (true) {
            try {
                return attempt.get();
            } catch (KafkaException error) {
                check(Instant.now().isBefore(deadline), "no " + what + " by the deadline: " + error);
                System.out.println("retry " + what + " " + error);
                System.out.flush();
            }
        }
    }

    /** Reads the output topic both ways and checks it against what was committed and aborted. */
    private Map<String, Object> verify(int count) {
        List<String> readCommitted = readAll("read_committed");
        List<String> readUncommitted = readAll("read_uncommitted");
        Map<String, Integer> outputsPerInput = new HashMap<>();
        int fromAborted = 0;
        int notOutputs = 0;
        for (String value : readCommitted) {
            int at = value.indexOf('@');
            if (!value.startsWith("out-") || at < 0) {
                notOutputs++;
                continue;
            }
            if (aborted.containsKey(Long.parseLong(value.substring(at + 1)))) {
                fromAborted++;
            }
            outputsPerInput.merge(value.substring(0, at), 1, Integer::sum);
        }
        int missing = 0;
        int duplicated = 0;
        for (int index = 0; index < count; index++) {
            int seen = outputsPerInput.getOrDefault("out-" + index, 0);
            if (seen == 0) {
                missing++;
            } else if (seen > 1) {
                duplicated++;
            }
        }
        Set<String> uncommitted = new HashSet<>(readUncommitted);
        int abortedSent = 0;
        int abortedSeenUncommitted = 0;
        for (List<String> values : aborted.values()) {
            for (String value : values) {
                abortedSent++;
                if (uncommitted.contains(value)) {
                    abortedSeenUncommitted++;
                }
            }
        }
        int uncommittedNotOutputs = 0;
        for (String value : readUncommitted) {
            if (!value.startsWith("out-") || value.indexOf('@') < 0) {
                uncommittedNotOutputs++;
            }
        }
        Map<String, Object> result = new LinkedHashMap<>();
        result.put("read_committed", readCommitted.size());
        result.put("distinct_outputs", outputsPerInput.size());
        result.put("missing", missing);
        result.put("duplicated", duplicated);
        result.put("committed_from_aborted", fromAborted);
        result.put("committed_not_outputs", notOutputs);
        result.put("read_uncommitted", readUncommitted.size());
        result.put("aborted_sent", abortedSent);
        result.put("aborted_seen_uncommitted", abortedSeenUncommitted);
        result.put("uncommitted_not_outputs", uncommittedNotOutputs);
        return result;
    }

    /** Every record value of the output topic, read with {@code isolation} to its end. */
    private List<String> readAll(String isolation) {
        List<String> values = new ArrayList<>();
        try (KafkaConsumer<byte[], byte[]> consumer = newConsumer(isolation, null)) {
            List<TopicPartition> partitions = new ArrayList<>();
            for (int partition = 0; partition < PARTITIONS; partition++) {
                partitions.add(new TopicPartition(output, partition));
            }
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> ends = consumer.endOffsets(partitions, Duration.ofSeconds(60));
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (partitions.stream().anyMatch(p -> consumer.position(p) < ends.get(p))) {
                check(Instant.now().isBefore(deadline), "timed out reading " + isolation + " to " + ends);
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(200))) {
                    values.add(new String(record.value(), StandardCharsets.UTF_8));
                }
            }
        }
        return values;
    }
}
