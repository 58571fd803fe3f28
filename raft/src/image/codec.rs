//! Versioned binary encoding of `MetadataRecord`s, hand-written so that every length is bounded
//! before anything is allocated.
//!
//! A batch is `format: u8, count: u32`, then per record `body_bytes: u32, type: u16,
//! version: u8, body`. Integers are big-endian; strings are `u16` length + UTF-8; optional
//! values carry a `u8` presence flag; lists are `u32` count + items. Decoding checks each
//! length against a named maximum and against the bytes left, so a hostile length cannot make
//! us allocate.

use thiserror::Error;
use uuid::Uuid;

use super::acls::AclBinding;
use super::cluster::Listener;
use super::configs::ConfigResource;
use super::quotas::{EntityName, QuotaEntity, QuotaValue};
use super::record::MetadataRecord;

/// The one batch format this code writes and reads.
pub const BATCH_FORMAT: u8 = 1;
/// The one record version this code writes and reads.
pub const RECORD_VERSION: u8 = 0;
/// Longest string in a record, as Kafka's `int16` string lengths.
pub const STRING_BYTES_MAX: usize = i16::MAX as usize;
/// Most items in one list inside a record (replicas, ISR, listeners).
pub const LIST_LEN_MAX: usize = 10_000;
/// Largest encoded record body.
pub const RECORD_BYTES_MAX: usize = 1 << 20;
const BATCH_HEADER_BYTES: usize = 1 + 4;
/// `body_bytes` + `type` + `version`: the smallest a record can be.
const RECORD_HEADER_BYTES: usize = 4 + 2 + 1;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated: needed {needed} bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("unknown batch format {0}")]
    UnknownFormat(u8),
    #[error("unknown record type {0}")]
    UnknownType(u16),
    #[error("record type {record_type} has unsupported version {version}")]
    UnsupportedVersion { record_type: u16, version: u8 },
    #[error("{what} is {len}, more than {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("string is not UTF-8")]
    InvalidUtf8,
    #[error("invalid flag byte {0}")]
    InvalidFlag(u8),
    #[error("{0} bytes left over")]
    TrailingBytes(usize),
}

/// Encodes records as one batch.
pub fn encode_batch(records: &[MetadataRecord]) -> Vec<u8> {
    let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
    assert!(records.len() <= count as usize, "batch too large to encode");
    let mut out = Vec::with_capacity(BATCH_HEADER_BYTES + records.len() * 32);
    out.push(BATCH_FORMAT);
    out.extend_from_slice(&count.to_be_bytes());
    for record in records {
        encode_record(record, &mut out);
    }
    out
}

/// Decodes a batch of at most `records_max` records; the whole input must be used.
pub fn decode_batch(bytes: &[u8], records_max: usize) -> Result<Vec<MetadataRecord>, DecodeError> {
    let mut reader = Reader { bytes };
    let format = reader.u8()?;
    if format != BATCH_FORMAT {
        return Err(DecodeError::UnknownFormat(format));
    }
    let count = reader.u32()? as usize;
    // Every record takes at least its header, so the bytes left bound the count too.
    let count_max = records_max.min(reader.bytes.len() / RECORD_HEADER_BYTES);
    if count > count_max {
        return Err(DecodeError::TooLong {
            what: "record count",
            len: count,
            max: count_max,
        });
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        records.push(decode_record(&mut reader)?);
    }
    if !reader.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(reader.bytes.len()));
    }
    Ok(records)
}

fn encode_record(record: &MetadataRecord, out: &mut Vec<u8>) {
    let mut body = Vec::with_capacity(64);
    encode_body(record, &mut body);
    assert!(body.len() <= RECORD_BYTES_MAX, "record body too large");
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&record.type_id().to_be_bytes());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&body);
}

