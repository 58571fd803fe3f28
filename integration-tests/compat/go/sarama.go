package main

import (
	"context"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// saramaVersion is the protocol level sarama is told to speak: the newest it knows.
var saramaVersion = sarama.V4_0_0_0

// saramaClient is the scenario over sarama: SyncProducer, Consumer, ConsumerGroup,
// OffsetManager and ClusterAdmin.
type saramaClient struct {
	bootstrap []string
	admin     sarama.ClusterAdmin
}

func saramaConfig() *sarama.Config {
	config := sarama.NewConfig()
	config.Version = saramaVersion
	config.ClientID = "sluice-compat-sarama"
	config.Producer.Return.Successes = true
	config.Producer.RequiredAcks = sarama.WaitForAll
	config.Producer.Partitioner = sarama.NewManualPartitioner
	config.Consumer.Return.Errors = true
	config.Consumer.Offsets.Initial = sarama.OffsetOldest
	config.Consumer.Offsets.AutoCommit.Enable = false
	return config
}

func newSarama(bootstrap string) (client, error) {
	brokers := []string{bootstrap}
	admin, err := sarama.NewClusterAdmin(brokers, saramaConfig())
	if err != nil {
		return nil, err
	}
	return &saramaClient{bootstrap: brokers, admin: admin}, nil
}

func (s *saramaClient) name() string { return "sarama" }
func (s *saramaClient) close()       { _ = s.admin.Close() }

func (s *saramaClient) createTopics(_ context.Context, prefix string) (string, error) {
	retention := retentionMs
	topics := map[string]*sarama.TopicDetail{
		topicName(prefix, "idempotent"): {NumPartitions: 1, ReplicationFactor: 1},
		topicName(prefix, "group"):      {NumPartitions: groupPartitions, ReplicationFactor: 1},
		topicName(prefix, "admin"): {NumPartitions: adminPartitions, ReplicationFactor: 1,
			ConfigEntries: map[string]*string{"retention.ms": &retention}},
	}
	for _, codec := range codecs {
		topics[topicName(prefix, codec)] = &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}
	}
	for name, detail := range topics {
		if err := s.admin.CreateTopic(name, detail, false); err != nil {
			return "", fmt.Errorf("create %s: %w", name, err)
		}
	}
	return fmt.Sprintf("%d topics", len(topics)), nil
}

func (s *saramaClient) describeTopics(_ context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "admin")
	metadata, err := s.admin.DescribeTopics([]string{topic})
	if err != nil {
		return "", err
	}
	if len(metadata) != 1 || metadata[0].Err != sarama.ErrNoError {
		return "", fmt.Errorf("described %+v", metadata)
	}
	partitions := metadata[0].Partitions
	if len(partitions) != adminPartitions {
		return "", fmt.Errorf("%d partitions", len(partitions))
	}
	seen := map[int32]bool{}
	for _, p := range partitions {
		if p.Leader != 1 || fmt.Sprint(p.Replicas) != "[1]" || fmt.Sprint(p.Isr) != "[1]" {
			return "", fmt.Errorf("partition %+v", p)
		}
		seen[p.ID] = true
	}
	if len(seen) != adminPartitions || !seen[0] || !seen[1] || !seen[2] {
		return "", fmt.Errorf("partition ids %v", seen)
	}
	return "3 partitions, leader 1", nil
}

func (s *saramaClient) describeConfigs(_ context.Context, prefix string) (string, error) {
	resource := sarama.ConfigResource{Type: sarama.TopicResource, Name: topicName(prefix, "admin")}
	entries, err := s.admin.DescribeConfig(resource)
	if err != nil {
		return "", err
	}
	for _, entry := range entries {
		if entry.Name == "retention.ms" {
			if entry.Value != retentionMs {
				return "", fmt.Errorf("retention.ms = %q", entry.Value)
			}
			return "retention.ms=" + retentionMs, nil
		}
	}
	return "", fmt.Errorf("no retention.ms among %d configs", len(entries))
}

