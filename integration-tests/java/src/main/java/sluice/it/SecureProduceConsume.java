package sluice.it;

import static sluice.it.Checks.check;

import java.io.FileInputStream;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Produce and consume (in a group) over a secured listener: the client's security settings
 * (security.protocol, sasl.*, ssl.* with PEM files) come from a properties file.
 *
 * <p>usage: SecureProduceConsume BOOTSTRAP TOPIC COUNT PROPERTIES_FILE. Prints
 * {"produced": [...], "consumed": [...]} (record values, in order).
 */
public final class SecureProduceConsume {
    private SecureProduceConsume() {}

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        Properties security = new Properties();
        try (FileInputStream in = new FileInputStream(args[3])) {
            security.load(in);
        }
        List<String> produced = new ArrayList<>();
        for (int i = 0; i < count; i++) {
            produced.add(topic + "-secure-" + i);
        }
        Properties producerProps = new Properties();
        producerProps.putAll(security);
        producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        producerProps.put(ProducerConfig.ACKS_CONFIG, "all");
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            for (String value : produced) {
                producer.send(new ProducerRecord<>(topic, value)).get();
            }
        }
        Properties consumerProps = new Properties();
        consumerProps.putAll(security);
        consumerProps.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        consumerProps.put(ConsumerConfig.GROUP_ID_CONFIG, topic + "-group");
        consumerProps.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        consumerProps.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        List<String> consumed = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            Instant deadline = Instant.now().plus(Checks.DEADLINE);
            while (consumed.size() < count) {
                check(Instant.now().isBefore(deadline), "timed out at " + consumed.size() + "/" + count);
                for (ConsumerRecord<String, String> record : consumer.poll(Duration.ofMillis(500))) {
                    consumed.add(record.value());
                }
            }
            consumer.commitSync();
        }
        Map<String, Object> summary = new LinkedHashMap<>();
        summary.put("produced", produced);
        summary.put("consumed", consumed);
        System.out.println(Checks.json(summary));
    }
}
