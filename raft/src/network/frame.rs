//! The Raft listener's wire format: a 4-byte big-endian length, then a postcard-encoded
//! message. Lengths are checked against [`RAFT_FRAME_BYTES_MAX`] before anything is reserved,
//! and the decoder only ever sees a complete, bounded frame.

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::raft_types::{NodeId, TypeConfig};

pub const LENGTH_PREFIX_BYTES: usize = 4;
/// Largest Raft frame. An AppendEntries carries at most `max_payload_entries` entries of at
/// most `ENTRY_BYTES_MAX` each; a snapshot chunk is much smaller.
pub const RAFT_FRAME_BYTES_MAX: usize = 64 << 20;

/// One request on the Raft listener, with what proves it belongs here.
#[derive(Debug, Serialize, Deserialize)]
pub struct RpcEnvelope {
    /// Derived from the voter set: a node of another cluster is refused, not obeyed.
    pub cluster_fingerprint: u64,
    /// The node the sender means to reach: a misrouted request is refused.
    pub target: NodeId,
    pub request: RpcRequest,
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A controller operation forwarded by a node that is not the active controller.
    Forward(crate::controller::Operation),
    /// A node that is not a voter asks the active controller to add it as a learner, so that
    /// it follows the metadata log at `address` (its Raft listener).
    Join {
        node_id: NodeId,
        address: String,
    },
    /// Removes a voter from the quorum (a decommissioned controller), on the leader.
    RemoveVoter {
        node_id: NodeId,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum RpcResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    Forward(Result<crate::proposer::Proposed, crate::quorum::ProposeError>),
    Join(Result<(), crate::quorum::ProposeError>),
    RemoveVoter(Result<(), crate::quorum::ProposeError>),
}

#[derive(Debug, Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is over the limit")]
    Oversized(usize),
    #[error("empty frame")]
    Empty,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// Checks a length prefix before any buffer is reserved for the frame.
pub fn check_length(length: usize) -> Result<usize, FrameError> {
    if length == 0 {
        return Err(FrameError::Empty);
    }
    if length > RAFT_FRAME_BYTES_MAX {
        return Err(FrameError::Oversized(length));
    }
    Ok(length)
}

/// Bytes reserved up front for a frame's body. The rest grows as bytes arrive, so a peer that
/// declares a large frame and sends little of it holds little memory here.
pub const FRAME_RESERVE_BYTES_MAX: usize = 64 * 1024;

/// One frame's body; a stream that ends anywhere is an error.
pub async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Vec<u8>, FrameError> {
    match read_frame_or_end(reader).await? {
        Some(payload) => Ok(payload),
        None => Err(cut_short("stream ended before a frame")),
    }
}

/// One frame's body, or `None` when the stream ends cleanly before a frame starts (the peer
/// closed its connection between requests). A stream ending inside a frame is an error.
pub async fn read_frame_or_end<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; LENGTH_PREFIX_BYTES];
    if reader.read(&mut prefix[..1]).await? == 0 {
        return Ok(None);
    }
    reader.read_exact(&mut prefix[1..]).await?;
    let length = check_length(u32::from_be_bytes(prefix) as usize)?;
    let mut payload = Vec::with_capacity(length.min(FRAME_RESERVE_BYTES_MAX));
    let read = (&mut *reader)
        .take(length as u64)
        .read_to_end(&mut payload)
        .await?;
    if read != length {
        return Err(cut_short("frame cut short"));
    }
    Ok(Some(payload))
}

fn cut_short(what: &str) -> FrameError {
    FrameError::Io(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        what.to_string(),
    ))
}

/// `message` as one frame: length prefix and postcard body.
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let payload = postcard::to_stdvec(message)?;
    check_length(payload.len())?;
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

pub async fn write_message<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    message: &T,
) -> Result<(), FrameError> {
    let frame = encode_frame(message)?;
    writer.write_all(&frame).await?;
    writer.flush().await?;
    Ok(())
}

pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    Ok(postcard::from_bytes(payload)?)
}

/// A stable 64-bit FNV-1a hash of the voter set, so that every node of one cluster computes
/// the same fingerprint without talking to the others.
pub fn cluster_fingerprint(voters: &std::collections::BTreeMap<NodeId, String>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for (node_id, address) in voters {
        feed(&node_id.to_be_bytes());
        feed(&(address.len() as u64).to_be_bytes());
        feed(address.as_bytes());
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn oversized_and_empty_lengths_are_refused_before_reading_the_body() {
        let mut input: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut input).await,
            Err(FrameError::Oversized(_))
        ));
        let mut input: &[u8] = &[0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut input).await,
            Err(FrameError::Empty)
        ));
    }

    #[tokio::test]
    async fn a_truncated_frame_is_an_error_and_a_clean_end_is_not() {
        let mut input: &[u8] = &[];
        assert!(read_frame_or_end(&mut input).await.unwrap().is_none());
        // Declares the largest frame, sends 3 bytes of it, then the stream ends.
        let mut truncated = (RAFT_FRAME_BYTES_MAX as u32).to_be_bytes().to_vec();
        truncated.extend_from_slice(&[1, 2, 3]);
        let mut input = truncated.as_slice();
        let error = read_frame_or_end(&mut input).await.unwrap_err();
        assert!(
            matches!(&error, FrameError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{error}"
        );
        // A prefix cut in the middle is an error too.
        let mut input: &[u8] = &[0, 0];
        assert!(read_frame_or_end(&mut input).await.is_err());
    }

    #[tokio::test]
    async fn a_vote_round_trips() {
        let envelope = RpcEnvelope {
            cluster_fingerprint: 7,
            target: 2,
            request: RpcRequest::Vote(VoteRequest::new(openraft::Vote::new(3, 1), None)),
        };
        let mut buffer = Vec::new();
        write_message(&mut buffer, &envelope).await.unwrap();
        let mut input = buffer.as_slice();
        let payload = read_frame(&mut input).await.unwrap();
        let decoded: RpcEnvelope = decode(&payload).unwrap();
        assert_eq!(decoded.cluster_fingerprint, 7);
        assert_eq!(decoded.target, 2);
        match decoded.request {
            RpcRequest::Vote(vote) => assert_eq!(vote.vote, openraft::Vote::new(3, 1)),
            other => panic!("decoded {other:?}"),
        }
    }

    #[test]
    fn garbage_never_panics_the_decoder() {
        let mut state = 0x1234_5678_u64;
        for length in 0..512 {
            let bytes: Vec<u8> = (0..length)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let _ = decode::<RpcEnvelope>(&bytes);
        }
    }

    #[test]
    fn fingerprints_differ_for_different_voter_sets() {
        let one = [(1, "127.0.0.1:1".to_string())].into_iter().collect();
        let two = [(1, "127.0.0.1:2".to_string())].into_iter().collect();
        assert_ne!(cluster_fingerprint(&one), cluster_fingerprint(&two));
        assert_eq!(cluster_fingerprint(&one), cluster_fingerprint(&one.clone()));
    }
}
