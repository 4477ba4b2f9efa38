//! Newline framing with a length cap, for the server side of the socket.
//!
//! [`LineReader`] yields request lines without their newline. A line longer
//! than the cap is reported once as [`Line::TooLong`] and the rest of it is
//! skipped up to the next newline, so one oversized request costs the
//! client an error reply but not its connection, and the server never
//! buffers more than the cap (plus the `\r` of a `\r\n` ending).

use std::io::{self, BufRead, BufReader, ErrorKind, Read};

/// What [`LineReader::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, newline (and a trailing `\r`) removed. A final line
    /// without newline before end of stream counts as complete, so
    /// `printf '{"cmd":"status"}' | socat - UNIX:...` works.
    Complete(Vec<u8>),
    /// The line exceeded the cap; it is being discarded.
    TooLong,
    /// Bytes arrived but no newline yet: the caller may check a deadline
    /// for the whole line before asking again.
    Pending,
    /// The peer closed its side.
    Eof,
}

pub struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl<R: Read> LineReader<R> {
    pub fn new(inner: R, max: usize) -> LineReader<R> {
        LineReader {
            inner: BufReader::with_capacity(16 * 1024, inner),
            line: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// The next line, or [`Line::Pending`] after each read that ended
    /// without a newline. I/O errors (including read timeouts) are
    /// returned as-is; partial data read so far is kept for the next call.
    pub fn next_line(&mut self) -> io::Result<Line> {
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                self.discarding = false;
                if self.line.is_empty() {
                    return Ok(Line::Eof);
                }
                return Ok(self.take_line());
            }
            let newline = avail.iter().position(|&b| b == b'\n');
            let chunk_len = newline.unwrap_or(avail.len());
            let consumed = newline.map_or(avail.len(), |i| i + 1);
            if self.discarding {
                self.inner.consume(consumed);
                if newline.is_none() {
                    return Ok(Line::Pending);
                }
                self.discarding = false;
                continue;
            }
            // One byte over the cap may be the `\r` of a `\r\n` ending,
            // which the cap does not count ([`LineReader::take_line`]).
            if self.line.len() + chunk_len > self.max + 1 {
                self.inner.consume(consumed);
                self.line.clear();
                self.discarding = newline.is_none();
                return Ok(Line::TooLong);
            }
            self.line.extend_from_slice(&avail[..chunk_len]);
            self.inner.consume(consumed);
            return Ok(match newline {
                Some(_) => self.take_line(),
                None => Line::Pending,
            });
        }
    }

    /// The buffered line without a trailing `\r`, or `TooLong` if it is
    /// still over the cap.
    fn take_line(&mut self) -> Line {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let line = std::mem::take(&mut self.line);
        if line.len() > self.max {
            Line::TooLong
        } else {
            Line::Complete(line)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut r = LineReader::new(input, max);
        let mut out = Vec::new();
        loop {
            let l = r.next_line().unwrap();
            if l == Line::Pending {
                continue;
            }
            let eof = l == Line::Eof;
            out.push(l);
            if eof {
                return out;
            }
        }
    }

    #[test]
    fn splits_lines() {
        assert_eq!(
            lines(b"ab\r\ncd\n\nef", 10),
            vec![
                Line::Complete(b"ab".to_vec()),
                Line::Complete(b"cd".to_vec()),
                Line::Complete(b"".to_vec()),
                Line::Complete(b"ef".to_vec()),
                Line::Eof
            ]
        );
    }

    #[test]
    fn too_long_is_skipped_once() {
        assert_eq!(
            lines(b"0123456789\nxyzxyzxyzxyzxyz\nok\n", 10),
            vec![
                Line::Complete(b"0123456789".to_vec()),
                Line::TooLong,
                Line::Complete(b"ok".to_vec()),
                Line::Eof
            ]
        );
        // The cap counts neither the newline nor a `\r` before it.
        assert_eq!(
            lines(b"0123456789\r\n0123456789A\nok\r\n0123456789A", 10),
            vec![
                Line::Complete(b"0123456789".to_vec()),
                Line::TooLong,
                Line::Complete(b"ok".to_vec()),
                Line::TooLong,
                Line::Eof
            ]
        );
        // Longer than the internal buffer.
        let mut big = vec![b'a'; 100_000];
        big.extend_from_slice(b"\nok\n");
        assert_eq!(
            lines(&big, 1000),
            vec![Line::TooLong, Line::Complete(b"ok".to_vec()), Line::Eof]
        );
    }
}
