//! The `aws-chunked` content encoding S3 clients stream uploads in: `<hex size>[;chunk-signature=…]`
//! lines, each followed by that many bytes, a zero-size chunk, then trailing headers (the
//! flexible checksum). Decoded incrementally, so a body never has to be held whole.

use sha2::Digest as _;

use crate::error::S3Error;

/// Checks one chunk of a signed body: its data's hex SHA-256 and its claimed signature.
pub type ChunkVerify = Box<dyn FnMut(&str, &str) -> bool + Send>;

/// Longest chunk header or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes to go.
    Data(u64),
    /// After a chunk's data: its closing CRLF.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailer,
    Done,
}

/// An incremental aws-chunked decoder.
pub struct ChunkDecoder {
    state: State,
    line: Vec<u8>,
    /// Trailing headers, names lower-cased.
    pub trailers: Vec<(String, String)>,
    /// Each chunk's `chunk-signature`, in order (signed streaming uploads).
    pub signatures: Vec<String>,
    /// Each chunk's size, matching `signatures`.
    pub sizes: Vec<u64>,
    /// Verifies each chunk's signature, for signed streaming uploads.
    verify: Option<ChunkVerify>,
    /// The running hash of the current chunk's data (only with `verify`).
    chunk_hash: sha2::Sha256,
}

fn bad_chunk_signature() -> S3Error {
    S3Error::new(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
    )
}

fn malformed(what: &str) -> S3Error {
    S3Error::new(
        "InvalidChunkSizeError",
        400,
        format!("Only the last chunk is allowed to have a size less than 8192 bytes ({what})"),
    )
    .with_resource("aws-chunked")
}

impl Default for ChunkDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkDecoder {
    pub fn new() -> Self {
        Self {
            state: State::Size,
            line: Vec::new(),
            trailers: Vec::new(),
            signatures: Vec::new(),
            sizes: Vec::new(),
            verify: None,
            chunk_hash: sha2::Sha256::new(),
        }
    }

    /// A decoder that checks every chunk's signature with `verify`.
    pub fn signed(verify: ChunkVerify) -> Self {
        let mut d = Self::new();
        d.verify = Some(verify);
        d
    }

    /// Checks the signature of the chunk just finished.
    fn check_chunk(&mut self, data_sha: &str) -> Result<(), S3Error> {
        let Some(v) = self.verify.as_mut() else {
            return Ok(());
        };
        let claimed = match self.signatures.get(self.sizes.len() - 1) {
            Some(s) if self.signatures.len() == self.sizes.len() => s.clone(),
            _ => return Err(bad_chunk_signature()),
        };
        if v(data_sha, &claimed) {
            Ok(())
        } else {
            Err(bad_chunk_signature())
        }
    }

