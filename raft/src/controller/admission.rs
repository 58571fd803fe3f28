//! Reachable-address admission: the active controller's verdict on whether clients can reach a
//! broker at the address it advertises. The check itself is I/O and runs in the binary; this
//! module only turns a verdict into records.

use uuid::Uuid;

use super::brokers::{fence_broker, BrokerChangeResponse};
use super::{error_code, ControllerResult};
use crate::image::{Admission, BrokerId, MetadataImage, MetadataRecord, STRING_BYTES_MAX};

/// The refusal a registered broker shows until its first check is done.
pub const ADMISSION_PENDING: &str = "waiting for the controller to check the advertised address";

/// One check's outcome for one broker incarnation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdmissionVerdict {
    pub broker_id: BrokerId,
    pub incarnation_id: Uuid,
    /// `None`: admitted. `Some(reason)`: refused.
    pub refusal: Option<String>,
}

/// Records a verdict that changes the broker's admission; a refused broker that is unfenced
/// is fenced too (it stays registered and keeps being checked). A verdict about an older
/// incarnation is ignored: the broker restarted and will be checked again.
pub fn record_admission(
    image: &MetadataImage,
    verdict: &AdmissionVerdict,
) -> ControllerResult<BrokerChangeResponse> {
    let answer = |error_code| BrokerChangeResponse {
        error_code,
        partitions_remaining: false,
    };
    let Some(broker) = image.cluster.broker(verdict.broker_id) else {
        return ControllerResult::new(vec![], answer(error_code::BROKER_ID_NOT_REGISTERED));
    };
    if broker.incarnation_id != verdict.incarnation_id {
        return ControllerResult::new(vec![], answer(error_code::STALE_BROKER_EPOCH));
    }
    let refusal = verdict
        .refusal
        .as_ref()
        .map(|reason| truncated(reason, STRING_BYTES_MAX));
    let admission = match &refusal {
        None => Admission::Admitted,
        Some(reason) => Admission::Refused(reason.clone()),
    };
    let mut records = Vec::new();
    if broker.admission != admission {
        records.push(MetadataRecord::BrokerAdmission {
            broker_id: verdict.broker_id,
            incarnation_id: verdict.incarnation_id,
            refusal: refusal.clone(),
        });
    }
    if refusal.is_none() || broker.fenced {
        return ControllerResult::new(records, answer(error_code::NONE));
    }
    let fence = fence_broker(image, verdict.broker_id);
    let budget = super::RECORDS_PER_OPERATION_MAX - records.len();
    if fence.records.len() > budget {
        // Too many partitions to move in one go: record the refusal now; the next verdict
        // (checks repeat) finishes the fence.
        return ControllerResult::new(records, answer(error_code::NONE));
    }
    records.extend(fence.records);
    ControllerResult::new(records, fence.response)
}

/// `text` cut to at most `bytes_max` bytes on a character boundary.
fn truncated(text: &str, bytes_max: usize) -> String {
    let mut end = text.len().min(bytes_max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