func saramaCodec(codec string) sarama.CompressionCodec {
	switch codec {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

func (s *saramaClient) produce(topic string, records []record, config *sarama.Config) error {
	producer, err := sarama.NewSyncProducer(s.bootstrap, config)
	if err != nil {
		return err
	}
	defer func() { _ = producer.Close() }()
	for _, r := range records {
		headers := make([]sarama.RecordHeader, len(r.headers))
		for index, h := range r.headers {
			headers[index] = sarama.RecordHeader{Key: []byte(h.key), Value: h.value}
		}
		message := &sarama.ProducerMessage{
			Topic: topic, Partition: r.partition, Key: sarama.ByteEncoder(r.key),
			Value: sarama.ByteEncoder(r.value), Headers: headers, Timestamp: time.UnixMilli(r.timestampMs),
		}
		partition, offset, err := producer.SendMessage(message)
		if err != nil {
			return err
		}
		if partition != r.partition || offset != r.offset {
			return fmt.Errorf("record %q stored at p%d@%d, expected p%d@%d", r.value, partition, offset, r.partition, r.offset)
		}
	}
	return nil
}

func fromSarama(message *sarama.ConsumerMessage) record {
	headers := make([]header, len(message.Headers))
	for index, h := range message.Headers {
		headers[index] = header{string(h.Key), h.Value}
	}
	return record{
		offset: message.Offset, partition: message.Partition, key: message.Key, value: message.Value,
		headers: headers, timestampMs: message.Timestamp.UnixMilli(),
	}
}

func (s *saramaClient) consumeAssigned(ctx context.Context, topic string, offset int64, count int) ([]record, error) {
	consumer, err := sarama.NewConsumer(s.bootstrap, saramaConfig())
	if err != nil {
		return nil, err
	}
	defer func() { _ = consumer.Close() }()
	partition, err := consumer.ConsumePartition(topic, 0, offset)
	if err != nil {
		return nil, err
	}
	defer func() { _ = partition.Close() }()
	var got []record
	for len(got) < count {
		select {
		case message := <-partition.Messages():
			got = append(got, fromSarama(message))
		case failure := <-partition.Errors():
			return got, failure.Err
		case <-ctx.Done():
			return got, fmt.Errorf("consumed %d of %d: %w", len(got), count, ctx.Err())
		}
	}
	return got, nil
}

func (s *saramaClient) roundTrip(ctx context.Context, prefix, codec string, baseMs int64) (string, error) {
	topic := topicName(prefix, codec)
	records := makeRecords(codec, baseMs)
	config := saramaConfig()
	config.Producer.Compression = saramaCodec(codec)
	if err := s.produce(topic, records, config); err != nil {
		return "", err
	}
	got, err := s.consumeAssigned(ctx, topic, 0, recordCount)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d records, exact", recordCount), checkExact(records, got)
}

func (s *saramaClient) headersTimestamps(ctx context.Context, prefix string, baseMs int64) (string, error) {
	got, err := s.consumeAssigned(ctx, topicName(prefix, "none"), 0, recordCount)
	if err != nil {
		return "", err
	}
	return "duplicate and binary headers, timestamps", checkExact(makeRecords("none", baseMs), got)
}

func (s *saramaClient) consumeAssign(ctx context.Context, prefix string, baseMs int64) (string, error) {
	got, err := s.consumeAssigned(ctx, topicName(prefix, "none"), assignOffset, recordCount-assignOffset)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("ConsumePartition at offset %d", assignOffset), checkExact(makeRecords("none", baseMs)[assignOffset:], got)
}

func (s *saramaClient) idempotent(ctx context.Context, prefix string, baseMs int64) (string, error) {
	topic := topicName(prefix, "idempotent")
	records := makeRecords("idempotent", baseMs)
	config := saramaConfig()
	config.Producer.Idempotent = true
	config.Net.MaxOpenRequests = 1
	if err := s.produce(topic, records, config); err != nil {
		return "", err
	}
	got, err := s.consumeAssigned(ctx, topic, 0, recordCount)
	if err != nil {
		return "", err
	}
	return "Producer.Idempotent=true", checkExact(records, got)
}

// groupHandler collects every record it is given and marks it consumed.
type groupHandler struct {
	records  chan record
	sessions chan sarama.ConsumerGroupSession
}

func (h *groupHandler) Setup(session sarama.ConsumerGroupSession) error {
	h.sessions <- session
	return nil
}
func (h *groupHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *groupHandler) ConsumeClaim(session sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for message := range claim.Messages() {
		session.MarkMessage(message, "")
		h.records <- fromSarama(message)
	}
	return nil
}

func (s *saramaClient) consumeGroup(ctx context.Context, prefix string, baseMs int64) (string, error) {
	topic := topicName(prefix, "group")
	records := groupRecords(baseMs)
	if err := s.produce(topic, records, saramaConfig()); err != nil {
		return "", err
	}
	group := topicName(prefix, "group-consumers")
	consumer, err := sarama.NewConsumerGroup(s.bootstrap, group, saramaConfig())
	if err != nil {
		return "", err
	}
	defer func() { _ = consumer.Close() }()
	handler := &groupHandler{records: make(chan record, recordCount), sessions: make(chan sarama.ConsumerGroupSession, 4)}
	consumeCtx, stop := context.WithCancel(ctx)
	defer stop()
	consumed := make(chan error, 1)
	go func() { consumed <- consumer.Consume(consumeCtx, []string{topic}, handler) }()
	var session sarama.ConsumerGroupSession
	got := map[string]record{}
	for len(got) < len(records) {
		select {
		case r := <-handler.records:
			got[string(r.value)] = r
		case session = <-handler.sessions:
		case err := <-consumed:
			return "", fmt.Errorf("group session ended after %d records: %v", len(got), err)
		case <-ctx.Done():
			return "", fmt.Errorf("group consumed %d of %d: %w", len(got), len(records), ctx.Err())
		}
	}
	if err := checkGroupRecords(records, got); err != nil {
		return "", err
	}
	if session == nil {
		return "", fmt.Errorf("no group session")
	}
	session.Commit()
	if err := s.checkCommitted(group, topic, map[int32]int64{0: recordCount / groupPartitions, 1: recordCount / groupPartitions}); err != nil {
		return "", err
	}
	return fmt.Sprintf("subscribe, %d records, committed %d per partition", recordCount, recordCount/groupPartitions), nil
}

func (s *saramaClient) checkCommitted(group, topic string, want map[int32]int64) error {
	partitions := make([]int32, 0, len(want))
	for p := range want {
		partitions = append(partitions, p)
	}
	fetched, err := s.admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: partitions})
	if err != nil {
		return err
	}
	for p, at := range want {
		block := fetched.GetBlock(topic, p)
		if block == nil || block.Err != sarama.ErrNoError || block.Offset != at {
			return fmt.Errorf("partition %d fetched %+v, expected %d", p, block, at)
		}
	}
	return nil
}

func (s *saramaClient) commitFetchOffsets(_ context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "group")
	group := topicName(prefix, "committer")
	client, err := sarama.NewClient(s.bootstrap, saramaConfig())
	if err != nil {
		return "", err
	}
	defer func() { _ = client.Close() }()
	manager, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		return "", err
	}
	for p, at := range committedOffsets {
		partition, err := manager.ManagePartition(topic, p)
		if err != nil {
			return "", err
		}
		partition.MarkOffset(at, "")
		defer func() { _ = partition.Close() }()
	}
	manager.Commit()
	if err := s.checkCommitted(group, topic, committedOffsets); err != nil {
		return "", err
	}
	return fmt.Sprintf("committed and fetched %v", committedOffsets), manager.Close()
}

func (s *saramaClient) deleteTopics(ctx context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "admin")
	if err := s.admin.DeleteTopic(topic); err != nil {
		return "", err
	}
	for {
		topics, err := s.admin.ListTopics()
		if err != nil {
			return "", err
		}
		if _, listed := topics[topic]; !listed {
			return "deleted and gone from the topic list", nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("topic still listed: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
