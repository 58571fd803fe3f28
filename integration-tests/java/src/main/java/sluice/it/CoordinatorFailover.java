package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.json;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * A classic consumer group whose coordinator is killed while it consumes.
 *
 * <p>{@code run BOOTSTRAP TOPIC GROUP COUNT}: creates an RF=3 topic of 6 partitions, sends COUNT
 * records, and starts two members that poll slowly and commitSync after every poll. Once a
 * third of the records are consumed it prints {@code READY} and waits for a line on stdin (the
 * test kills the group's coordinator meanwhile); then it sends COUNT more records and waits
 * until every record was consumed and the committed offsets reached the log ends.
 *
 * <p>Checked while consuming: per member and partition, records arrive at consecutive offsets
 * while it owns the partition; no record below an offset whose commit succeeded is ever
 * delivered again (a lost commit would do that). Prints a one-line JSON summary.
 */
public final class CoordinatorFailover {
    static final int PARTITIONS = 6;
    static final Duration DEADLINE = Duration.ofSeconds(120);

    private CoordinatorFailover() {}

    public static void main(String[] args) throws Exception {
        check(args.length == 5 && args[0].equals("run"), "usage: run BOOTSTRAP TOPIC GROUP COUNT");
        run(args[1], args[2], args[3], Integer.parseInt(args[4]));
    }

    /** One member: poll, check order and redeliveries, commitSync, until told to stop. */
    static final class Member implements Runnable, ConsumerRebalanceListener {
        final KafkaConsumer<String, String> consumer;
        final Map<TopicPartition, Long> committed;
        final Map<TopicPartition, Set<Long>> seen;
        final AtomicInteger violations;
        final AtomicInteger consumed;
        final Map<TopicPartition, Long> next = new HashMap<>();
        final AtomicBoolean stop = new AtomicBoolean();
        volatile Throwable failure;

        Member(Properties config, String topic, Map<TopicPartition, Long> committed,
                Map<TopicPartition, Set<Long>> seen, AtomicInteger violations, AtomicInteger consumed) {
            this.consumer = new KafkaConsumer<>(config);
            this.committed = committed;
            this.seen = seen;
            this.violations = violations;
            this.consumed = consumed;
            consumer.subscribe(List.of(topic), this);
        }

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {}

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            partitions.forEach(next::remove);
        }

        @Override
        public void onPartitionsLost(Collection<TopicPartition> partitions) {
            partitions.forEach(next::remove);
        }

        @Override
        public void run() {
            try {
                while (!stop.get()) {
                    var records = consumer.poll(Duration.ofMillis(200));
                    Map<TopicPartition, OffsetAndMetadata> positions = new HashMap<>();
                    for (ConsumerRecord<String, String> record : records) {
                        accept(record);
                        var partition = new TopicPartition(record.topic(), record.partition());
                        positions.put(partition, new OffsetAndMetadata(record.offset() + 1));
                    }
                    if (positions.isEmpty()) {
                        continue;
                    }
                    try {
                        consumer.commitSync(positions);
                        positions.forEach((partition, position) ->
                                committed.merge(partition, position.offset(), Math::max));
                    } catch (Exception error) {
                        // A commit lost to the failover or a rebalance: the records come again.
                        System.err.println("commit failed: " + error);
                    }
                    Thread.sleep(20);
                }
            } catch (Throwable error) {
                failure = error;
            } finally {
                consumer.close();
            }
        }

        void accept(ConsumerRecord<String, String> record) {
            var partition = new TopicPartition(record.topic(), record.partition());
            Long expected = next.get(partition);
            if (expected != null && record.offset() != expected) {
                System.err.println("out of order on " + partition + ": " + record.offset() + " after " + expected);
                violations.incrementAndGet();
            }
            long floor = committed.getOrDefault(partition, 0L);
            boolean again = !seen.computeIfAbsent(partition, p -> ConcurrentHashMap.newKeySet()).add(record.offset());
            if (again && record.offset() < floor) {
                System.err.println("redelivered below a commit on " + partition + ": " + record.offset() + " < " + floor);
                violations.incrementAndGet();
            }
            if (!again) {
                consumed.incrementAndGet();
            }
            next.put(partition, record.offset() + 1);
        }
    }

    static void run(String bootstrap, String topic, String group, int count) throws Exception {
        Properties adminConfig = new Properties();
        adminConfig.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(adminConfig)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 3))).all().get(60, TimeUnit.SECONDS);
            produce(bootstrap, topic, "a", count);
            Map<TopicPartition, Long> committed = new ConcurrentHashMap<>();
            Map<TopicPartition, Set<Long>> seen = new ConcurrentHashMap<>();
            AtomicInteger violations = new AtomicInteger();
            AtomicInteger consumed = new AtomicInteger();
            List<Member> members = new ArrayList<>();
            List<Thread> threads = new ArrayList<>();
            for (int index = 0; index < 2; index++) {
                Member member = new Member(consumerConfig(bootstrap, group), topic, committed, seen, violations, consumed);
                members.add(member);
                Thread thread = new Thread(member, "member-" + index);
                thread.start();
                threads.add(thread);
            }
            waitUntil("a third consumed", () -> consumed.get() >= count / 3 && !committed.isEmpty(), members);
            System.out.println("READY");
            System.out.flush();
            var stdin = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            check("KILLED".equals(stdin.readLine()), "expected KILLED on stdin");
            int consumedAtKill = consumed.get();
            produce(bootstrap, topic, "b", count);
            Map<TopicPartition, Long> ends = endOffsets(admin, topic);
            waitUntil("everything consumed and committed", () -> consumed.get() == 2 * count
                    && ends.entrySet().stream().allMatch(e -> committed.getOrDefault(e.getKey(), 0L).equals(e.getValue())),
                    members);
            for (Member member : members) {
                member.stop.set(true);
            }
            for (Thread thread : threads) {
                thread.join(30_000);
            }
            var stored = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(60, TimeUnit.SECONDS);
            List<Long> storedList = new ArrayList<>();
            List<Long> endList = new ArrayList<>();
            List<Integer> distinct = new ArrayList<>();
            for (int partition = 0; partition < PARTITIONS; partition++) {
                var tp = new TopicPartition(topic, partition);
                OffsetAndMetadata offset = stored.get(tp);
                storedList.add(offset == null ? -1L : offset.offset());
                endList.add(ends.get(tp));
                Set<Long> offsets = seen.getOrDefault(tp, Set.of());
                long below = offsets.stream().filter(o -> o >= 0 && o < ends.get(tp)).count();
                distinct.add((int) below);
            }
            Map<String, Object> summary = new LinkedHashMap<>();
            summary.put("produced", 2 * count);
            summary.put("distinct_consumed", consumed.get());
            summary.put("consumed_at_kill", consumedAtKill);
            summary.put("violations", violations.get());
            summary.put("ends", endList);
            summary.put("distinct_per_partition", distinct);
            summary.put("committed", storedList);
            System.out.println(json(summary));
        }
    }

    static void waitUntil(String what, java.util.function.Supplier<Boolean> probe, List<Member> members)
            throws InterruptedException {
        Instant deadline = Instant.now().plus(DEADLINE);
        while (!probe.get()) {
            for (Member member : members) {
                check(member.failure == null, "member failed: " + member.failure);
            }
            check(Instant.now().isBefore(deadline), "timed out waiting for " + what);
            Thread.sleep(100);
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
        config.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "20");
        config.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        config.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        return config;
    }

    /** Sends values "{prefix}{i}" for i in [0, count) to partition i % PARTITIONS, acks=all. */
    static void produce(String bootstrap, String topic, String prefix, int count) throws Exception {
        Properties config = new Properties();
        config.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        config.put(ProducerConfig.ACKS_CONFIG, "all");
        config.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        config.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        List<java.util.concurrent.Future<?>> futures = new ArrayList<>();
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            for (int index = 0; index < count; index++) {
                byte[] value = (prefix + index).getBytes(StandardCharsets.UTF_8);
                futures.add(producer.send(new ProducerRecord<>(topic, index % PARTITIONS, null, value)));
            }
            producer.flush();
        }
        for (var future : futures) {
            future.get(60, TimeUnit.SECONDS);
        }
    }

    static Map<TopicPartition, Long> endOffsets(Admin admin, String topic) throws Exception {
        Map<TopicPartition, OffsetSpec> wanted = new HashMap<>();
        for (int partition = 0; partition < PARTITIONS; partition++) {
            wanted.put(new TopicPartition(topic, partition), OffsetSpec.latest());
        }
        Map<TopicPartition, Long> ends = new HashMap<>();
        admin.listOffsets(wanted).all().get(60, TimeUnit.SECONDS)
                .forEach((partition, info) -> ends.put(partition, info.offset()));
        return ends;
    }
}
