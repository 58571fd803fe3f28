'use strict';
// The scenario over kafkajs. kafkajs ships gzip only: snappy, lz4 and zstd are registered
// here from pure-JS/wasm codec packages. It has no manual partition assignment, so every read
// is a subscribe() with a fresh group, and consume_assign is not one of its features.

const {
  Kafka, logLevel, CompressionTypes, CompressionCodecs, ConfigResourceTypes,
} = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4js = require('lz4js');
const { ZstdCodec } = require('zstd-codec');
const common = require('./common');

const zstdSimple = new Promise((resolve) => ZstdCodec.run((zstd) => resolve(new zstd.Simple())));

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  compress: async (encoder) => Buffer.from(lz4js.compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from(lz4js.decompress(buffer)),
});
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  compress: async (encoder) => Buffer.from((await zstdSimple).compress(encoder.buffer)),
  decompress: async (buffer) => Buffer.from((await zstdSimple).decompress(buffer)),
});

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

function fromKafkajs(partition, message) {
  return {
    partition,
    offset: Number(message.offset),
    key: message.key,
    value: message.value,
    headers: common.headersList(message.headers),
    timestamp: Number(message.timestamp),
  };
}

async function main(bootstrap, prefix) {
  const kafka = new Kafka({ clientId: 'sluice-compat-kafkajs', brokers: [bootstrap], logLevel: logLevel.NOTHING });
  const topic = (name) => `${prefix}-${name}`;
  const baseMs = common.baseTimestampMs();
  const admin = kafka.admin();
  await admin.connect();
  let readers = 0;

  async function produce(name, records, { codec = 'none', idempotent = false } = {}) {
    const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : undefined });
    await producer.connect();
    try {
      const sent = await producer.send({
        topic: topic(name),
        acks: -1,
        compression: COMPRESSION[codec],
        messages: records.map((r) => ({
          partition: r.partition,
          key: r.key,
          value: r.value,
          headers: common.headersObject(r.headers),
          timestamp: String(r.timestamp),
        })),
      });
      for (const result of sent) {
        if (result.errorCode !== 0 || result.baseOffset !== '0') {
          throw new Error(`send result ${JSON.stringify(result)}`);
        }
      }
    } finally {
      await producer.disconnect();
    }
  }

  /** Every record of `name`, read by a fresh group from the beginning. */
  async function readAll(name, count, groupId = topic(`reader-${readers++}`)) {
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic: topic(name), fromBeginning: true });
      const got = [];
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          got.push(fromKafkajs(partition, message));
        },
      });
      await common.waitFor(`${count} records of ${name}`, () => got.length >= count);
      return { consumer, got };
    } catch (error) {
      await consumer.disconnect();
      throw error;
    }
  }

  async function roundTrip(codec) {
    const records = common.makeRecords(codec, baseMs);
    await produce(codec, records, { codec });
    const { consumer, got } = await readAll(codec, records.length);
    await consumer.disconnect();
    common.checkExact(records, got);
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
      const created = await admin.createTopics({ topics, waitForLeaders: true });
      if (created !== true) throw new Error(`createTopics returned ${created}`);
      return `${topics.length} topics`;
    },
    admin_describe_topics: async () => {
      const metadata = await admin.fetchTopicMetadata({ topics: [topic('admin')] });
      const partitions = metadata.topics[0].partitions
        .map((p) => [p.partitionId, p.leader, p.replicas, p.isr, p.partitionErrorCode])
        .sort((a, b) => a[0] - b[0]);
      const want = [0, 1, 2].map((id) => [id, 1, [1], [1], 0]);
      if (JSON.stringify(partitions) !== JSON.stringify(want)) {
        throw new Error(`partitions ${JSON.stringify(partitions)}`);
      }
      return '3 partitions, leader 1';
    },
    admin_describe_configs: async () => {
      const described = await admin.describeConfigs({
        resources: [{ type: ConfigResourceTypes.TOPIC, name: topic('admin') }],
        includeSynonyms: false,
      });
      const entry = described.resources[0].configEntries.find((e) => e.configName === 'retention.ms');
      if (!entry || entry.configValue !== common.RETENTION_MS) {
        throw new Error(`retention.ms entry ${JSON.stringify(entry)}`);
      }
      return `retention.ms=${common.RETENTION_MS}`;
    },
    headers_timestamps: async () => {
      const records = common.makeRecords('none', baseMs);
      const { consumer, got } = await readAll('none', records.length);
      await consumer.disconnect();
      common.checkExact(records, got);
      return 'duplicate and binary headers, timestamps';
    },
    idempotent_produce: async () => {
      const records = common.makeRecords('idempotent', baseMs);
      await produce('idempotent', records, { idempotent: true });
      const { consumer, got } = await readAll('idempotent', records.length);
      await consumer.disconnect();
      common.checkExact(records, got);
      return 'idempotent: true';
    },
    consume_group: async () => {
      const records = common.groupRecords(baseMs);
      await produce('group', records);
      const groupId = topic('group-consumers');
      const { consumer, got } = await readAll('group', records.length, groupId);
      try {
        common.checkExactAnyOrder(records, got);
        const perPartition = records.length / common.GROUP_PARTITIONS;
        await consumer.commitOffsets([0, 1].map((partition) => ({
          topic: topic('group'), partition, offset: String(perPartition),
        })));
      } finally {
        await consumer.disconnect();
      }
      const fetched = await admin.fetchOffsets({ groupId, topics: [topic('group')] });
      const offsets = fetched[0].partitions.map((p) => [p.partition, p.offset]).sort();
      if (JSON.stringify(offsets) !== JSON.stringify([[0, '10'], [1, '10']])) {
        throw new Error(`committed ${JSON.stringify(offsets)}`);
      }
      return `subscribe, ${records.length} records, committed ${JSON.stringify(offsets)}`;
    },
    commit_fetch_offsets: async () => {
      const groupId = topic('committer');
      const partitions = Object.entries(common.COMMITTED)
        .map(([partition, offset]) => ({ partition: Number(partition), offset: String(offset) }));
      await admin.setOffsets({ groupId, topic: topic('group'), partitions });
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
    await common.runScenario('kafkajs', steps);
  } finally {
    await admin.disconnect();
  }
}

module.exports = { main };
