//! Streamed encryption and decryption for large data.
//!
//! The first message names the session, key and mechanism; the stream is opened then, under
//! the read lock, with the key's permissions checked as for a one-shot call (a refusal is the
//! call's status). From there the multi-part operation (`coffer-crypto`'s `CipherStream` /
//! `DecryptStream`) runs in a task of its own, holding no lock: each input chunk's output is
//! sent as it comes, and the last message carries the final block (and the IV the module
//! generated, for AES-GCM). A client that goes away mid-stream ends only its own stream.

use std::sync::Arc;

use coffer_crypto::{CipherStream, DecryptStream};
use coffer_hsm::{HsmError, ObjectHandle};
use coffer_proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};
use zeroize::Zeroizing;

use crate::convert;
use crate::node::{Node, NodeError};

/// Output chunks buffered ahead of a slow reader.
const BUFFERED_CHUNKS: usize = 4;
/// Largest output chunk sent: AES-GCM releases all its output at the end, which may be more
/// than one message may carry, so output goes out in pieces of at most this (or of half the
/// message limit, if that is smaller).
const MAX_OUTPUT_CHUNK: usize = 1 << 20;

/// Which way the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Encrypt,
    Decrypt,
}

/// A started multi-part operation.
enum Operation {
    Encrypt(CipherStream),
    Decrypt(DecryptStream),
}

impl Operation {
    fn update(&mut self, data: &[u8]) -> Result<Vec<u8>, HsmError> {
        Ok(match self {
            Self::Encrypt(s) => s.update(data)?,
            Self::Decrypt(s) => s.update(data)?,
        })
    }

    /// The last output, and the IV the module generated (AES-GCM encryption without an IV).
    fn finish(self) -> Result<(Vec<u8>, Vec<u8>), HsmError> {
        Ok(match self {
            Self::Encrypt(s) => {
                let last = s.finish()?;
                (last.data, last.generated_iv.unwrap_or_default())
            }
            Self::Decrypt(s) => (s.finish()?, Vec::new()),
        })
    }
}

fn chunk(data: Vec<u8>, generated_iv: Vec<u8>) -> v1::CipherChunk {
    v1::CipherChunk { data, generated_iv, ..v1::CipherChunk::default() }
}

/// Opens the operation named by the first message and starts feeding it.
pub(super) async fn start(
    node: &Arc<Node>,
    mut input: Streaming<v1::CipherChunk>,
    direction: Direction,
) -> Result<ReceiverStream<Result<v1::CipherChunk, Status>>, NodeError> {
    let first = input
        .message()
        .await
        .map_err(|s| NodeError::BadRequest(format!("the stream could not be read: {}", s.message())))?
        .ok_or_else(|| NodeError::BadRequest("the stream ended before its first message".into()))?;
    let mechanism = convert::cipher_mechanism(first.mechanism.clone())?;
    let token = first.session.clone();
    let handle = ObjectHandle(first.key);
    let operation = node
        .blocking(move |node| {
            let session = node.session(&token)?;
            let hsm = node.hsm();
            Ok(match direction {
                Direction::Encrypt => Operation::Encrypt(hsm.encrypt_init(session, handle, &mechanism)?),
                Direction::Decrypt => Operation::Decrypt(hsm.decrypt_init(session, handle, &mechanism)?),
            })
        })
        .await?;
    let (tx, rx) = mpsc::channel(BUFFERED_CHUNKS);
    let output =
        Output { tx, max_chunk: MAX_OUTPUT_CHUNK.min(node.config().limits.max_message_bytes / 2).max(1) };
    tokio::spawn(feed(operation, Zeroizing::new(first.data), input, output));
    Ok(ReceiverStream::new(rx))
}

/// Where the output goes.
struct Output {
    tx: mpsc::Sender<Result<v1::CipherChunk, Status>>,
    max_chunk: usize,
}

impl Output {
    /// Sends `data` in pieces, the IV (if any) with the last one; `false` once the client has
    /// gone away.
    async fn send(&self, data: Vec<u8>, generated_iv: Vec<u8>, last: bool) -> bool {
        let mut pieces: Vec<Vec<u8>> = data.chunks(self.max_chunk).map(<[u8]>::to_vec).collect();
        if pieces.is_empty() && last {
            pieces.push(Vec::new());
        }
        let count = pieces.len();
        let mut iv = Some(generated_iv);
        for (i, piece) in pieces.into_iter().enumerate() {
            let iv = if i + 1 == count { iv.take().unwrap_or_default() } else { Vec::new() };
            if self.tx.send(Ok(chunk(piece, iv))).await.is_err() {
                return false;
            }
        }
        true
    }

    async fn fail(&self, error: HsmError) {
        let _ = self.tx.send(Err(convert::status(&NodeError::Hsm(error)))).await;
    }
}

/// Feeds every input chunk through the operation and sends the output on.
async fn feed(
    mut operation: Operation,
    mut data: Zeroizing<Vec<u8>>,
    mut input: Streaming<v1::CipherChunk>,
    output: Output,
) {
    loop {
        if !data.is_empty() {
            match operation.update(&data) {
                Ok(out) => {
                    if !output.send(out, Vec::new(), false).await {
                        return; // the client went away
                    }
                }
                Err(e) => return output.fail(e).await,
            }
        }
        match input.message().await {
            Ok(Some(next)) => data = Zeroizing::new(next.data),
            Ok(None) => break,
            // A reset or a disconnect: the stream just ends.
            Err(_) => return,
        }
    }
    match operation.finish() {
        Ok((out, iv)) => {
            output.send(out, iv, true).await;
        }
        Err(e) => output.fail(e).await,
    }
}
