//! An in-memory offsets log for the coordinator's unit tests: appends stamp offsets like the
//! real log and are "replicated" at once; `reload` replays it as a new leader would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::ResponseError;

use super::{offset_records, GroupConfig, GroupCoordinator, OffsetsLog, Replicated};

#[derive(Default)]
pub struct MemoryLog {
    /// Per offsets partition: its bytes and next offset.
    partitions: Mutex<HashMap<i32, (BytesMut, i64)>>,
    /// Per (partition, producer id): its epoch and next sequence, as the real log checks.
    producers: Mutex<HashMap<(i32, i64), (i16, i32)>>,
}

pub struct Shared(pub Arc<MemoryLog>);

impl OffsetsLog for Shared {
    fn next_sequence(
        &self,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<i32, ResponseError> {
        let producers = self.0.producers.lock().unwrap();
        match producers.get(&(partition, producer_id)) {
            Some((epoch, _)) if *epoch > producer_epoch => Err(ResponseError::InvalidProducerEpoch),
            Some((epoch, next)) if *epoch == producer_epoch => Ok(*next),
            _ => Ok(0),
        }
    }

    fn append(
        &self,
        partition: i32,
        mut batch: BytesMut,
        _verification: Option<sluice_storage::VerificationGuard>,
    ) -> Result<(i64, Replicated), ResponseError> {
        let mut partitions = self.0.partitions.lock().unwrap();
        let (bytes, next) = partitions.entry(partition).or_default();
        let header = sluice_storage::BatchHeader::parse(&batch).unwrap();
        sluice_storage::batch::set_base_offset(&mut batch, *next);
        let last_offset = *next + i64::from(header.last_offset_delta);
        if header.producer_id >= 0 {
            let mut producers = self.0.producers.lock().unwrap();
            let key = (partition, header.producer_id);
            let expected = match producers.get(&key) {
                Some((epoch, _)) if *epoch > header.producer_epoch => {
                    return Err(ResponseError::InvalidProducerEpoch)
                }
                Some((epoch, next)) if *epoch == header.producer_epoch => *next,
                _ => 0,
            };
            assert_eq!(header.base_sequence, expected, "sequences continue");
            let next_sequence = expected + header.last_offset_delta + 1;
            producers.insert(key, (header.producer_epoch, next_sequence));
        }
        *next = last_offset + 1;
        bytes.extend_from_slice(&batch);
        Ok((last_offset, Box::pin(async { Ok(()) })))
    }
}

impl MemoryLog {
    pub fn bytes(&self, partition: i32) -> Bytes {
        let partitions = self.partitions.lock().unwrap();
        partitions
            .get(&partition)
            .map(|(bytes, _)| Bytes::copy_from_slice(bytes))
            .unwrap_or_default()
    }
}

/// A coordinator of one offsets partition, loaded from `log` as its new leader would.
pub fn coordinator_over(config: GroupConfig, log: &Arc<MemoryLog>) -> GroupCoordinator {
    let coordinator = GroupCoordinator::new(config, 1);
    coordinator.attach_log(Box::new(Shared(log.clone())));
    assert!(coordinator.begin_load(0, 0));
    let (mut loaded, mut consumer) = (HashMap::new(), HashMap::new());
    offset_records::replay_all(log.bytes(0), &mut loaded, &mut consumer).unwrap();
    coordinator.finish_load_with(0, 0, loaded, consumer);
    coordinator
}

impl MemoryLog {
    /// Appends a transaction marker (Kafka's control batch) of the producer to `partition`,
    /// as WriteTxnMarkers does; returns its offset.
    pub fn append_marker(
        self: &Arc<Self>,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> i64 {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let control_type: i16 = if commit { 1 } else { 0 };
        let mut key = 0i16.to_be_bytes().to_vec();
        key.extend_from_slice(&control_type.to_be_bytes());
        let mut value = 0i16.to_be_bytes().to_vec();
        value.extend_from_slice(&0i32.to_be_bytes());
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 0,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        };
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        let mut batch = BytesMut::new();
        RecordBatchEncoder::encode(&mut batch, [&record], &options).unwrap();
        // Markers carry no sequence: written straight into the log, past the producer checks.
        let mut partitions = self.partitions.lock().unwrap();
        let (bytes, next) = partitions.entry(partition).or_default();
        sluice_storage::batch::set_base_offset(&mut batch, *next);
        let offset = *next;
        *next += 1;
        bytes.extend_from_slice(&batch);
        offset
    }
}
