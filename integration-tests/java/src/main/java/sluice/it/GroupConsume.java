package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;
import static sluice.it.Checks.waitFor;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Java consumers in a classic group.
 *
 * <p>{@code run BOOTSTRAP TOPIC GROUP COUNT}: three KafkaConsumers subscribe() to a
 * 12-partition topic while a producer sends COUNT records; a rebalance listener checks that no
 * partition is ever owned by two members at once; one consumer is closed mid-stream and the
 * other two must take over its partitions; every record must be consumed (at-least-once, no
 * gaps) and the committed offsets must end at the log end.
 *
 * <p>{@code resume BOOTSTRAP TOPIC GROUP COUNT}: (after a broker restart) produces COUNT more
 * records; a new consumer in the group must start exactly at the committed offsets.
 *
 * <p>{@code static BOOTSTRAP TOPIC GROUP}: two static members (group.instance.id); one is
 * closed and restarted with the same instance id and must get its partitions back in the same
 * generation, while the other sees no rebalance.
 *
 * <p>Prints a one-line JSON summary.
 */
public final class GroupConsume {
    static final int PARTITIONS = 12;

    private GroupConsume() {}

    public static void main(String[] args) throws Exception {
        switch (args[0]) {
            case "run" -> run(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "resume" -> resume(args[1], args[2], args[3], Integer.parseInt(args[4]));
            case "static" -> StaticMembers.run(args[1], args[2], args[3]);
            default -> Checks.fail("unknown mode " + args[0]);
        }
    }

    static void createTopic(String bootstrap, String topic) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(60, TimeUnit.SECONDS);
        }
    }

    static Properties consumerConfig(String bootstrap, String group) {
        Properties config = new Properties();
        config.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        config.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        config.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        config.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
        config.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "100");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return config;
    }

    static List<TopicPartition> partitions(String topic) {
        List<TopicPartition> partitions = new ArrayList<>();
        for (int partition = 0; partition < PARTITIONS; partition++) {
            partitions.add(new TopicPartition(topic, partition));
        }
        return partitions;
    }

    /** Sends values "{prefix}{i}" for i in [0, count) to partition i % 12; returns offsets. */
    static List<RecordMetadata> produce(String bootstrap, String topic, String prefix, int count, boolean paced)
            throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<java.util.concurrent.Future<RecordMetadata>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int index = 0; index < count; index++) {
                byte[] value = (prefix + index).getBytes(StandardCharsets.UTF_8);
                futures.add(producer.send(new ProducerRecord<>(topic, index % PARTITIONS, null, value)));
                if (paced && index % 100 == 99) {
                    producer.flush();
                    Thread.sleep(100);
                }
            }
            producer.flush();
        }
        List<RecordMetadata> sent = new ArrayList<>();
        for (var future : futures) {
            sent.add(future.get(60, TimeUnit.SECONDS));
        }
        return sent;
    }

    /** One consumer thread: poll, remember what was seen, commitSync, until told to stop. */
    static final class Member implements Runnable, ConsumerRebalanceListener {
        final int id;
        final KafkaConsumer<String, String> consumer;
        final Map<TopicPartition, Integer> owners;
        final Map<String, Integer> seen;
        final Map<TopicPartition, Set<Long>> offsets;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger violations;
        final Set<TopicPartition> assigned = ConcurrentHashMap.newKeySet();
        volatile Throwable failure;

        Member(int id, Properties config, String topic, Map<TopicPartition, Integer> owners, Map<String, Integer> seen,
                Map<TopicPartition, Set<Long>> offsets, AtomicInteger violations) {
            this.id = id;
            this.consumer = new KafkaConsumer<>(config);
            this.owners = owners;
            this.seen = seen;
            this.offsets = offsets;
            this.violations = violations;
            consumer.subscribe(List.of(topic), this);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            synchronized (owners) {
                for (TopicPartition partition : partitions) {
                    Integer owner = owners.get(partition);
                    if (owner != null && owner != id) {
                        System.err.println("partition " + partition + " given to " + id + " while owned by " + owner);
                        violations.incrementAndGet();
                    }
                    owners.put(partition, id);
                }
            }
            assigned.addAll(partitions);
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            release(partitions);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            release(partitions);
        }

        private void release(Collection<TopicPartition> partitions) {
            synchronized (owners) {
                for (TopicPartition partition : partitions) {
                    owners.remove(partition, id);
                }
            }
            assigned.removeAll(partitions);
        }

        @Override
        public void run() {
            try {
                while (!stop.get()) {
                    ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> record : records) {
                        seen.merge(record.value(), 1, Integer::sum);
                        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
                        offsets.computeIfAbsent(partition, p -> ConcurrentHashMap.newKeySet()).add(record.offset());
                    }
                    if (!records.isEmpty()) {
                        consumer.commitSync(Duration.ofSeconds(30));
                    }
                }
                consumer.close();
            } catch (Throwable error) {
                failure = error;
                error.printStackTrace();
            }
        }
    }

    static void run(String bootstrap, String topic, String group, int count) throws Exception {
        createTopic(bootstrap, topic);
        Map<TopicPartition, Integer> owners = new HashMap<>();
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        Map<TopicPartition, Set<Long>> offsets = new ConcurrentHashMap<>();
        AtomicInteger violations = new AtomicInteger();
        List<Member> members = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int id = 0; id < 3; id++) {
            Member member = new Member(id, consumerConfig(bootstrap, group), topic, owners, seen, offsets, violations);
            members.add(member);
            Thread thread = new Thread(member, "member-" + id);
            threads.add(thread);
            thread.start();
        }
        List<RecordMetadata> sent = new ArrayList<>();
        Thread producer = new Thread(() -> {
            try {
                sent.addAll(produce(bootstrap, topic, "v", count, true));
            } catch (Exception error) {
                error.printStackTrace();
                Checks.fail("producer: " + error);
            }
        }, "producer");
        producer.start();
        waitFor("all three members to own partitions", () -> members.stream().allMatch(m -> !m.assigned.isEmpty()));
        waitFor("a third of the records", () -> seen.size() >= count / 3);
        Member closed = members.get(2);
        closed.stop.set(true);
        threads.get(2).join(60_000);
        waitFor("the other two to own all partitions", () -> {
            synchronized (owners) {
                return owners.size() == PARTITIONS && !owners.containsValue(2);
            }
        });
        boolean tookOver = members.get(0).assigned.size() + members.get(1).assigned.size() == PARTITIONS;
        producer.join(120_000);
        checkEqual(count, sent.size(), "records produced");
        waitFor("every record", () -> seen.size() == count);
        for (int id = 0; id < 2; id++) {
            members.get(id).stop.set(true);
            threads.get(id).join(60_000);
        }
        for (Member member : members) {
            check(member.failure == null, "member " + member.id + " failed: " + member.failure);
        }
        List<Long> ends = new ArrayList<>();
        for (TopicPartition partition : partitions(topic)) {
            long end = sent.stream().filter(m -> m.partition() == partition.partition()).count();
            ends.add(end);
            Set<Long> got = new TreeSet<>(offsets.getOrDefault(partition, Set.of()));
            Set<Long> expected = new TreeSet<>();
            for (long offset = 0; offset < end; offset++) {
                expected.add(offset);
            }
            checkEqual(expected, got, "offsets consumed from " + partition);
        }
        for (int index = 0; index < count; index++) {
            check(seen.containsKey("v" + index), "record v" + index + " never consumed");
        }
        List<Long> committed = committed(bootstrap, topic, group);
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", sent.size());
        summary.put("distinct_consumed", seen.size());
        summary.put("violations", violations.get());
        summary.put("took_over", tookOver);
        summary.put("ends", ends);
        summary.put("committed", committed);
        System.out.println(Checks.json(summary));
    }

    static List<Long> committed(String bootstrap, String topic, String group) {
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig(bootstrap, group))) {
            Map<TopicPartition, OffsetAndMetadata> found =
                    consumer.committed(new HashSet<>(partitions(topic)), Duration.ofSeconds(30));
            List<Long> committed = new ArrayList<>();
            for (TopicPartition partition : partitions(topic)) {
                OffsetAndMetadata offset = found.get(partition);
                committed.add(offset == null ? -1L : offset.offset());
            }
            return committed;
        }
    }

    static void resume(String bootstrap, String topic, String group, int count) throws Exception {
        List<RecordMetadata> sent = produce(bootstrap, topic, "r", count, false);
        Map<Integer, Long> firstOffsets = new HashMap<>();
        Map<String, Integer> seen = new HashMap<>();
        int consumed = 0;
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(consumerConfig(bootstrap, group))) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Checks.DEADLINE.toNanos();
            while (consumed < count) {
                check(System.nanoTime() < deadline, "timed out: consumed " + consumed + " of " + count);
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(200))) {
                    firstOffsets.putIfAbsent(record.partition(), record.offset());
                    seen.merge(record.value(), 1, Integer::sum);
                    consumed++;
                }
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        List<Long> first = new ArrayList<>();
        for (int partition = 0; partition < PARTITIONS; partition++) {
            first.add(firstOffsets.getOrDefault(partition, -1L));
        }
        for (int index = 0; index < count; index++) {
            checkEqual(1, seen.get("r" + index), "times r" + index + " was consumed");
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", sent.size());
        summary.put("consumed", consumed);
        summary.put("first_offsets", first);
        System.out.println(Checks.json(summary));
    }
}