    /// Takes a line from `input` into `self.line`; `Some(consumed)` once the line is complete
    /// (without its CRLF in `self.line`).
    fn take_line(&mut self, input: &[u8]) -> Result<(usize, bool), S3Error> {
        match input.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&input[..i]);
                if self.line.last() == Some(&b'\r') {
                    self.line.pop();
                }
                if self.line.len() > MAX_LINE {
                    return Err(malformed("line too long"));
                }
                Ok((i + 1, true))
            }
            None => {
                self.line.extend_from_slice(input);
                if self.line.len() > MAX_LINE {
                    return Err(malformed("line too long"));
                }
                Ok((input.len(), false))
            }
        }
    }

    /// Decodes `input`, handing each run of payload bytes to `out`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        out: &mut dyn FnMut(&[u8]) -> Result<(), S3Error>,
    ) -> Result<(), S3Error> {
        while !input.is_empty() {
            match self.state {
                State::Size => {
                    let (n, done) = self.take_line(input)?;
                    input = &input[n..];
                    if !done {
                        continue;
                    }
                    let line = String::from_utf8(std::mem::take(&mut self.line))
                        .map_err(|_| malformed("chunk header is not text"))?;
                    let (size, ext) = match line.split_once(';') {
                        Some((s, e)) => (s, Some(e)),
                        None => (line.as_str(), None),
                    };
                    let size = u64::from_str_radix(size.trim(), 16)
                        .map_err(|_| malformed("bad chunk size"))?;
                    if let Some(sig) = ext.and_then(|e| e.trim().strip_prefix("chunk-signature=")) {
                        self.signatures.push(sig.to_string());
                    }
                    self.sizes.push(size);
                    self.state = if size == 0 {
                        self.check_chunk(crate::EMPTY_SHA256)?;
                        State::Trailer
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                    if self.verify.is_some() {
                        self.chunk_hash.update(&input[..n]);
                    }
                    out(&input[..n])?;
                    input = &input[n..];
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        if self.verify.is_some() {
                            let sha = hex::encode(std::mem::take(&mut self.chunk_hash).finalize());
                            self.check_chunk(&sha)?;
                        }
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => {
                    let (n, done) = self.take_line(input)?;
                    input = &input[n..];
                    if done {
                        if !self.line.is_empty() {
                            return Err(malformed("chunk longer than its size"));
                        }
                        self.state = State::Size;
                    }
                }
                State::Trailer => {
                    let (n, done) = self.take_line(input)?;
                    input = &input[n..];
                    if !done {
                        continue;
                    }
                    let line = std::mem::take(&mut self.line);
                    if line.is_empty() {
                        self.state = State::Done;
                        continue;
                    }
                    let line = String::from_utf8(line).map_err(|_| malformed("bad trailer"))?;
                    let (k, v) = line
                        .split_once(':')
                        .ok_or_else(|| malformed("bad trailer"))?;
                    self.trailers
                        .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
                State::Done => {
                    // Anything after the final empty line is not part of the body.
                    return Err(malformed("data after the last chunk"));
                }
            }
        }
        Ok(())
    }

    /// Checks the body ended where the encoding says it does.
    pub fn finish(&mut self) -> Result<(), S3Error> {
        match self.state {
            State::Done => Ok(()),
            // Clients may end the trailer block without its empty line.
            State::Trailer if self.line.is_empty() => Ok(()),
            State::Trailer => {
                let line = String::from_utf8(std::mem::take(&mut self.line))
                    .map_err(|_| malformed("bad trailer"))?;
                let (k, v) = line
                    .split_once(':')
                    .ok_or_else(|| malformed("bad trailer"))?;
                self.trailers
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                Ok(())
            }
            _ => Err(S3Error::incomplete_body()),
        }
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(parts: &[&[u8]]) -> (Vec<u8>, ChunkDecoder) {
        let mut d = ChunkDecoder::new();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut |b| {
                out.extend_from_slice(b);
                Ok(())
            })
            .unwrap();
        }
        d.finish().unwrap();
        (out, d)
    }

    #[test]
    fn unsigned_with_trailer_split_anywhere() {
        let body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n";
        for cut in 0..body.len() {
            let (out, d) = decode(&[&body[..cut], &body[cut..]]);
            assert_eq!(out, b"hello world");
            assert_eq!(d.trailer("x-amz-checksum-crc32"), Some("DUoRhQ=="));
        }
    }

    #[test]
    fn signed_chunks_keep_signatures() {
        let body = b"3;chunk-signature=abc\r\nfoo\r\n0;chunk-signature=def\r\n\r\n";
        let (out, d) = decode(&[body]);
        assert_eq!(out, b"foo");
        assert_eq!(d.signatures, ["abc", "def"]);
    }

    #[test]
    fn signed_chunks_are_checked_in_order() {
        let body = b"3;chunk-signature=s1\r\nfoo\r\n0;chunk-signature=s2\r\n\r\n";
        let foo = hex::encode(sha2::Sha256::digest(b"foo"));
        let want = vec![
            (foo, "s1".to_string()),
            (crate::EMPTY_SHA256.to_string(), "s2".to_string()),
        ];
        let mut seen = want.clone().into_iter();
        let mut d = ChunkDecoder::signed(Box::new(move |sha, sig| {
            seen.next() == Some((sha.to_string(), sig.to_string()))
        }));
        d.feed(body, &mut |_| Ok(())).unwrap();
        d.finish().unwrap();
        let mut d = ChunkDecoder::signed(Box::new(|_, sig| sig == "s1"));
        let e = d.feed(body, &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
        let mut d = ChunkDecoder::signed(Box::new(|_, _| true));
        let e = d.feed(b"3\r\nfoo\r\n", &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.code, "SignatureDoesNotMatch");
    }

    #[test]
    fn truncated_body_is_incomplete() {
        let mut d = ChunkDecoder::new();
        d.feed(b"a\r\nabc", &mut |_| Ok(())).unwrap();
        assert_eq!(d.finish().unwrap_err().code, "IncompleteBody");
        let mut d = ChunkDecoder::new();
        let e = d.feed(b"3\r\nabcdef\r\n", &mut |_| Ok(())).unwrap_err();
        assert_eq!(e.status, 400);
    }
}