fn decode_record(reader: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
    let body_bytes = reader.u32()? as usize;
    if body_bytes > RECORD_BYTES_MAX {
        return Err(DecodeError::TooLong {
            what: "record body",
            len: body_bytes,
            max: RECORD_BYTES_MAX,
        });
    }
    let record_type = reader.u16()?;
    let version = reader.u8()?;
    let mut body = Reader {
        bytes: reader.take(body_bytes)?,
    };
    if version != RECORD_VERSION {
        return Err(DecodeError::UnsupportedVersion {
            record_type,
            version,
        });
    }
    let record = decode_body(record_type, &mut body)?;
    if !body.bytes.is_empty() {
        return Err(DecodeError::TrailingBytes(body.bytes.len()));
    }
    Ok(record)
}

fn encode_body(record: &MetadataRecord, out: &mut Vec<u8>) {
    let mut w = Writer { out };
    match record {
        MetadataRecord::RegisterBroker { .. } => encode_register_broker(record, &mut w),
        MetadataRecord::UnregisterBroker { broker_id } => w.i32(*broker_id),
        MetadataRecord::FenceBroker {
            broker_id,
            incarnation_id,
        }
        | MetadataRecord::UnfenceBroker {
            broker_id,
            incarnation_id,
        } => {
            w.i32(*broker_id);
            w.uuid(incarnation_id);
        }
        MetadataRecord::Topic { topic_id, name } => {
            w.uuid(topic_id);
            w.string(name);
        }
        MetadataRecord::RemoveTopic { topic_id } => w.uuid(topic_id),
        MetadataRecord::Partition { .. } => encode_partition(record, &mut w),
        MetadataRecord::PartitionChange {
            topic_id,
            partition_index,
            leader,
            isr,
        } => {
            w.uuid(topic_id);
            w.i32(*partition_index);
            w.bool(leader.is_some());
            if let Some(leader) = leader {
                w.i32(*leader);
            }
            w.bool(isr.is_some());
            if let Some(isr) = isr {
                w.i32_list(isr);
            }
        }
        MetadataRecord::Config {
            resource,
            name,
            value,
        } => {
            encode_resource(resource, &mut w);
            w.string(name);
            w.option_string(value.as_deref());
        }
        MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id,
        } => {
            w.i32(*broker_id);
            w.i64(*next_producer_id);
        }
        MetadataRecord::PartitionReassignment {
            topic_id,
            partition_index,
            replicas,
            adding_replicas,
            removing_replicas,
        } => {
            w.uuid(topic_id);
            w.i32(*partition_index);
            w.i32_list(replicas);
            w.i32_list(adding_replicas);
            w.i32_list(removing_replicas);
        }
        MetadataRecord::ScramCredential {
            user,
            mechanism,
            salt,
            stored_key,
            server_key,
            iterations,
        } => {
            w.string(user);
            w.u8(*mechanism as u8);
            w.bytes(salt);
            w.bytes(stored_key);
            w.bytes(server_key);
            w.i32(*iterations);
        }
        MetadataRecord::RemoveScramCredential { user, mechanism } => {
            w.string(user);
            w.u8(*mechanism as u8);
        }
        MetadataRecord::AccessControlEntry { id, acl } => {
            w.uuid(id);
            w.u8(acl.resource_type as u8);
            w.string(&acl.resource_name);
            w.u8(acl.pattern_type as u8);
            w.string(&acl.principal);
            w.string(&acl.host);
            w.u8(acl.operation as u8);
            w.u8(acl.permission_type as u8);
        }
        MetadataRecord::RemoveAccessControlEntry { id } => w.uuid(id),
        MetadataRecord::QueueReassignment {
            topic_id,
            partition_index,
            target,
        } => {
            w.uuid(topic_id);
            w.i32(*partition_index);
            w.bool(target.is_some());
            if let Some(target) = target {
                w.i32_list(target);
            }
        }
        MetadataRecord::BrokerAdmission {
            broker_id,
            incarnation_id,
            refusal,
        } => {
            w.i32(*broker_id);
            w.uuid(incarnation_id);
            w.option_string(refusal.as_deref());
        }
        MetadataRecord::ClientQuota { entity, key, value } => {
            encode_entity_name(entity.user.as_ref(), &mut w);
            encode_entity_name(entity.client_id.as_ref(), &mut w);
            w.string(key);
            w.bool(value.is_some());
            if let Some(value) = value {
                w.i64(value.to_bits() as i64);
            }
        }
    }
}

