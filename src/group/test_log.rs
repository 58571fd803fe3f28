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
}

pub struct Shared(pub Arc<MemoryLog>);

impl OffsetsLog for Shared {
    fn append(
        &self,
        partition: i32,
        mut batch: BytesMut,
    ) -> Result<(i64, Replicated), ResponseError> {
        let mut partitions = self.0.partitions.lock().unwrap();
        let (bytes, next) = partitions.entry(partition).or_default();
        let header = sluice_storage::BatchHeader::parse(&batch).unwrap();
        sluice_storage::batch::set_base_offset(&mut batch, *next);
        let last_offset = *next + i64::from(header.last_offset_delta);
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
    let mut loaded = HashMap::new();
    offset_records::replay(log.bytes(0), &mut loaded).unwrap();
    coordinator.finish_load(0, 0, loaded);
    coordinator
}
