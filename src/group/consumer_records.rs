//! KIP-848 consumer group membership as records of `__consumer_offsets`, in Kafka's own
//! schemas (`ConsumerGroup*Key/Value`), so a new coordinator rebuilds the group and its
//! members carry on with their member ids and epochs.
//!
//! Keys are non-flexible: `i16 type, string group[, string member]`, type 3 group metadata
//! (group epoch), 5 member metadata, 6 target assignment metadata (assignment epoch), 7 a
//! member's target assignment, 8 a member's current assignment. Values are version 0 of
//! flexible schemas: compact strings and arrays, a tagged-field section after each struct
//! (we write none and skip what we read). A tombstone deletes its key. Type 4 (partition
//! metadata, deprecated by Kafka 4.1) is not written and is skipped on replay.

use bytes::Bytes;
use uuid::Uuid;

use super::assignor::Assignment;
use super::offset_records::RecordError;

const KEY_GROUP_METADATA: i16 = 3;
const KEY_PARTITION_METADATA: i16 = 4;
const KEY_MEMBER_METADATA: i16 = 5;
const KEY_TARGET_METADATA: i16 = 6;
const KEY_TARGET_MEMBER: i16 = 7;
const KEY_CURRENT_ASSIGNMENT: i16 = 8;
const VALUE_VERSION: i16 = 0;

/// Kafka's `MemberState` bytes (its UNKNOWN, a future state, is read as stable).
pub const MEMBER_STATE_STABLE: i8 = 0;
pub const MEMBER_STATE_UNREVOKED: i8 = 1;
pub const MEMBER_STATE_UNRELEASED: i8 = 2;

/// Which record of a consumer group (the group id travels beside it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsumerKey {
    Group,
    TargetAssignment,
    Member(String),
    TargetMember(String),
    CurrentAssignment(String),
}

/// `ConsumerGroupMemberMetadataValue` v0 (the tagged classic metadata is not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// `ConsumerGroupCurrentMemberAssignmentValue` v0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

fn push_string(out: &mut Vec<u8>, text: &str) {
    assert!(text.len() <= i16::MAX as usize, "string too long for a key");
    out.extend_from_slice(&(text.len() as i16).to_be_bytes());
    out.extend_from_slice(text.as_bytes());
}

pub fn encode_key(group: &str, key: &ConsumerKey) -> Bytes {
    let mut out = Vec::with_capacity(8 + group.len());
    let (kind, member) = match key {
        ConsumerKey::Group => (KEY_GROUP_METADATA, None),
        ConsumerKey::TargetAssignment => (KEY_TARGET_METADATA, None),
        ConsumerKey::Member(member) => (KEY_MEMBER_METADATA, Some(member)),
        ConsumerKey::TargetMember(member) => (KEY_TARGET_MEMBER, Some(member)),
        ConsumerKey::CurrentAssignment(member) => (KEY_CURRENT_ASSIGNMENT, Some(member)),
    };
    out.extend_from_slice(&kind.to_be_bytes());
    push_string(&mut out, group);
    if let Some(member) = member {
        push_string(&mut out, member);
    }
    Bytes::from(out)
}

/// Whether a key's type (its first `i16`) is one of the consumer group records.
pub fn is_consumer_key(key_type: i16) -> bool {
    (KEY_GROUP_METADATA..=KEY_CURRENT_ASSIGNMENT).contains(&key_type)
}

/// The group and record a key names; `None` for partition metadata (not used).
pub fn decode_key(bytes: &[u8]) -> Result<Option<(String, ConsumerKey)>, RecordError> {
    let mut reader = Reader { bytes };
    let kind = reader.i16()?;
    let group = reader.string()?;
    let key = match kind {
        KEY_GROUP_METADATA => ConsumerKey::Group,
        KEY_TARGET_METADATA => ConsumerKey::TargetAssignment,
        KEY_PARTITION_METADATA => return Ok(None),
        KEY_MEMBER_METADATA => ConsumerKey::Member(reader.string()?),
        KEY_TARGET_MEMBER => ConsumerKey::TargetMember(reader.string()?),
        KEY_CURRENT_ASSIGNMENT => ConsumerKey::CurrentAssignment(reader.string()?),
        other => return Err(RecordError::Version(other)),
    };
    Ok(Some((group, key)))
}

struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn new() -> Writer {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
        Writer { out }
    }

    fn uvarint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.out.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.out.push(value as u8);
    }

    fn i32(&mut self, value: i32) {
        self.out.extend_from_slice(&value.to_be_bytes());
    }

    fn string(&mut self, text: Option<&str>) {
        match text {
            None => self.uvarint(0),
            Some(text) => {
                self.uvarint(text.len() as u64 + 1);
                self.out.extend_from_slice(text.as_bytes());
            }
        }
    }

    fn no_tagged_fields(&mut self) {
        self.uvarint(0);
    }

    /// `[]TopicPartitions`: topic id, partitions, and each entry's tagged fields.
    fn assignment(&mut self, assignment: &Assignment) {
        self.uvarint(assignment.len() as u64 + 1);
        for (topic_id, partitions) in assignment {
            self.out.extend_from_slice(topic_id.as_bytes());
            self.uvarint(partitions.len() as u64 + 1);
            for partition in partitions {
                self.i32(*partition);
            }
            self.no_tagged_fields();
        }
    }

    fn finish(mut self) -> Bytes {
        self.no_tagged_fields();
        Bytes::from(self.out)
    }
}

/// `ConsumerGroupMetadataValue` (group epoch) or `ConsumerGroupTargetAssignmentMetadataValue`
/// (assignment epoch): one `i32` each.
pub fn encode_epoch(epoch: i32) -> Bytes {
    let mut writer = Writer::new();
    writer.i32(epoch);
    writer.finish()
}

pub fn encode_member(member: &MemberMetadata) -> Bytes {
    let mut writer = Writer::new();
    writer.string(member.instance_id.as_deref());
    writer.string(member.rack_id.as_deref());
    writer.string(Some(&member.client_id));
    writer.string(Some(&member.client_host));
    writer.uvarint(member.subscribed_topic_names.len() as u64 + 1);
    for name in &member.subscribed_topic_names {
        writer.string(Some(name));
    }
    writer.string(member.subscribed_topic_regex.as_deref());
    writer.i32(member.rebalance_timeout_ms);
    writer.string(member.server_assignor.as_deref());
    writer.finish()
}

pub fn encode_target_member(target: &Assignment) -> Bytes {
    let mut writer = Writer::new();
    writer.assignment(target);
    writer.finish()
}

pub fn encode_current(current: &CurrentAssignment) -> Bytes {
    let mut writer = Writer::new();
    writer.i32(current.member_epoch);
    writer.i32(current.previous_member_epoch);
    writer.out.push(current.state as u8);
    writer.assignment(&current.assigned);
    writer.assignment(&current.pending_revocation);
    writer.finish()
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Result<&'a [u8], RecordError> {
        if self.bytes.len() < count {
            return Err(RecordError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(count);
        self.bytes = rest;
        Ok(head)
    }

    fn i8(&mut self) -> Result<i8, RecordError> {
        Ok(self.take(1)?[0] as i8)
    }

    fn i16(&mut self) -> Result<i16, RecordError> {
        let bytes = self.take(2)?;
        Ok(i16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn i32(&mut self) -> Result<i32, RecordError> {
        let bytes = self.take(4)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::Truncated)
    }

    /// A non-flexible (key) string: `i16` length.
    fn string(&mut self) -> Result<String, RecordError> {
        let length = usize::try_from(self.i16()?).map_err(|_| RecordError::Truncated)?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8)
    }

    /// A compact nullable string.
    fn compact_string(&mut self) -> Result<Option<String>, RecordError> {
        let length = self.uvarint()?;
        if length == 0 {
            return Ok(None);
        }
        let length = usize::try_from(length - 1).map_err(|_| RecordError::Truncated)?;
        let bytes = self.take(length)?;
        String::from_utf8(bytes.to_vec())
            .map(Some)
            .map_err(|_| RecordError::Utf8)
    }

    fn required_string(&mut self) -> Result<String, RecordError> {
        self.compact_string()?.ok_or(RecordError::Truncated)
    }

    /// A compact array's length, bounded by the bytes left (every element takes one or more)
    /// so nothing is allocated for a count the record cannot hold.
    fn array_length(&mut self) -> Result<usize, RecordError> {
        let length = self.uvarint()?;
        let length =
            usize::try_from(length.saturating_sub(1)).map_err(|_| RecordError::Truncated)?;
        if length > self.bytes.len() {
            return Err(RecordError::Truncated);
        }
        Ok(length)
    }

    fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        let count = self.uvarint()?;
        for _ in 0..count {
            let _tag = self.uvarint()?;
            let size = usize::try_from(self.uvarint()?).map_err(|_| RecordError::Truncated)?;
            self.take(size)?;
        }
        Ok(())
    }

    fn version(&mut self) -> Result<(), RecordError> {
        match self.i16()? {
            VALUE_VERSION => Ok(()),
            other => Err(RecordError::Version(other)),
        }
    }

    fn assignment(&mut self) -> Result<Assignment, RecordError> {
        let mut assignment = Assignment::new();
        for _ in 0..self.array_length()? {
            let id = Uuid::from_slice(self.take(16)?).map_err(|_| RecordError::Truncated)?;
            let partitions = assignment.entry(id).or_default();
            for _ in 0..self.array_length()? {
                partitions.insert(self.i32()?);
            }
            self.skip_tagged_fields()?;
        }
        Ok(assignment)
    }
}

