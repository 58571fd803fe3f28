package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;
import static sluice.it.Checks.waitFor;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
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
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;

/**
 * Java consumers with {@code group.protocol=consumer} (KIP-848: the broker assigns partitions).
 *
 * <p>{@code run BOOTSTRAP TOPIC GROUP COUNT ASSIGNOR}: three KafkaConsumers subscribe() to a
 * 12-partition topic while a producer sends COUNT records, asking for the server-side assignor
 * ASSIGNOR; the rebalance listener checks that no partition is ever owned by two members at
 * once. Under load a fourth member joins and then leaves, and one of the three is closed: the
 * other two must take over. Every record must be consumed (no gaps) and the committed offsets
 * must end at the log end. Admin's describeConsumerGroups (ConsumerGroupDescribe) must show a
 * consumer group using ASSIGNOR.
 *
 * <p>{@code resume BOOTSTRAP TOPIC GROUP COUNT ASSIGNOR}: produces COUNT more records; a new
 * consumer-protocol member must start exactly at the committed offsets.
 *
 * <p>Prints a one-line JSON summary.
 */
public final class ConsumerProtocolGroup {
    private ConsumerProtocolGroup() {}

    public static void main(String[] args) throws Exception {
        String assignor = args[5];
        switch (args[0]) {
            case "run" -> run(args[1], args[2], args[3], Integer.parseInt(args[4]), assignor);
            case "resume" -> resume(args[1], args[2], args[3], Integer.parseInt(args[4]), assignor);
            default -> Checks.fail("unknown mode " + args[0]);
        }
    }

    /** Session timeout and heartbeat interval are the broker's under this protocol. */
    static Properties consumerConfig(String bootstrap, String group, String assignor) {
        Properties config = GroupConsume.consumerConfig(bootstrap, group);
        config.remove(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG);
        config.remove(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG);
        config.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer");
        config.put(ConsumerConfig.GROUP_REMOTE_ASSIGNOR_CONFIG, assignor);
        return config;
    }

    /**
     * One consumer thread: poll, remember what was seen, commitSync, until told to stop. A
     * commit refused with a stale member epoch (the broker moved the member to a new epoch
     * while the commit was in flight; Kafka 4.1 answers the same) is retried once the new
     * epoch has arrived, as the exception asks.
     */
    static final class Member implements Runnable, ConsumerRebalanceListener {
        final int id;
        final KafkaConsumer<String, String> consumer;
        final Map<TopicPartition, Integer> owners;
        final Map<String, Integer> seen;
        final Map<TopicPartition, Set<Long>> offsets;
        final AtomicBoolean stop = new AtomicBoolean();
        final AtomicInteger violations;
        final AtomicInteger staleCommits;
        final Set<TopicPartition> assigned = ConcurrentHashMap.newKeySet();
        volatile Throwable failure;

        Member(int id, Properties config, String topic, Map<TopicPartition, Integer> owners, Map<String, Integer> seen,
                Map<TopicPartition, Set<Long>> offsets, AtomicInteger violations, AtomicInteger staleCommits) {
            this.id = id;
            this.consumer = new KafkaConsumer<>(config);
            this.owners = owners;
            this.seen = seen;
            this.offsets = offsets;
            this.violations = violations;
            this.staleCommits = staleCommits;
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

        /** Commits what was consumed; false when the epoch was stale (retry later). */
        private boolean commit() {
            try {
                consumer.commitSync(Duration.ofSeconds(30));
                return true;
            } catch (CommitFailedException stale) {
                staleCommits.incrementAndGet();
                return false;
            }
        }

        @Override
        public void run() {
            try {
                boolean uncommitted = false;
                while (!stop.get()) {
                    ConsumerRecords<String, String> records = consumer.poll(Duration.ofMillis(200));
                    for (ConsumerRecord<String, String> record : records) {
                        seen.merge(record.value(), 1, Integer::sum);
                        TopicPartition partition = new TopicPartition(record.topic(), record.partition());
                        offsets.computeIfAbsent(partition, p -> ConcurrentHashMap.newKeySet()).add(record.offset());
                    }
                    if (!records.isEmpty() || uncommitted) {
                        uncommitted = !commit();
                    }
                }
                for (int attempt = 0; uncommitted && attempt < 50; attempt++) {
                    consumer.poll(Duration.ofMillis(200));
                    uncommitted = !commit();
                }
                check(!uncommitted, "member " + id + " could not commit before closing");
                consumer.close();
            } catch (Throwable error) {
                failure = error;
                error.printStackTrace();
            }
        }
    }

    static Thread start(Member member) {
        Thread thread = new Thread(member, "member-" + member.id);
        thread.start();
        return thread;
    }

    static void stop(Member member, Thread thread) throws InterruptedException {
        member.stop.set(true);
        thread.join(60_000);
        check(!thread.isAlive(), "member " + member.id + " did not close");
    }

    static ConsumerGroupDescription describe(String bootstrap, String group) throws Exception {
        Properties config = new Properties();
        config.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(config)) {
            return admin.describeConsumerGroups(List.of(group)).describedGroups().get(group).get(60, TimeUnit.SECONDS);
        }
    }

