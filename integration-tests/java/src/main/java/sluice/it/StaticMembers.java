package sluice.it;

import static sluice.it.Checks.check;
import static sluice.it.Checks.checkEqual;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;

/**
 * Static membership (KIP-345): a member restarted with the same group.instance.id gets its
 * partitions back in the same generation, and the other member sees no rebalance.
 */
final class StaticMembers {
    private StaticMembers() {}

    /** Counts the callbacks one consumer received. */
    static final class Counting implements ConsumerRebalanceListener {
        final AtomicInteger assignedCalls = new AtomicInteger();
        final AtomicInteger revokedCalls = new AtomicInteger();

        @Override
        public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
            assignedCalls.incrementAndGet();
        }

        @Override
        public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
            if (!partitions.isEmpty()) {
                revokedCalls.incrementAndGet();
            }
        }
    }

    static KafkaConsumer<String, String> member(String bootstrap, String topic, String group, String instance,
            Counting listener) {
        Properties config = GroupConsume.consumerConfig(bootstrap, group);
        config.put(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG, instance);
        // Long enough that the broker keeps the closed member while it restarts.
        config.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "45000");
        KafkaConsumer<String, String> consumer = new KafkaConsumer<>(config);
        consumer.subscribe(List.of(topic), listener);
        return consumer;
    }

    /** Polls every consumer in turn until `done` holds. */
    static void pollUntil(List<KafkaConsumer<String, String>> consumers, String what,
            java.util.function.Supplier<Boolean> done) {
        long deadline = System.nanoTime() + Checks.DEADLINE.toNanos();
        while (!done.get()) {
            check(System.nanoTime() < deadline, "timed out waiting for " + what);
            for (KafkaConsumer<String, String> consumer : consumers) {
                consumer.poll(Duration.ofMillis(100));
            }
        }
    }

    static Set<Integer> owned(KafkaConsumer<String, String> consumer) {
        Set<Integer> owned = new TreeSet<>();
        consumer.assignment().forEach(partition -> owned.add(partition.partition()));
        return owned;
    }

    static void run(String bootstrap, String topic, String group) throws Exception {
        GroupConsume.createTopic(bootstrap, topic);
        Counting listenerA = new Counting();
        Counting listenerB = new Counting();
        KafkaConsumer<String, String> a = member(bootstrap, topic, group, "static-a", listenerA);
        KafkaConsumer<String, String> b = member(bootstrap, topic, group, "static-b", listenerB);
        pollUntil(List.of(a, b), "both members to own partitions",
                () -> owned(a).size() + owned(b).size() == GroupConsume.PARTITIONS && !owned(a).isEmpty()
                        && !owned(b).isEmpty());
        Set<Integer> ownedByA = owned(a);
        Set<Integer> ownedByB = owned(b);
        int generationBefore = a.groupMetadata().generationId();
        checkEqual(generationBefore, b.groupMetadata().generationId(), "generation of b");
        int bAssignedBefore = listenerB.assignedCalls.get();
        // A static member does not leave the group on close: the broker keeps its place.
        a.close();

        Counting listenerA2 = new Counting();
        KafkaConsumer<String, String> a2 = member(bootstrap, topic, group, "static-a", listenerA2);
        pollUntil(List.of(a2, b), "the restarted member to own partitions", () -> !owned(a2).isEmpty());
        // Give a (wrong) rebalance time to show up on b.
        long settle = System.nanoTime() + Duration.ofSeconds(3).toNanos();
        while (System.nanoTime() < settle) {
            a2.poll(Duration.ofMillis(100));
            b.poll(Duration.ofMillis(100));
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("same_partitions", ownedByA.equals(owned(a2)));
        summary.put("b_kept_partitions", ownedByB.equals(owned(b)));
        summary.put("generation_before", generationBefore);
        summary.put("generation_after", a2.groupMetadata().generationId());
        summary.put("b_generation_after", b.groupMetadata().generationId());
        summary.put("b_assigned_calls_after_restart", listenerB.assignedCalls.get() - bAssignedBefore);
        summary.put("b_revoked_calls", listenerB.revokedCalls.get());
        summary.put("partitions", List.of(new ArrayList<>(ownedByA), new ArrayList<>(ownedByB)));
        a2.close();
        b.close();
        System.out.println(Checks.json(summary));
    }
}
