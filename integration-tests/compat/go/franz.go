package main

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// franz is the scenario over franz-go: kgo for records, kadm for admin and offsets.
type franz struct {
	bootstrap string
	admin     *kadm.Client
	adminKgo  *kgo.Client
}

func newFranz(bootstrap string) (client, error) {
	adminKgo, err := kgo.NewClient(kgo.SeedBrokers(bootstrap))
	if err != nil {
		return nil, err
	}
	return &franz{bootstrap: bootstrap, admin: kadm.NewClient(adminKgo), adminKgo: adminKgo}, nil
}

func (f *franz) name() string { return "franz-go" }
func (f *franz) close()       { f.adminKgo.Close() }

func (f *franz) createTopics(ctx context.Context, prefix string) (string, error) {
	single := []string{topicName(prefix, "idempotent")}
	for _, codec := range codecs {
		single = append(single, topicName(prefix, codec))
	}
	created := 0
	retention := retentionMs
	batches := []struct {
		partitions int32
		configs    map[string]*string
		topics     []string
	}{
		{1, nil, single},
		{groupPartitions, nil, []string{topicName(prefix, "group")}},
		{adminPartitions, map[string]*string{"retention.ms": &retention}, []string{topicName(prefix, "admin")}},
	}
	for _, batch := range batches {
		responses, err := f.admin.CreateTopics(ctx, batch.partitions, 1, batch.configs, batch.topics...)
		if err != nil {
			return "", err
		}
		if err := responses.Error(); err != nil {
			return "", err
		}
		created += len(responses)
	}
	return fmt.Sprintf("%d topics", created), nil
}

func (f *franz) describeTopics(ctx context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "admin")
	details, err := f.admin.ListTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	detail, ok := details[topic]
	if !ok || detail.Err != nil {
		return "", fmt.Errorf("topic %s: %v", topic, detail.Err)
	}
	if len(detail.Partitions) != adminPartitions {
		return "", fmt.Errorf("%d partitions", len(detail.Partitions))
	}
	for id := int32(0); id < adminPartitions; id++ {
		p, ok := detail.Partitions[id]
		if !ok || p.Leader != 1 || fmt.Sprint(p.Replicas) != "[1]" || fmt.Sprint(p.ISR) != "[1]" {
			return "", fmt.Errorf("partition %d: %+v", id, p)
		}
	}
	return "3 partitions, leader 1", nil
}

func (f *franz) describeConfigs(ctx context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "admin")
	configs, err := f.admin.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return "", err
	}
	resource, err := configs.On(topic, nil)
	if err != nil {
		return "", err
	}
	for _, config := range resource.Configs {
		if config.Key == "retention.ms" {
			if config.Value == nil || *config.Value != retentionMs {
				return "", fmt.Errorf("retention.ms = %v", config.MaybeValue())
			}
			return "retention.ms=" + retentionMs, nil
		}
	}
	return "", fmt.Errorf("no retention.ms among %d configs", len(resource.Configs))
}

