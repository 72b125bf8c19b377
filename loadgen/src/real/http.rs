//! Where an HTTP/1.x response ends (RFC 9112 §6.3): the head is parsed with
//! httparse; the body is then delimited by `Transfer-Encoding: chunked`, else
//! by `Content-Length`, else by the server closing the connection. The body is
//! counted, never stored.

/// Most bytes of a response head, or of a chunk-size line or trailer section.
const MAX_HEAD: usize = 64 * 1024;

/// Why a response could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BadResponse {
    Parse(httparse::Error),
    HeadTooLong,
    BadLength,
}

#[derive(Debug, PartialEq, Eq)]
enum Body {
    /// Bytes of the body still to come.
    Length(u64),
    /// Inside a chunk: its bytes still to come, then its CRLF.
    Chunk(u64),
    /// Waiting for a chunk-size line (or, after the last chunk, the trailers).
    ChunkSize,
    Trailers,
    UntilEof,
    Done,
}

/// One response being read. Feed it what arrives; it says when it is complete.
#[derive(Debug)]
pub struct Response {
    /// The head, a chunk-size line or the trailers, until they are whole.
    pending: Vec<u8>,
    body: Option<Body>,
    pub status: Option<u16>,
}

impl Default for Response {
    fn default() -> Self {
        Response::new()
    }
}

impl Response {
    pub fn new() -> Response {
        Response {
            pending: Vec::new(),
            body: None,
            status: None,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.body == Some(Body::Done)
    }

    /// Takes the next bytes of the stream; bytes after the end are ignored.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), BadResponse> {
        while !data.is_empty() {
            let used = match self.body {
                None => self.head(data)?,
                Some(Body::Length(n)) => {
                    let take = n.min(data.len() as u64);
                    self.body = Some(if take == n {
                        Body::Done
                    } else {
                        Body::Length(n - take)
                    });
                    take as usize
                }
                // The chunk's data and then its 2-byte CRLF, counted as one run.
                Some(Body::Chunk(n)) => {
                    let take = n.min(data.len() as u64);
                    self.body = Some(if take == n {
                        Body::ChunkSize
                    } else {
                        Body::Chunk(n - take)
                    });
                    take as usize
                }
                Some(Body::ChunkSize) => self.chunk_size(data)?,
                Some(Body::Trailers) => self.trailers(data)?,
                Some(Body::UntilEof) => data.len(),
                Some(Body::Done) => return Ok(()),
            };
            data = &data[used..];
        }
        Ok(())
    }

    /// The server closed: a body delimited by the close ends here.
    pub fn eof(&mut self) {
        if self.body == Some(Body::UntilEof) {
            self.body = Some(Body::Done);
        }
    }

    /// Buffers `data` onto `pending`, bounded; returns how many bytes were added.
    fn buffer(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        if self.pending.len() + data.len() > MAX_HEAD {
            return Err(BadResponse::HeadTooLong);
        }
        self.pending.extend_from_slice(data);
        Ok(data.len())
    }

    /// Of the `added` bytes just buffered, how many the item of `len` bytes
    /// used; what is left is the next item's and is fed again.
    fn consumed(&mut self, added: usize, len: usize) -> usize {
        let before = self.pending.len() - added;
        self.pending.clear();
        len - before
    }

    fn head(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        let added = self.buffer(data)?;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut r = httparse::Response::new(&mut headers);
        let len = match r.parse(&self.pending).map_err(BadResponse::Parse)? {
            httparse::Status::Partial => return Ok(added),
            httparse::Status::Complete(len) => len,
        };
        let code = r.code.unwrap_or(0);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        // RFC 9112 §6.3: 1xx, 204 and 304 have no body; chunked wins over a length.
        let body = if (100..200).contains(&code) {
            None
        } else if code == 204 || code == 304 {
            Some(Body::Done)
        } else if header("transfer-encoding").is_some_and(|t| t.ends_with("chunked")) {
            Some(Body::ChunkSize)
        } else if let Some(l) = header("content-length") {
            match l.parse::<u64>() {
                Ok(0) => Some(Body::Done),
                Ok(n) => Some(Body::Length(n)),
                Err(_) => return Err(BadResponse::BadLength),
            }
        } else {
            Some(Body::UntilEof)
        };
        // An interim 1xx response is followed by the real one.
        self.status = Some(code).filter(|_| body.is_some());
        self.body = body;
        Ok(self.consumed(added, len))
    }

    fn chunk_size(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        let added = self.buffer(data)?;
        match httparse::parse_chunk_size(&self.pending)
            .map_err(|_| BadResponse::Parse(httparse::Error::Token))?
        {
            httparse::Status::Partial => Ok(added),
            httparse::Status::Complete((len, 0)) => {
                self.body = Some(Body::Trailers);
                Ok(self.consumed(added, len))
            }
            httparse::Status::Complete((len, size)) => {
                self.body = Some(Body::Chunk(size.saturating_add(2)));
                Ok(self.consumed(added, len))
            }
        }
    }

    /// After the last chunk: trailer fields, then an empty line (RFC 9112 §7.1.2).
    fn trailers(&mut self, data: &[u8]) -> Result<usize, BadResponse> {
        let added = self.buffer(data)?;
        let end = if self.pending.starts_with(b"\r\n") {
            Some(2)
        } else {
            self.pending
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map(|p| p + 4)
        };
        match end {
            Some(len) => {
                self.body = Some(Body::Done);
                Ok(self.consumed(added, len))
            }
            None => Ok(added),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes; true once complete.
    fn read(wire: &[u8], step: usize) -> Response {
        let mut r = Response::new();
        for piece in wire.chunks(step) {
            r.feed(piece).unwrap();
        }
        r
    }

    #[test]
    fn content_length_ends_the_body_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        for step in 1..wire.len() {
            let r = read(wire, step);
            assert!(r.is_complete(), "step {step}");
            assert_eq!(r.status, Some(200));
            assert!(!read(&wire[..wire.len() - 1], step).is_complete());
        }
    }

    #[test]
    fn chunked_body_ends_at_the_last_chunk_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: y\r\n\r\n";
        for step in 1..wire.len() {
            assert!(read(wire, step).is_complete(), "step {step}");
            assert!(!read(&wire[..wire.len() - 1], step).is_complete());
        }
        let plain = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert!(read(plain, 3).is_complete());
    }

    #[test]
    fn without_a_length_the_body_ends_at_eof() {
        let mut r = read(b"HTTP/1.0 200 OK\r\n\r\nsome body", 4);
        assert!(!r.is_complete());
        r.eof();
        assert!(r.is_complete());
    }

    #[test]
    fn no_body_statuses_and_interim_responses() {
        assert!(read(b"HTTP/1.1 204 No Content\r\n\r\n", 7).is_complete());
        let r = read(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            5,
        );
        assert!(r.is_complete());
        assert_eq!(r.status, Some(200));
    }

    #[test]
    fn garbage_and_bad_lengths_are_errors() {
        let mut r = Response::new();
        assert!(r.feed(b"\x00\x01 not http\r\n\r\n").is_err());
        let mut r = Response::new();
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
            Err(BadResponse::BadLength)
        );
        let mut r = Response::new();
        let long = vec![b'a'; MAX_HEAD + 1];
        assert!(r.feed(b"HTTP/1.1 200 OK\r\nX: ").is_ok());
        assert_eq!(r.feed(&long), Err(BadResponse::HeadTooLong));
    }
}
