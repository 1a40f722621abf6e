//! Writes gathered into one TLS record per request.
//!
//! hyper sends each gRPC request's body from its own task, and the HTTP/2 connection task
//! flushes every time a frame is queued: the headers, then the message, then the empty
//! frame that ends the stream. Written straight through, that is three TLS records and
//! three `writev` calls for one small request, and the node, which answers only once the
//! stream has ended, is woken for each of them; on loopback those, not the cryptography,
//! are most of a small call's cost. [`Batched`] keeps what is written and, on a flush,
//! first lets every other task that is ready run (a Tokio `yield_now`, which resumes only
//! once the scheduler has nothing else to do). By then the body task has queued the rest of
//! the request, and the whole of it goes to the TLS stream in one write: one record.
//!
//! The gathering is bounded: at most [`MAX_GATHERED`] bytes wait (more is written through
//! at once), and a flush yields at most [`MAX_YIELDS`] times, so a busy connection never
//! delays its own bytes for long.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use zeroize::Zeroize;

/// Bytes gathered before they are written through without waiting for a flush.
pub const MAX_GATHERED: usize = 64 * 1024;

/// Yields one flush may take while more is still being gathered.
pub const MAX_YIELDS: u8 = 4;

type Pause = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A stream whose writes are gathered until a flush finds nothing more coming.
pub struct Batched<S> {
    inner: S,
    /// Written by the caller, not yet handed to `inner`; `out[sent..]` is still to go.
    out: Vec<u8>,
    sent: usize,
    /// The yield a flush is waiting on, and how much had been gathered when it began.
    pause: Option<(Pause, usize)>,
    yields: u8,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Batched<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The gathered bytes are request plaintext: only their count is shown.
        f.debug_struct("Batched")
            .field("inner", &self.inner)
            .field("gathered", &(self.out.len() - self.sent))
            .finish()
    }
}

impl<S> Batched<S> {
    /// Wraps `inner`; nothing is gathered yet. The buffer is allocated at its bound once, so
    /// it never moves: no copy of gathered bytes is left behind unwiped in freed memory.
    pub fn new(inner: S) -> Self {
        Batched { inner, out: Vec::with_capacity(MAX_GATHERED), sent: 0, pause: None, yields: 0 }
    }
}

impl<S: AsyncWrite + Unpin> Batched<S> {
    /// Hands everything gathered to `inner`.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        // Requests may hold data to encrypt or a key being imported: wiped once sent. Only
        // the bytes in use: the spare capacity holds nothing that was not wiped this way,
        // and wiping all of it (64 KiB after a large request) would cost every later call.
        self.out.as_mut_slice().zeroize();
        self.out.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Waits until the tasks that are ready have run, as long as they keep adding bytes.
    fn poll_pause(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.out.len() == self.sent || self.yields >= MAX_YIELDS {
                return Poll::Ready(());
            }
            let gathered = self.out.len();
            let (pause, at_start) =
                self.pause.get_or_insert_with(|| (Box::pin(tokio::task::yield_now()), gathered));
            ready!(pause.as_mut().poll(cx));
            let grew = gathered > *at_start;
            self.pause = None;
            self.yields += 1;
            if !grew {
                return Poll::Ready(());
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Batched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Batched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.out.len() + data.len() > MAX_GATHERED {
            ready!(self.poll_drain(cx))?;
            if data.len() > MAX_GATHERED {
                return Pin::new(&mut self.inner).poll_write(cx, data);
            }
        }
        self.out.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pause(cx));
        ready!(self.poll_drain(cx))?;
        self.yields = 0;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> Drop for Batched<S> {
    fn drop(&mut self) {
        self.out.as_mut_slice().zeroize();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::io::AsyncWriteExt;

    use super::*;

    /// Records each write it is handed.
    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<Vec<u8>>>>);

    impl Recorder {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
            self.0.lock().unwrap().push(data.to_vec());
            Poll::Ready(Ok(data.len()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn writes_up_to_a_flush_reach_the_stream_as_one() {
        let recorder = Recorder::default();
        let mut batched = Batched::new(recorder.clone());
        batched.write_all(b"headers").await.unwrap();
        batched.write_all(b"message").await.unwrap();
        assert!(recorder.writes().is_empty(), "nothing goes out before a flush");
        batched.flush().await.unwrap();
        assert_eq!(recorder.writes(), vec![b"headersmessage".to_vec()]);
    }

    #[tokio::test]
    async fn frames_another_task_queues_during_the_flush_join_the_same_write() {
        let recorder = Recorder::default();
        let mut batched = Batched::new(recorder.clone());
        let (frames, mut queued) = tokio::sync::mpsc::unbounded_channel::<&'static [u8]>();
        frames.send(b"headers").unwrap();
        // As hyper's body task does: the rest of the request is queued from another task,
        // which runs only once the connection's task has started its flush.
        tokio::spawn(async move {
            frames.send(b"message").unwrap();
            frames.send(b"trailers").unwrap();
        });
        // As h2's connection task does: write what is queued, then flush; again when woken.
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(frame)) = queued.poll_recv(cx) {
                ready!(Pin::new(&mut batched).poll_write(cx, frame))?;
            }
            Pin::new(&mut batched).poll_flush(cx)
        })
        .await
        .unwrap();
        assert_eq!(recorder.writes(), vec![b"headersmessagetrailers".to_vec()]);
    }

    #[tokio::test]
    async fn more_than_the_bound_is_written_through() {
        let recorder = Recorder::default();
        let mut batched = Batched::new(recorder.clone());
        batched.write_all(&[1; 10]).await.unwrap();
        // Would pass the bound: what was gathered goes first, the new bytes wait.
        batched.write_all(&vec![2; MAX_GATHERED]).await.unwrap();
        assert_eq!(recorder.writes(), vec![vec![1; 10]]);
        // Larger than the bound alone: written through at once, after what was gathered.
        batched.write_all(&vec![3; MAX_GATHERED + 1]).await.unwrap();
        let writes = recorder.writes();
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[1], vec![2; MAX_GATHERED]);
        assert_eq!(writes[2], vec![3; MAX_GATHERED + 1]);
        batched.flush().await.unwrap();
        assert_eq!(recorder.writes().len(), 3, "nothing was left to flush");
        assert_eq!(batched.out.capacity(), MAX_GATHERED, "the buffer never moved");
    }

    #[tokio::test]
    async fn shutdown_writes_what_was_gathered() {
        let recorder = Recorder::default();
        let mut batched = Batched::new(recorder.clone());
        batched.write_all(b"last").await.unwrap();
        batched.shutdown().await.unwrap();
        assert_eq!(recorder.writes(), vec![b"last".to_vec()]);
    }
}
