//! A Runtime API connection that answers a post and the next event in one write.
//!
//! Updraft's runtime clients post an invocation's outcome and ask for the next event in one
//! write (HTTP/1.1 pipelining). hyper answers the post with its `202` at once, and the next
//! event follows when the next invocation arrives: two writes, and two wake-ups of a runtime
//! that only waits for the second. [`PipelinedIo`] holds such a `202` back, only when the read
//! that brought the post ended with a whole `GET …/invocation/next` request (so the client
//! has already asked for the next event and is waiting for it anyway), and sends it in front
//! of whatever is written next on the connection, the next event, in one `writev`.
//!
//! A client that waits for the `202` before asking for the next event never has a `GET` behind
//! its post, so it is answered at once as before. The held bytes are never lost: the next
//! write, a shutdown, or dropping the connection (which ends the environment anyway) is what
//! comes after them.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The request line of a `/next`, as HTTP/1.1 clients send it.
const NEXT_REQUEST_LINE: &[u8] = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n";
/// Only the end of a read is searched for it: a `/next` has no body and a few short headers.
const NEXT_SEARCH_WINDOW: usize = 512;
const ACCEPTED_STATUS_LINE: &[u8] = b"HTTP/1.1 202 ";
/// Slices of the write that releases a held answer: the answer and what hyper writes (a head
/// and a body).
const MAX_SLICES: usize = 8;

/// Wraps one Runtime API connection; see the module documentation.
pub(crate) struct PipelinedIo<S> {
    inner: S,
    /// The last read ended with a whole `/next` request that came behind something else.
    next_pipelined: bool,
    /// A `202` held back until the next write; `held[sent..]` is still to be written.
    held: Vec<u8>,
    sent: usize,
}

impl<S> PipelinedIo<S> {
    pub(crate) fn new(inner: S) -> Self {
        PipelinedIo {
            inner,
            next_pipelined: false,
            held: Vec::new(),
            sent: 0,
        }
    }
}

/// Whether `read` (the bytes of one read) ends with a complete `/next` request that is not
/// the only thing in it.
fn ends_with_pipelined_next(read: &[u8]) -> bool {
    if !read.ends_with(b"\r\n\r\n") {
        return false;
    }
    let start = read.len().saturating_sub(NEXT_SEARCH_WINDOW);
    let window = &read[start..];
    let Some(at) = window
        .windows(NEXT_REQUEST_LINE.len())
        .rposition(|w| w == NEXT_REQUEST_LINE)
    else {
        return false;
    };
    // The `/next` head must be the last request: its only blank line is the final one.
    let head = &window[at..window.len() - 2];
    start + at > 0 && !head.windows(4).any(|w| w == b"\r\n\r\n")
}