const ENTITY_ABSENT: u8 = 0;
const ENTITY_DEFAULT: u8 = 1;
const ENTITY_NAMED: u8 = 2;

fn encode_entity_name(name: Option<&EntityName>, w: &mut Writer<'_>) {
    match name {
        None => w.u8(ENTITY_ABSENT),
        Some(EntityName::Default) => w.u8(ENTITY_DEFAULT),
        Some(EntityName::Named(name)) => {
            w.u8(ENTITY_NAMED);
            w.string(name);
        }
    }
}

fn decode_entity_name(r: &mut Reader<'_>) -> Result<Option<EntityName>, DecodeError> {
    match r.u8()? {
        ENTITY_ABSENT => Ok(None),
        ENTITY_DEFAULT => Ok(Some(EntityName::Default)),
        ENTITY_NAMED => Ok(Some(EntityName::Named(r.string()?))),
        other => Err(DecodeError::InvalidFlag(other)),
    }
}

fn decode_client_quota(r: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
    let entity = QuotaEntity {
        user: decode_entity_name(r)?,
        client_id: decode_entity_name(r)?,
    };
    let key = r.string()?;
    let value = if r.bool()? {
        Some(QuotaValue::from_bits(r.i64()? as u64))
    } else {
        None
    };
    Ok(MetadataRecord::ClientQuota { entity, key, value })
}

fn encode_register_broker(record: &MetadataRecord, w: &mut Writer<'_>) {
    let MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id,
        listeners,
        rack,
        fenced,
    } = record
    else {
        unreachable!("called for RegisterBroker only");
    };
    w.i32(*broker_id);
    w.uuid(incarnation_id);
    w.len(listeners.len());
    for listener in listeners {
        w.string(&listener.name);
        w.string(&listener.host);
        w.u16(listener.port);
    }
    w.option_string(rack.as_deref());
    w.bool(*fenced);
}

fn encode_partition(record: &MetadataRecord, w: &mut Writer<'_>) {
    let MetadataRecord::Partition {
        topic_id,
        partition_index,
        replicas,
        isr,
        leader,
        leader_epoch,
        partition_epoch,
    } = record
    else {
        unreachable!("called for Partition only");
    };
    w.uuid(topic_id);
    w.i32(*partition_index);
    w.i32_list(replicas);
    w.i32_list(isr);
    w.i32(*leader);
    w.i32(*leader_epoch);
    w.i32(*partition_epoch);
}

const RESOURCE_TOPIC: u8 = 2;
const RESOURCE_BROKER: u8 = 4;

fn encode_resource(resource: &ConfigResource, w: &mut Writer<'_>) {
    match resource {
        ConfigResource::Topic(name) => {
            w.u8(RESOURCE_TOPIC);
            w.string(name);
        }
        ConfigResource::Broker(broker_id) => {
            w.u8(RESOURCE_BROKER);
            w.i32(*broker_id);
        }
    }
}

fn decode_resource(r: &mut Reader<'_>) -> Result<ConfigResource, DecodeError> {
    match r.u8()? {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(r.string()?)),
        RESOURCE_BROKER => Ok(ConfigResource::Broker(r.i32()?)),
        other => Err(DecodeError::InvalidFlag(other)),
    }
}

