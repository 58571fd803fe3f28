// Command compat runs the sluice compatibility scenario (see ../README.md) with one Go
// client, franz-go or sarama, and prints one JSON line per feature:
// {"client": ..., "feature": ..., "ok": true|false, "detail": ...}.
//
// usage: compat franz-go|sarama BOOTSTRAP PREFIX
//
// Exits 0 once every feature ran (failed ones included): the Rust test asserts each line.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"time"
)

const (
	recordCount      = 20
	groupPartitions  = 2
	adminPartitions  = 3
	retentionMs      = "86400000"
	assignOffset     = 12
	featureDeadline  = 60 * time.Second
	topicGoneTimeout = 60 * time.Second
)

var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// committedOffsets is what commit_fetch_offsets commits and must read back, per partition.
var committedOffsets = map[int32]int64{0: 7, 1: 3}

type header struct {
	key   string
	value []byte
}

// record is one scenario record, as produced and as it must be consumed.
type record struct {
	offset      int64
	partition   int32
	key         []byte
	value       []byte
	headers     []header
	timestampMs int64
}

func baseTimestampMs() int64 {
	// A whole second an hour ago: exact, in the past, inside retention.
	return (time.Now().Unix() - 3600) * 1000
}

func makeRecord(index int, tag string, baseMs int64) record {
	return record{
		offset: int64(index),
		key:    []byte(fmt.Sprintf("key-%d", index)),
		value:  []byte(fmt.Sprintf("value-%d-%s", index, tag)),
		headers: []header{
			{"index", []byte(strconv.Itoa(index))},
			{"dup", []byte("first")},
			{"dup", []byte("second")},
			{"bin", []byte{0, 255, byte(index)}},
		},
		timestampMs: baseMs + int64(index)*1000,
	}
}

func makeRecords(tag string, baseMs int64) []record {
	records := make([]record, recordCount)
	for index := range records {
		records[index] = makeRecord(index, tag, baseMs)
	}
	return records
}

func (r record) String() string {
	return fmt.Sprintf("{p%d@%d key=%q value=%q headers=%v ts=%d}",
		r.partition, r.offset, r.key, r.value, r.headers, r.timestampMs)
}

func sameRecord(want, got record) bool {
	if want.offset != got.offset || want.partition != got.partition ||
		!bytes.Equal(want.key, got.key) || !bytes.Equal(want.value, got.value) ||
		want.timestampMs != got.timestampMs || len(want.headers) != len(got.headers) {
		return false
	}
	for index, h := range want.headers {
		if h.key != got.headers[index].key || !bytes.Equal(h.value, got.headers[index].value) {
			return false
		}
	}
	return true
}

// checkExact: got is exactly want, in order, offsets included.
func checkExact(want, got []record) error {
	if len(got) != len(want) {
		return fmt.Errorf("consumed %d records, expected %d", len(got), len(want))
	}
	for index := range want {
		if !sameRecord(want[index], got[index]) {
			return fmt.Errorf("expected %v, got %v", want[index], got[index])
		}
	}
	return nil
}

// client is one Go client's implementation of the scenario's steps.
type client interface {
	name() string
	createTopics(ctx context.Context, prefix string) (string, error)
	describeTopics(ctx context.Context, prefix string) (string, error)
	describeConfigs(ctx context.Context, prefix string) (string, error)
	roundTrip(ctx context.Context, prefix, codec string, baseMs int64) (string, error)
	headersTimestamps(ctx context.Context, prefix string, baseMs int64) (string, error)
	consumeAssign(ctx context.Context, prefix string, baseMs int64) (string, error)
	idempotent(ctx context.Context, prefix string, baseMs int64) (string, error)
	consumeGroup(ctx context.Context, prefix string, baseMs int64) (string, error)
	commitFetchOffsets(ctx context.Context, prefix string) (string, error)
	deleteTopics(ctx context.Context, prefix string) (string, error)
	close()
}

func emit(clientName, feature string, ok bool, detail string) {
	line, err := json.Marshal(map[string]any{
		"client": clientName, "feature": feature, "ok": ok, "detail": detail,
	})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(line))
}

// feature runs one step under its own deadline and reports it; a failure never stops the run.
func feature(c client, name string, step func(ctx context.Context) (string, error)) {
	ctx, cancel := context.WithTimeout(context.Background(), featureDeadline)
	defer cancel()
	detail, err := step(ctx)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", c.name(), name, err)
		emit(c.name(), name, false, err.Error())
		return
	}
	emit(c.name(), name, true, detail)
}

func run(c client, prefix string) {
	baseMs := baseTimestampMs()
	feature(c, "admin_create_topics", func(ctx context.Context) (string, error) { return c.createTopics(ctx, prefix) })
	feature(c, "admin_describe_topics", func(ctx context.Context) (string, error) { return c.describeTopics(ctx, prefix) })
	feature(c, "admin_describe_configs", func(ctx context.Context) (string, error) { return c.describeConfigs(ctx, prefix) })
	for _, codec := range codecs {
		feature(c, "produce_"+codec, func(ctx context.Context) (string, error) { return c.roundTrip(ctx, prefix, codec, baseMs) })
	}
	feature(c, "headers_timestamps", func(ctx context.Context) (string, error) { return c.headersTimestamps(ctx, prefix, baseMs) })
	feature(c, "consume_assign", func(ctx context.Context) (string, error) { return c.consumeAssign(ctx, prefix, baseMs) })
	feature(c, "idempotent_produce", func(ctx context.Context) (string, error) { return c.idempotent(ctx, prefix, baseMs) })
	feature(c, "consume_group", func(ctx context.Context) (string, error) { return c.consumeGroup(ctx, prefix, baseMs) })
	feature(c, "commit_fetch_offsets", func(ctx context.Context) (string, error) { return c.commitFetchOffsets(ctx, prefix) })
	feature(c, "admin_delete_topics", func(ctx context.Context) (string, error) { return c.deleteTopics(ctx, prefix) })
}

// groupRecordsByValue indexes consumed group records by value (partitions interleave).
func checkGroupRecords(want []record, got map[string]record) error {
	if len(got) != len(want) {
		return fmt.Errorf("group consumed %d distinct records, expected %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := got[string(w.value)]
		if !ok || !sameRecord(w, g) {
			return fmt.Errorf("expected %v, got %v", w, g)
		}
	}
	return nil
}

// groupRecords: the group topic's records, spread over its partitions round-robin, each at
// the offset it gets in its partition.
func groupRecords(baseMs int64) []record {
	records := makeRecords("group", baseMs)
	for index := range records {
		records[index].partition = int32(index % groupPartitions)
		records[index].offset = int64(index / groupPartitions)
	}
	return records
}

func topicName(prefix, name string) string { return prefix + "-" + name }

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: compat franz-go|sarama BOOTSTRAP PREFIX")
		os.Exit(2)
	}
	bootstrap, prefix := os.Args[2], os.Args[3]
	var c client
	var err error
	switch os.Args[1] {
	case "franz-go":
		c, err = newFranz(bootstrap)
	case "sarama":
		c, err = newSarama(bootstrap)
	default:
		err = fmt.Errorf("unknown client %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.close()
	run(c, prefix)
}