impl<S: AsyncWrite + Unpin> PipelinedIo<S> {
    /// Writes what is left of the held bytes.
    fn poll_release(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.held.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.held[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.held.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PipelinedIo<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        let read = &buf.filled()[before..];
        if !read.is_empty() {
            this.next_pipelined = ends_with_pipelined_next(read);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PipelinedIo<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let first = bufs.iter().find(|b| !b.is_empty());
        if this.held.is_empty()
            && this.next_pipelined
            && first.is_some_and(|b| b.starts_with(ACCEPTED_STATUS_LINE))
        {
            this.next_pipelined = false;
            let total = bufs.iter().map(|b| b.len()).sum();
            this.held.reserve(total);
            for b in bufs {
                this.held.extend_from_slice(b);
            }
            return Poll::Ready(Ok(total));
        }
        loop {
            if this.held.is_empty() {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
            // The held answer and these bytes in one write; a few slices are enough (a write
            // may take fewer than it is given), and an array keeps the hot path allocation-free.
            let mut iov = [IoSlice::new(&[]); MAX_SLICES];
            iov[0] = IoSlice::new(&this.held[this.sent..]);
            let taken = bufs.len().min(MAX_SLICES - 1);
            iov[1..=taken].copy_from_slice(&bufs[..taken]);
            let n = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, &iov[..=taken]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            let held_left = this.held.len() - this.sent;
            if n < held_left {
                this.sent += n;
                continue;
            }
            this.held.clear();
            this.sent = 0;
            if n > held_left {
                return Poll::Ready(Ok(n - held_left));
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A held answer stays held: flushing it is what this type exists to avoid.
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_release(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    const POST: &[u8] = b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
    const NEXT: &[u8] =
        b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n\r\n";
    const ACCEPTED: &[u8] =
        b"HTTP/1.1 202 Accepted\r\ncontent-length: 15\r\n\r\n{\"status\":\"OK\"}";
    const EVENT: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";

    #[test]
    fn recognises_a_next_request_behind_a_post() {
        assert!(ends_with_pipelined_next(&[POST, NEXT].concat()));
        // Alone, it is not pipelined behind anything.
        assert!(!ends_with_pipelined_next(NEXT));
        // Only the post, or a next that has not ended yet.
        assert!(!ends_with_pipelined_next(POST));
        assert!(!ends_with_pipelined_next(
            &[POST, &NEXT[..NEXT.len() - 2]].concat()
        ));
        // Something else after the next.
        assert!(!ends_with_pipelined_next(&[POST, NEXT, POST].concat()));
        let two_heads = [POST, NEXT, b"GET /x HTTP/1.1\r\n\r\n"].concat();
        assert!(!ends_with_pipelined_next(&two_heads));
    }

    /// Reads what the peer got within a short time.
    async fn available(peer: &mut tokio::io::DuplexStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while let Ok(Ok(n)) =
            tokio::time::timeout(std::time::Duration::from_millis(50), peer.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// A connection that has read `request` in one read, and the peer's end.
    async fn having_read(request: &[u8]) -> (PipelinedIo<DuplexStream>, DuplexStream) {
        let (ours, mut peer) = tokio::io::duplex(4096);
        let mut io = PipelinedIo::new(ours);
        peer.write_all(request).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = io.read(&mut buf).await.unwrap();
        assert_eq!(n, request.len());
        (io, peer)
    }

    #[tokio::test]
    async fn holds_the_accepted_answer_until_the_next_event() {
        let (mut io, mut peer) = having_read(&[POST, NEXT].concat()).await;
        io.write_all(ACCEPTED).await.unwrap();
        io.flush().await.unwrap();
        assert!(available(&mut peer).await.is_empty());
        io.write_all(EVENT).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(available(&mut peer).await, [ACCEPTED, EVENT].concat());
    }

    #[tokio::test]
    async fn answers_at_once_when_no_next_is_waiting() {
        let (mut io, mut peer) = having_read(POST).await;
        io.write_all(ACCEPTED).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(available(&mut peer).await, ACCEPTED);
    }

    #[tokio::test]
    async fn only_accepted_answers_are_held() {
        let (mut io, mut peer) = having_read(&[POST, NEXT].concat()).await;
        let refused = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        io.write_all(refused).await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(available(&mut peer).await, refused);
    }

    #[tokio::test]
    async fn shutdown_sends_a_held_answer() {
        let (mut io, mut peer) = having_read(&[POST, NEXT].concat()).await;
        io.write_all(ACCEPTED).await.unwrap();
        io.shutdown().await.unwrap();
        assert_eq!(available(&mut peer).await, ACCEPTED);
    }

    #[tokio::test]
    async fn a_held_answer_goes_out_whole_through_a_small_pipe() {
        // The peer's buffer takes fewer bytes than the held answer and the event together.
        let (ours, peer) = tokio::io::duplex(16);
        let (mut peer_r, mut peer_w) = tokio::io::split(peer);
        let mut io = PipelinedIo::new(ours);
        let request = tokio::spawn(async move {
            peer_w.write_all(&[POST, NEXT].concat()).await.unwrap();
            peer_w
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while got.len() < POST.len() + NEXT.len() {
            let n = io.read(&mut buf).await.unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        let _peer_w = request.await.unwrap();
        // Sixteen-byte reads never hold a whole request: mark it as a whole read would.
        io.next_pipelined = true;
        io.write_all(ACCEPTED).await.unwrap();
        let writer = tokio::spawn(async move {
            io.write_all(EVENT).await.unwrap();
            io.flush().await.unwrap();
            io
        });
        let mut out = Vec::new();
        while out.len() < ACCEPTED.len() + EVENT.len() {
            let n = peer_r.read(&mut buf).await.unwrap();
            out.extend_from_slice(&buf[..n]);
        }
        writer.await.unwrap();
        assert_eq!(out, [ACCEPTED, EVENT].concat());
    }
}