fn decode_body(record_type: u16, r: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
    let record = match record_type {
        1 => decode_register_broker(r)?,
        2 => MetadataRecord::UnregisterBroker {
            broker_id: r.i32()?,
        },
        3 => MetadataRecord::FenceBroker {
            broker_id: r.i32()?,
            incarnation_id: r.uuid()?,
        },
        4 => MetadataRecord::UnfenceBroker {
            broker_id: r.i32()?,
            incarnation_id: r.uuid()?,
        },
        5 => MetadataRecord::Topic {
            topic_id: r.uuid()?,
            name: r.string()?,
        },
        6 => MetadataRecord::RemoveTopic {
            topic_id: r.uuid()?,
        },
        7 => MetadataRecord::Partition {
            topic_id: r.uuid()?,
            partition_index: r.i32()?,
            replicas: r.i32_list()?,
            isr: r.i32_list()?,
            leader: r.i32()?,
            leader_epoch: r.i32()?,
            partition_epoch: r.i32()?,
        },
        8 => MetadataRecord::PartitionChange {
            topic_id: r.uuid()?,
            partition_index: r.i32()?,
            leader: if r.bool()? { Some(r.i32()?) } else { None },
            isr: if r.bool()? { Some(r.i32_list()?) } else { None },
        },
        9 => MetadataRecord::Config {
            resource: decode_resource(r)?,
            name: r.string()?,
            value: r.option_string()?,
        },
        10 => MetadataRecord::ProducerIds {
            broker_id: r.i32()?,
            next_producer_id: r.i64()?,
        },
        11 => MetadataRecord::PartitionReassignment {
            topic_id: r.uuid()?,
            partition_index: r.i32()?,
            replicas: r.i32_list()?,
            adding_replicas: r.i32_list()?,
            removing_replicas: r.i32_list()?,
        },
        20 => MetadataRecord::ScramCredential {
            user: r.string()?,
            mechanism: r.u8()? as i8,
            salt: r.bytes()?,
            stored_key: r.bytes()?,
            server_key: r.bytes()?,
            iterations: r.i32()?,
        },
        21 => MetadataRecord::RemoveScramCredential {
            user: r.string()?,
            mechanism: r.u8()? as i8,
        },
        17 => MetadataRecord::AccessControlEntry {
            id: r.uuid()?,
            acl: AclBinding {
                resource_type: r.u8()? as i8,
                resource_name: r.string()?,
                pattern_type: r.u8()? as i8,
                principal: r.string()?,
                host: r.string()?,
                operation: r.u8()? as i8,
                permission_type: r.u8()? as i8,
            },
        },
        18 => MetadataRecord::RemoveAccessControlEntry { id: r.uuid()? },
        12 => MetadataRecord::QueueReassignment {
            topic_id: r.uuid()?,
            partition_index: r.i32()?,
            target: if r.bool()? { Some(r.i32_list()?) } else { None },
        },
        16 => MetadataRecord::BrokerAdmission {
            broker_id: r.i32()?,
            incarnation_id: r.uuid()?,
            refusal: r.option_string()?,
        },
        30 => decode_client_quota(r)?,
        other => return Err(DecodeError::UnknownType(other)),
    };
    Ok(record)
}