pub fn decode_epoch(bytes: &[u8]) -> Result<i32, RecordError> {
    let mut reader = Reader { bytes };
    reader.version()?;
    reader.i32()
}

pub fn decode_member(bytes: &[u8]) -> Result<MemberMetadata, RecordError> {
    let mut reader = Reader { bytes };
    reader.version()?;
    let instance_id = reader.compact_string()?;
    let rack_id = reader.compact_string()?;
    let client_id = reader.required_string()?;
    let client_host = reader.required_string()?;
    let count = reader.array_length()?;
    let mut subscribed_topic_names = Vec::with_capacity(count);
    for _ in 0..count {
        subscribed_topic_names.push(reader.required_string()?);
    }
    Ok(MemberMetadata {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex: reader.compact_string()?,
        rebalance_timeout_ms: reader.i32()?,
        server_assignor: reader.compact_string()?,
    })
}

pub fn decode_target_member(bytes: &[u8]) -> Result<Assignment, RecordError> {
    let mut reader = Reader { bytes };
    reader.version()?;
    reader.assignment()
}

pub fn decode_current(bytes: &[u8]) -> Result<CurrentAssignment, RecordError> {
    let mut reader = Reader { bytes };
    reader.version()?;
    Ok(CurrentAssignment {
        member_epoch: reader.i32()?,
        previous_member_epoch: reader.i32()?,
        state: reader.i8()?,
        assigned: reader.assignment()?,
        pending_revocation: reader.assignment()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values_round_trip_in_kafkas_bytes() {
        let key = encode_key("g", &ConsumerKey::Member("m".into()));
        assert_eq!(&key[..], &[0, 5, 0, 1, b'g', 0, 1, b'm'][..]);
        assert_eq!(
            decode_key(&key),
            Ok(Some(("g".into(), ConsumerKey::Member("m".into()))))
        );
        assert_eq!(
            &encode_key("g", &ConsumerKey::Group)[..],
            &[0, 3, 0, 1, b'g']
        );
        assert_eq!(decode_key(&[0, 4, 0, 1, b'g']), Ok(None));
        assert_eq!(&encode_epoch(7)[..], &[0, 0, 0, 0, 0, 7, 0]);
        assert_eq!(decode_epoch(&encode_epoch(7)), Ok(7));
        // A tagged field (Kafka 4.1's MetadataHash, tag 0, 8 bytes) is skipped.
        let tagged = [0, 0, 0, 0, 0, 7, 1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(decode_epoch(&tagged), Ok(7));
        let member = MemberMetadata {
            instance_id: None,
            rack_id: Some("r".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
        };
        assert_eq!(decode_member(&encode_member(&member)), Ok(member));
        let topic = Uuid::from_u128(9);
        let current = CurrentAssignment {
            member_epoch: 4,
            previous_member_epoch: 3,
            state: MEMBER_STATE_UNREVOKED,
            assigned: Assignment::from([(topic, [0, 2].into())]),
            pending_revocation: Assignment::from([(topic, [1].into())]),
        };
        let encoded = encode_current(&current);
        let mut expected = vec![0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 1, 2];
        expected.extend_from_slice(topic.as_bytes());
        expected.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2]);
        expected.extend_from_slice(topic.as_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, 1, 0, 0]);
        assert_eq!(&encoded[..], &expected[..]);
        assert_eq!(decode_current(&encoded), Ok(current.clone()));
        let target = encode_target_member(&current.assigned);
        assert_eq!(decode_target_member(&target), Ok(current.assigned));
    }

    #[test]
    fn bad_values_are_errors_not_panics() {
        assert_eq!(
            decode_epoch(&[0, 1, 0, 0, 0, 1]),
            Err(RecordError::Version(1))
        );
        assert_eq!(decode_epoch(&[0, 0, 0]), Err(RecordError::Truncated));
        // An array claiming far more entries than bytes follow.
        assert_eq!(
            decode_target_member(&[0, 0, 0xff, 0xff, 0xff, 0x0f]),
            Err(RecordError::Truncated)
        );
        assert_eq!(decode_key(&[0, 9, 0, 0]), Err(RecordError::Version(9)));
        for cut in 0..20 {
            let member = encode_member(&MemberMetadata {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "h".into(),
                subscribed_topic_names: vec!["t".into()],
                subscribed_topic_regex: None,
                rebalance_timeout_ms: 1,
                server_assignor: None,
            });
            let _ = decode_member(&member[..cut.min(member.len())]);
        }
    }
}
