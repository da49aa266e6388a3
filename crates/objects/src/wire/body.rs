//! Answer bodies: small ones whole, object bodies streamed from their file by a reader on the
//! blocking pool, a bounded number of chunks ahead of the client.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

/// Every S3 answer's body type.
pub type S3Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// Bodies up to this size are read whole with their index lookup.
pub const INLINE_READ: u64 = 256 * 1024;

/// Size of the reads that feed a streamed body.
const CHUNK: usize = 1 << 20;

pub fn full(b: impl Into<Bytes>) -> S3Body {
    http_body_util::Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> S3Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Reads `len` bytes at `offset` of a file whole (small bodies).
pub fn read_range(path: &PathBuf, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0; len as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// A body streamed from an open file.
pub struct FileBody {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
}

impl FileBody {
    /// Streams `len` bytes of `file` from its current position. The file is opened by the
    /// caller, so a body removed after the index was read is still served whole.
    pub fn spawn(mut file: std::fs::File, len: u64) -> S3Body {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            let mut left = len;
            while left > 0 {
                let n = CHUNK.min(left as usize);
                let mut buf = vec![0u8; n];
                let r = file.read_exact(&mut buf).map(|_| Bytes::from(buf));
                let failed = r.is_err();
                if tx.blocking_send(r).is_err() || failed {
                    return;
                }
                left -= n as u64;
            }
        });
        FileBody { rx }.boxed_unsync()
    }
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}