    static boolean ownedOnlyBy(Map<TopicPartition, Integer> owners, Set<Integer> ids) {
        synchronized (owners) {
            return owners.size() == GroupConsume.PARTITIONS && ids.containsAll(owners.values());
        }
    }

    static void run(String bootstrap, String topic, String group, int count, String assignor) throws Exception {
        GroupConsume.createTopic(bootstrap, topic);
        Map<TopicPartition, Integer> owners = new HashMap<>();
        Map<String, Integer> seen = new ConcurrentHashMap<>();
        Map<TopicPartition, Set<Long>> offsets = new ConcurrentHashMap<>();
        AtomicInteger violations = new AtomicInteger();
        AtomicInteger staleCommits = new AtomicInteger();
        List<Member> members = new ArrayList<>();
        List<Thread> threads = new ArrayList<>();
        for (int id = 0; id < 3; id++) {
            members.add(new Member(
                    id, consumerConfig(bootstrap, group, assignor), topic, owners, seen, offsets, violations, staleCommits));
            threads.add(start(members.get(id)));
        }
        List<RecordMetadata> sent = new ArrayList<>();
        Thread producer = new Thread(() -> {
            try {
                sent.addAll(GroupConsume.produce(bootstrap, topic, "v", count, true));
            } catch (Exception error) {
                error.printStackTrace();
                Checks.fail("producer: " + error);
            }
        }, "producer");
        producer.start();
        waitFor("all three members to own partitions", () -> members.subList(0, 3).stream()
                .allMatch(m -> !m.assigned.isEmpty()));
        waitFor("the three to own all partitions", () -> ownedOnlyBy(owners, Set.of(0, 1, 2)));
        ConsumerGroupDescription described = describe(bootstrap, group);
        waitFor("a quarter of the records", () -> seen.size() >= count / 4);
        // Churn under load: a fourth member joins, then one of the three and the fourth leave.
        members.add(new Member(
                3, consumerConfig(bootstrap, group, assignor), topic, owners, seen, offsets, violations, staleCommits));
        threads.add(start(members.get(3)));
        waitFor("the fourth member to own partitions", () -> !members.get(3).assigned.isEmpty());
        waitFor("half of the records", () -> seen.size() >= count / 2);
        stop(members.get(2), threads.get(2));
        stop(members.get(3), threads.get(3));
        waitFor("the other two to own all partitions", () -> ownedOnlyBy(owners, Set.of(0, 1)));
        boolean tookOver = members.get(0).assigned.size() + members.get(1).assigned.size() == GroupConsume.PARTITIONS;
        producer.join(120_000);
        checkEqual(count, sent.size(), "records produced");
        waitFor("every record", () -> seen.size() == count);
        for (int id = 0; id < 2; id++) {
            stop(members.get(id), threads.get(id));
        }
        for (Member member : members) {
            check(member.failure == null, "member " + member.id + " failed: " + member.failure);
        }
        List<Long> ends = new ArrayList<>();
        for (TopicPartition partition : GroupConsume.partitions(topic)) {
            long end = sent.stream().filter(m -> m.partition() == partition.partition()).count();
            ends.add(end);
            Set<Long> got = new TreeSet<>(offsets.getOrDefault(partition, Set.of()));
            Set<Long> expected = new TreeSet<>();
            for (long offset = 0; offset < end; offset++) {
                expected.add(offset);
            }
            checkEqual(expected, got, "offsets consumed from " + partition);
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", sent.size());
        summary.put("distinct_consumed", seen.size());
        summary.put("violations", violations.get());
        summary.put("stale_commits", staleCommits.get());
        summary.put("took_over", tookOver);
        summary.put("ends", ends);
        summary.put("committed", GroupConsume.committed(bootstrap, topic, group));
        summary.put("group_type", described.type().toString());
        summary.put("assignor", described.partitionAssignor());
        summary.put("described_members", described.members().size());
        summary.put("described_partitions", described.members().stream()
                .mapToInt(m -> m.assignment().topicPartitions().size()).sum());
        System.out.println(Checks.json(summary));
    }

    static void resume(String bootstrap, String topic, String group, int count, String assignor) throws Exception {
        List<RecordMetadata> sent = GroupConsume.produce(bootstrap, topic, "r", count, false);
        Map<Integer, Long> firstOffsets = new HashMap<>();
        Map<String, Integer> seen = new HashMap<>();
        int consumed = 0;
        try (var consumer = new org.apache.kafka.clients.consumer.KafkaConsumer<String, String>(
                consumerConfig(bootstrap, group, assignor))) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + Checks.DEADLINE.toNanos();
            while (consumed < count) {
                check(System.nanoTime() < deadline, "timed out: consumed " + consumed + " of " + count);
                for (var record : consumer.poll(Duration.ofMillis(200))) {
                    firstOffsets.putIfAbsent(record.partition(), record.offset());
                    seen.merge(record.value(), 1, Integer::sum);
                    consumed++;
                }
            }
            consumer.commitSync(Duration.ofSeconds(30));
        }
        List<Long> first = new ArrayList<>();
        for (int partition = 0; partition < GroupConsume.PARTITIONS; partition++) {
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