func franzCodec(codec string) kgo.CompressionCodec {
	switch codec {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func toKgo(topic string, r record) *kgo.Record {
	headers := make([]kgo.RecordHeader, len(r.headers))
	for index, h := range r.headers {
		headers[index] = kgo.RecordHeader{Key: h.key, Value: h.value}
	}
	return &kgo.Record{
		Topic: topic, Partition: r.partition, Key: r.key, Value: r.value, Headers: headers,
		Timestamp: time.UnixMilli(r.timestampMs),
	}
}

func fromKgo(r *kgo.Record) record {
	headers := make([]header, len(r.Headers))
	for index, h := range r.Headers {
		headers[index] = header{h.Key, h.Value}
	}
	return record{
		offset: r.Offset, partition: r.Partition, key: r.Key, value: r.Value, headers: headers,
		timestampMs: r.Timestamp.UnixMilli(),
	}
}

// produce sends records (each to its own partition) and checks the offsets they were given.
func (f *franz) produce(ctx context.Context, topic string, records []record, opts ...kgo.Opt) error {
	opts = append(opts, kgo.SeedBrokers(f.bootstrap), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	producer, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer producer.Close()
	for _, r := range records {
		result, err := producer.ProduceSync(ctx, toKgo(topic, r)).First()
		if err != nil {
			return err
		}
		if result.Offset != r.offset {
			return fmt.Errorf("record %q got offset %d, expected %d", r.value, result.Offset, r.offset)
		}
	}
	return nil
}

// consumeAssigned reads count records of partition 0 from offset, with no group.
func (f *franz) consumeAssigned(ctx context.Context, topic string, offset int64, count int) ([]record, error) {
	partitions := map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(offset)}}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(f.bootstrap), kgo.ConsumePartitions(partitions))
	if err != nil {
		return nil, err
	}
	defer consumer.Close()
	var got []record
	for len(got) < count {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return got, fmt.Errorf("consumed %d of %d: %w", len(got), count, err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return got, errs[0].Err
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if r.Attrs.TimestampType() != 0 {
				err = fmt.Errorf("offset %d: timestamp type %d, expected CreateTime", r.Offset, r.Attrs.TimestampType())
			}
			got = append(got, fromKgo(r))
		})
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

func (f *franz) roundTrip(ctx context.Context, prefix, codec string, baseMs int64) (string, error) {
	topic := topicName(prefix, codec)
	records := makeRecords(codec, baseMs)
	opts := []kgo.Opt{kgo.ProducerBatchCompression(franzCodec(codec)), kgo.DisableIdempotentWrite()}
	if err := f.produce(ctx, topic, records, opts...); err != nil {
		return "", err
	}
	got, err := f.consumeAssigned(ctx, topic, 0, recordCount)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d records, exact", recordCount), checkExact(records, got)
}

func (f *franz) headersTimestamps(ctx context.Context, prefix string, baseMs int64) (string, error) {
	got, err := f.consumeAssigned(ctx, topicName(prefix, "none"), 0, recordCount)
	if err != nil {
		return "", err
	}
	return "duplicate and binary headers, CreateTime timestamps", checkExact(makeRecords("none", baseMs), got)
}

func (f *franz) consumeAssign(ctx context.Context, prefix string, baseMs int64) (string, error) {
	got, err := f.consumeAssigned(ctx, topicName(prefix, "none"), assignOffset, recordCount-assignOffset)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("assign at offset %d", assignOffset), checkExact(makeRecords("none", baseMs)[assignOffset:], got)
}

func (f *franz) idempotent(ctx context.Context, prefix string, baseMs int64) (string, error) {
	topic := topicName(prefix, "idempotent")
	records := makeRecords("idempotent", baseMs)
	// Idempotent writes are franz-go's default.
	if err := f.produce(ctx, topic, records); err != nil {
		return "", err
	}
	got, err := f.consumeAssigned(ctx, topic, 0, recordCount)
	if err != nil {
		return "", err
	}
	return "idempotent (the default)", checkExact(records, got)
}

func (f *franz) consumeGroup(ctx context.Context, prefix string, baseMs int64) (string, error) {
	topic := topicName(prefix, "group")
	records := groupRecords(baseMs)
	if err := f.produce(ctx, topic, records, kgo.DisableIdempotentWrite()); err != nil {
		return "", err
	}
	group := topicName(prefix, "group-consumers")
	consumer, err := kgo.NewClient(kgo.SeedBrokers(f.bootstrap), kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return "", err
	}
	defer consumer.Close()
	got := map[string]record{}
	for len(got) < len(records) {
		fetches := consumer.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("group consumed %d of %d: %w", len(got), len(records), err)
		}
		if errs := fetches.Errors(); len(errs) > 0 {
			return "", errs[0].Err
		}
		fetches.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = fromKgo(r) })
	}
	if err := checkGroupRecords(records, got); err != nil {
		return "", err
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		return "", err
	}
	fetched, err := f.admin.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	for p := int32(0); p < groupPartitions; p++ {
		offset, ok := fetched.Lookup(topic, p)
		if !ok || offset.Err != nil || offset.At != recordCount/groupPartitions {
			return "", fmt.Errorf("partition %d committed %+v", p, offset)
		}
	}
	return fmt.Sprintf("subscribe, %d records, committed %d per partition", recordCount, recordCount/groupPartitions), nil
}

func (f *franz) commitFetchOffsets(ctx context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "group")
	group := topicName(prefix, "committer")
	offsets := kadm.Offsets{}
	for p, at := range committedOffsets {
		offsets.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
	}
	committed, err := f.admin.CommitOffsets(ctx, group, offsets)
	if err != nil {
		return "", err
	}
	if err := committed.Error(); err != nil {
		return "", err
	}
	fetched, err := f.admin.FetchOffsets(ctx, group)
	if err != nil {
		return "", err
	}
	for p, at := range committedOffsets {
		offset, ok := fetched.Lookup(topic, p)
		if !ok || offset.Err != nil || offset.At != at {
			return "", fmt.Errorf("partition %d fetched %+v, expected %d", p, offset, at)
		}
	}
	return fmt.Sprintf("committed and fetched %v", committedOffsets), nil
}

func (f *franz) deleteTopics(ctx context.Context, prefix string) (string, error) {
	topic := topicName(prefix, "admin")
	responses, err := f.admin.DeleteTopics(ctx, topic)
	if err != nil {
		return "", err
	}
	if err := responses.Error(); err != nil {
		return "", err
	}
	for {
		details, err := f.admin.ListTopics(ctx)
		if err != nil {
			return "", err
		}
		if !details.Has(topic) {
			return "deleted and gone from the topic list", nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("topic still listed: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