fn decode_register_broker(r: &mut Reader<'_>) -> Result<MetadataRecord, DecodeError> {
    let broker_id = r.i32()?;
    let incarnation_id = r.uuid()?;
    // A listener is at least two empty strings and a port.
    let count = r.list_len(2 + 2 + 2)?;
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..count {
        listeners.push(Listener {
            name: r.string()?,
            host: r.string()?,
            port: r.u16()?,
        });
    }
    Ok(MetadataRecord::RegisterBroker {
        broker_id,
        incarnation_id,
        listeners,
        rack: r.option_string()?,
        fenced: r.bool()?,
    })
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn u8(&mut self, value: u8) {
        self.out.push(value);
    }

    fn bool(&mut self, value: bool) {
        self.out.push(u8::from(value));
    }

    fn u16(&mut self, value: u16) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn i64(&mut self, value: i64) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn uuid(&mut self, value: &Uuid) {
        self.out.extend_from_slice(value.as_bytes());
    }

    fn len(&mut self, len: usize) {
        assert!(len <= LIST_LEN_MAX, "list of {len} items is over the limit");
        self.out.extend_from_slice(&(len as u32).to_be_bytes());
    }

    fn string(&mut self, value: &str) {
        assert!(value.len() <= STRING_BYTES_MAX, "string over the limit");
        self.u16(value.len() as u16);
        self.out.extend_from_slice(value.as_bytes());
    }

    /// Bytes, bounded like strings.
    fn bytes(&mut self, value: &[u8]) {
        assert!(value.len() <= STRING_BYTES_MAX, "bytes over the limit");
        self.u16(value.len() as u16);
        self.out.extend_from_slice(value);
    }

    fn option_string(&mut self, value: Option<&str>) {
        self.bool(value.is_some());
        if let Some(value) = value {
            self.string(value);
        }
    }

    fn i32_list(&mut self, values: &[i32]) {
        self.len(values.len());
        for value in values {
            self.i32(*value);
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < count {
            return Err(DecodeError::Truncated {
                needed: count,
                left: self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(count);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::InvalidFlag(other)),
        }
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn uuid(&mut self) -> Result<Uuid, DecodeError> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        if len > STRING_BYTES_MAX {
            return Err(DecodeError::TooLong {
                what: "string",
                len,
                max: STRING_BYTES_MAX,
            });
        }
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let len = self.u16()? as usize;
        if len > STRING_BYTES_MAX {
            return Err(DecodeError::TooLong {
                what: "bytes",
                len,
                max: STRING_BYTES_MAX,
            });
        }
        Ok(self.take(len)?.to_vec())
    }

    fn option_string(&mut self) -> Result<Option<String>, DecodeError> {
        if self.bool()? {
            Ok(Some(self.string()?))
        } else {
            Ok(None)
        }
    }

    /// Reads a list count and bounds it by the limit and by the bytes left.
    fn list_len(&mut self, item_bytes_min: usize) -> Result<usize, DecodeError> {
        assert!(item_bytes_min > 0);
        let len = self.u32()? as usize;
        let max = LIST_LEN_MAX.min(self.bytes.len() / item_bytes_min);
        if len > max {
            return Err(DecodeError::TooLong {
                what: "list",
                len,
                max,
            });
        }
        Ok(len)
    }

    fn i32_list(&mut self) -> Result<Vec<i32>, DecodeError> {
        let len = self.list_len(4)?;
        let mut values = Vec::with_capacity(len);
        for _ in 0..len {
            values.push(self.i32()?);
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<MetadataRecord> {
        let topic_id = Uuid::from_u128(7);
        vec![
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(9),
                listeners: vec![Listener {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                }],
                rack: Some("r1".into()),
                fenced: true,
            },
            MetadataRecord::UnregisterBroker { broker_id: 3 },
            MetadataRecord::FenceBroker {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(9),
            },
            MetadataRecord::UnfenceBroker {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(9),
            },
            MetadataRecord::Topic {
                topic_id,
                name: "t".into(),
            },
            MetadataRecord::Partition {
                topic_id,
                partition_index: 0,
                replicas: vec![1, 2],
                isr: vec![2],
                leader: 2,
                leader_epoch: 4,
                partition_epoch: 5,
            },
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index: 0,
                leader: None,
                isr: Some(vec![1, 2]),
            },
            MetadataRecord::PartitionChange {
                topic_id,
                partition_index: 0,
                leader: Some(-1),
                isr: None,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("100".into()),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Broker(1),
                name: "x".into(),
                value: None,
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_producer_id: 1000,
            },
            MetadataRecord::PartitionReassignment {
                topic_id,
                partition_index: 0,
                replicas: vec![3, 1, 2],
                adding_replicas: vec![3],
                removing_replicas: vec![2],
            },
            MetadataRecord::QueueReassignment {
                topic_id,
                partition_index: 0,
                target: Some(vec![2]),
            },
            MetadataRecord::QueueReassignment {
                topic_id,
                partition_index: 0,
                target: None,
            },
            MetadataRecord::BrokerAdmission {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(7),
                refusal: Some("connection refused".into()),
            },
            MetadataRecord::BrokerAdmission {
                broker_id: 1,
                incarnation_id: Uuid::from_u128(7),
                refusal: None,
            },
            MetadataRecord::ClientQuota {
                entity: QuotaEntity::client_id(EntityName::Named("slow".into())),
                key: "producer_byte_rate".into(),
                value: QuotaValue::new(1024.0),
            },
            MetadataRecord::ClientQuota {
                entity: QuotaEntity {
                    user: Some(EntityName::Default),
                    client_id: Some(EntityName::Named("c".into())),
                },
                key: "request_percentage".into(),
                value: None,
            },
            MetadataRecord::AccessControlEntry {
                id: Uuid::from_u128(9),
                acl: AclBinding {
                    resource_type: 2,
                    resource_name: "orders".into(),
                    pattern_type: 4,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission_type: 3,
                },
            },
            MetadataRecord::RemoveAccessControlEntry {
                id: Uuid::from_u128(9),
            },
            MetadataRecord::RemoveTopic { topic_id },
        ]
    }

    #[test]
    fn every_record_type_round_trips() {
        let records = sample_records();
        let bytes = encode_batch(&records);
        assert_eq!(decode_batch(&bytes, 100).unwrap(), records);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let bytes = encode_batch(&sample_records());
        for len in 0..bytes.len() {
            assert!(
                decode_batch(&bytes[..len], 100).is_err(),
                "prefix {len} decoded"
            );
        }
    }

    #[test]
    fn hostile_counts_are_refused_before_allocation() {
        let mut bytes = vec![BATCH_FORMAT];
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(
            decode_batch(&bytes, usize::MAX),
            Err(DecodeError::TooLong {
                what: "record count",
                len: u32::MAX as usize,
                max: 0
            })
        );
        // A Partition record whose replica list claims four billion entries.
        let record = MetadataRecord::Partition {
            topic_id: Uuid::nil(),
            partition_index: 0,
            replicas: vec![],
            isr: vec![],
            leader: 0,
            leader_epoch: 0,
            partition_epoch: 0,
        };
        let mut bytes = encode_batch(&[record]);
        let replicas_at = BATCH_HEADER_BYTES + RECORD_HEADER_BYTES + 16 + 4;
        bytes[replicas_at..replicas_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decode_batch(&bytes, 10),
            Err(DecodeError::TooLong { what: "list", .. })
        ));
    }

    #[test]
    fn unknown_type_version_and_format_are_errors() {
        let mut bytes = encode_batch(&[MetadataRecord::UnregisterBroker { broker_id: 1 }]);
        let type_at = BATCH_HEADER_BYTES + 4;
        bytes[type_at + 1] = 99;
        assert_eq!(decode_batch(&bytes, 10), Err(DecodeError::UnknownType(99)));
        bytes[type_at + 1] = 2;
        bytes[type_at + 2] = 1;
        assert_eq!(
            decode_batch(&bytes, 10),
            Err(DecodeError::UnsupportedVersion {
                record_type: 2,
                version: 1
            })
        );
        bytes[0] = 0;
        assert_eq!(decode_batch(&bytes, 10), Err(DecodeError::UnknownFormat(0)));
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut bytes = encode_batch(&[MetadataRecord::UnregisterBroker { broker_id: 1 }]);
        bytes.push(0);
        assert_eq!(decode_batch(&bytes, 10), Err(DecodeError::TrailingBytes(1)));
    }
}
