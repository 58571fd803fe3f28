'use strict';
// The scenario's records, checks and feature runner, shared by both Node clients (see
// ../README.md). Each feature prints one JSON line; a failure never stops the run.

const RECORD_COUNT = 20;
const GROUP_PARTITIONS = 2;
const ADMIN_PARTITIONS = 3;
const RETENTION_MS = '86400000';
const ASSIGN_OFFSET = 12;
const COMMITTED = { 0: 7, 1: 3 };
const CODECS = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];
const FEATURE_DEADLINE_MS = 60000;

/** A whole second an hour ago: exact, in the past, inside retention. */
function baseTimestampMs() {
  return (Math.floor(Date.now() / 1000) - 3600) * 1000;
}

/** Record `index` as plain data: headers as an ordered list of [key, Buffer]. */
function makeRecord(index, tag, baseMs) {
  return {
    partition: 0,
    offset: index,
    key: Buffer.from(`key-${index}`),
    value: Buffer.from(`value-${index}-${tag}`),
    headers: [
      ['index', Buffer.from(String(index))],
      ['dup', Buffer.from('first')],
      ['dup', Buffer.from('second')],
      ['bin', Buffer.from([0, 255, index])],
    ],
    timestamp: baseMs + index * 1000,
  };
}

function makeRecords(tag, baseMs) {
  return Array.from({ length: RECORD_COUNT }, (_, index) => makeRecord(index, tag, baseMs));
}

/** The group topic's records: round-robin over its partitions, at their in-partition offsets. */
function groupRecords(baseMs) {
  return makeRecords('group', baseMs).map((record, index) => ({
    ...record,
    partition: index % GROUP_PARTITIONS,
    offset: Math.floor(index / GROUP_PARTITIONS),
  }));
}

/** KafkaJS-style header object (duplicate keys as arrays, insertion order kept). */
function headersObject(headers) {
  const object = {};
  for (const [key, value] of headers) {
    if (key in object) {
      object[key] = [].concat(object[key], value);
    } else {
      object[key] = value;
    }
  }
  return object;
}

/** Back from a KafkaJS-style header object to the ordered list. */
function headersList(object) {
  const list = [];
  for (const [key, value] of Object.entries(object || {})) {
    for (const item of [].concat(value)) {
      list.push([key, Buffer.from(item)]);
    }
  }
  return list;
}

function show(record) {
  return JSON.stringify({
    ...record,
    key: record.key && record.key.toString('hex'),
    value: record.value && record.value.toString('hex'),
    headers: record.headers.map(([key, value]) => [key, value.toString('hex')]),
  });
}

function sameRecord(want, got) {
  return show(want) === show(got);
}

/** `got` is exactly `want`, in order, offsets included. */
function checkExact(want, got) {
  if (got.length !== want.length) {
    throw new Error(`consumed ${got.length} records, expected ${want.length}`);
  }
  want.forEach((record, index) => {
    if (!sameRecord(record, got[index])) {
      throw new Error(`expected ${show(record)}, got ${show(got[index])}`);
    }
  });
}

/** Like checkExact, in (offset, partition) order: partitions of a group interleave. */
function checkExactAnyOrder(want, got) {
  const order = (a, b) => a.offset - b.offset || a.partition - b.partition;
  checkExact([...want].sort(order), [...got].sort(order));
}

function emit(client, feature, ok, detail) {
  console.log(JSON.stringify({ client, feature, ok, detail }));
}

async function withDeadline(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `probe` until it returns something truthy, failing at the deadline. */
async function waitFor(what, probe, ms = FEATURE_DEADLINE_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * Runs every feature of `steps` (an object: feature name -> async () => detail) in scenario
 * order; a name missing from `steps` is one the client does not have and is not printed.
 */
async function runScenario(client, steps) {
  const order = [
    'admin_create_topics', 'admin_describe_topics', 'admin_describe_configs',
    ...CODECS.map((codec) => `produce_${codec}`),
    'headers_timestamps', 'consume_assign', 'idempotent_produce', 'consume_group',
    'commit_fetch_offsets', 'admin_delete_topics',
  ];
  for (const feature of order) {
    const step = steps[feature];
    if (!step) continue;
    try {
      const detail = await withDeadline(step(), FEATURE_DEADLINE_MS, feature);
      emit(client, feature, true, detail || '');
    } catch (error) {
      console.error(`${client} ${feature}:`, error);
      emit(client, feature, false, String(error && error.message ? error.message : error));
    }
  }
}

module.exports = {
  RECORD_COUNT, GROUP_PARTITIONS, ADMIN_PARTITIONS, RETENTION_MS, ASSIGN_OFFSET, COMMITTED, CODECS,
  baseTimestampMs, makeRecords, groupRecords, headersObject, headersList, checkExact,
  checkExactAnyOrder, runScenario, waitFor,
};
