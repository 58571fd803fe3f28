'use strict';
// The scenario over @confluentinc/kafka-javascript (librdkafka underneath): its KafkaJS-style
// API for admin, produce, groups and offsets, and its node-rdkafka-style KafkaConsumer for
// manual assignment (the KafkaJS-style consumer has none). Its admin client has no
// describeConfigs, so admin_describe_configs is not one of its features.

const { KafkaJS, KafkaConsumer } = require('@confluentinc/kafka-javascript');
const common = require('./common');

const { Kafka, logLevel, CompressionTypes } = KafkaJS;

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.SNAPPY,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

function fromKafkajsStyle(partition, message) {
  return {
    partition,
    offset: Number(message.offset),
    key: message.key,
    value: message.value,
    headers: common.headersList(message.headers),
    timestamp: Number(message.timestamp),
  };
}

/** node-rdkafka headers are a list of one-key objects. */
function fromRdkafkaStyle(message) {
  const headers = (message.headers || []).map((header) => {
    const [key, value] = Object.entries(header)[0];
    return [key, Buffer.from(value)];
  });
  return {
    partition: message.partition,
    offset: message.offset,
    key: message.key,
    value: message.value,
    headers,
    timestamp: message.timestamp,
  };
}

async function main(bootstrap, prefix) {
  const kafka = new Kafka({ kafkaJS: { brokers: [bootstrap], logLevel: logLevel.NOTHING } });
  const topic = (name) => `${prefix}-${name}`;
  const baseMs = common.baseTimestampMs();
  const admin = kafka.admin();
  await admin.connect();
  let readers = 0;

  async function produce(name, records, { codec = 'none', idempotent = false } = {}) {
    const producer = kafka.producer({
      kafkaJS: { acks: -1, compression: COMPRESSION[codec], idempotent },
    });
    await producer.connect();
    try {
      const sent = await producer.send({
        topic: topic(name),
        messages: records.map((r) => ({
          partition: r.partition,
          key: r.key,
          value: r.value,
          headers: common.headersObject(r.headers),
          timestamp: String(r.timestamp),
        })),
      });
      for (const result of sent) {
        if (result.errorCode !== 0) throw new Error(`send result ${JSON.stringify(result)}`);
      }
    } finally {
      await producer.disconnect();
    }
  }

  /** `count` records of partition 0 of `name` from `offset`, by manual assignment. */
  async function readAssigned(name, offset, count) {
    const consumer = new KafkaConsumer({
      'bootstrap.servers': bootstrap,
      'group.id': topic(`assign-reader-${readers++}`),
      'enable.auto.commit': false,
    }, {});
    await new Promise((resolve, reject) => consumer.connect({}, (error) => (error ? reject(error) : resolve())));
    try {
      consumer.assign([{ topic: topic(name), partition: 0, offset }]);
      const got = [];
      await common.waitFor(`${count} records of ${name}`, async () => {
        const messages = await new Promise((resolve, reject) => {
          consumer.consume(count, (error, batch) => (error ? reject(error) : resolve(batch)));
        });
        got.push(...messages.map(fromRdkafkaStyle));
        return got.length >= count;
      });
      return got;
    } finally {
      await new Promise((resolve) => consumer.disconnect(() => resolve()));
    }
  }

  async function roundTrip(codec) {
    const records = common.makeRecords(codec, baseMs);
    await produce(codec, records, { codec });
    common.checkExact(records, await readAssigned(codec, 0, records.length));
    return `${records.length} records, exact`;
  }

  const steps = {
    admin_create_topics: async () => {
      const single = [...common.CODECS, 'idempotent'].map((name) => ({
        topic: topic(name), numPartitions: 1, replicationFactor: 1,
      }));
      const topics = [
        ...single,
        { topic: topic('group'), numPartitions: common.GROUP_PARTITIONS, replicationFactor: 1 },
        {
          topic: topic('admin'), numPartitions: common.ADMIN_PARTITIONS, replicationFactor: 1,
          configEntries: [{ name: 'retention.ms', value: common.RETENTION_MS }],
        },
      ];
      const created = await admin.createTopics({ topics });
      if (created !== true) throw new Error(`createTopics returned ${created}`);
      return `${topics.length} topics`;
    },
    admin_describe_topics: async () => {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic('admin')] });
      const ids = (list) => list.map((broker) => (typeof broker === 'number' ? broker : broker.id));
      const partitions = metadata[0].partitions
        .map((p) => [p.partitionId, typeof p.leader === 'number' ? p.leader : p.leader.id, ids(p.replicas), ids(p.isr)])
        .sort((a, b) => a[0] - b[0]);
      const want = [0, 1, 2].map((id) => [id, 1, [1], [1]]);
      if (JSON.stringify(partitions) !== JSON.stringify(want)) {
        throw new Error(`partitions ${JSON.stringify(partitions)}`);
      }
      return '3 partitions, leader 1';
    },
    headers_timestamps: async () => {
      const records = common.makeRecords('none', baseMs);
      common.checkExact(records, await readAssigned('none', 0, records.length));
      return 'duplicate and binary headers, CreateTime timestamps';
    },
    consume_assign: async () => {
      const records = common.makeRecords('none', baseMs).slice(common.ASSIGN_OFFSET);
      common.checkExact(records, await readAssigned('none', common.ASSIGN_OFFSET, records.length));
      return `assign at offset ${common.ASSIGN_OFFSET}`;
    },
    idempotent_produce: async () => {
      const records = common.makeRecords('idempotent', baseMs);
      await produce('idempotent', records, { idempotent: true });
      common.checkExact(records, await readAssigned('idempotent', 0, records.length));
      return 'idempotent: true';
    },
    consume_group: async () => {
      const records = common.groupRecords(baseMs);
      await produce('group', records);
      const groupId = topic('group-consumers');
      const consumer = kafka.consumer({ kafkaJS: { groupId, fromBeginning: true, autoCommit: false } });
      await consumer.connect();
      const got = [];
      try {
        await consumer.subscribe({ topics: [topic('group')] });
        await consumer.run({
          eachMessage: async ({ partition, message }) => { got.push(fromKafkajsStyle(partition, message)); },
        });
        await common.waitFor(`${records.length} group records`, () => got.length >= records.length);
        common.checkExactAnyOrder(records, got);
        const perPartition = records.length / common.GROUP_PARTITIONS;
        await consumer.commitOffsets([0, 1].map((partition) => ({
          topic: topic('group'), partition, offset: String(perPartition),
        })));
      } finally {
        await consumer.disconnect();
      }
      const fetched = await admin.fetchOffsets({ groupId, topics: [topic('group')] });
      const offsets = fetched[0].partitions.map((p) => [p.partition, Number(p.offset)]).sort();
      if (JSON.stringify(offsets) !== JSON.stringify([[0, 10], [1, 10]])) {
        throw new Error(`committed ${JSON.stringify(offsets)}`);
      }
      return `subscribe, ${records.length} records, committed ${JSON.stringify(offsets)}`;
    },
    commit_fetch_offsets: async () => {
      const groupId = topic('committer');
      const consumer = kafka.consumer({ kafkaJS: { groupId, autoCommit: false } });
      await consumer.connect();
      try {
        await consumer.commitOffsets(Object.entries(common.COMMITTED).map(([partition, offset]) => ({
          topic: topic('group'), partition: Number(partition), offset: String(offset),
        })));
      } finally {
        await consumer.disconnect();
      }
      const fetched = await admin.fetchOffsets({ groupId, topics: [topic('group')] });
      const offsets = Object.fromEntries(fetched[0].partitions.map((p) => [p.partition, Number(p.offset)]));
      if (JSON.stringify(offsets) !== JSON.stringify(common.COMMITTED)) {
        throw new Error(`fetched ${JSON.stringify(offsets)}`);
      }
      return `committed and fetched ${JSON.stringify(offsets)}`;
    },
    admin_delete_topics: async () => {
      await admin.deleteTopics({ topics: [topic('admin')] });
      await common.waitFor('the topic to go', async () => !(await admin.listTopics()).includes(topic('admin')));
      return 'deleted and gone from the topic list';
    },
  };
  for (const codec of common.CODECS) {
    steps[`produce_${codec}`] = () => roundTrip(codec);
  }
  try {
    await common.runScenario('confluent-kafka-javascript', steps);
  } finally {
    await admin.disconnect();
  }
}

module.exports = { main };
