//! Field-level reading and writing of frame bodies, and frame I/O on a stream.

use super::protocol::ProtocolError;
use std::io::{self, Read, Write};

/// A cursor over a frame body; every read checks the remaining length and never panics.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if n > self.bytes.len() {
            return Err(ProtocolError::Malformed(
                "field runs past the end of the frame",
            ));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ProtocolError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// A `u16`-length-prefixed byte string.
    pub(crate) fn var(&mut self) -> Result<&'a [u8], ProtocolError> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// Fails unless every byte was consumed.
    pub(crate) fn finish(self) -> Result<(), ProtocolError> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::Malformed(
                "trailing bytes after the last field",
            ))
        }
    }
}

/// Appends fields to a frame body.
#[derive(Default)]
pub(crate) struct Writer {
    pub(crate) bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes.push(value);
        self
    }

    pub(crate) fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    pub(crate) fn fixed(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    /// A `u16`-length-prefixed byte string; fails if it is longer than 65,535 bytes.
    pub(crate) fn var(&mut self, bytes: &[u8]) -> Result<&mut Self, ProtocolError> {
        let len = u16::try_from(bytes.len())
            .map_err(|_| ProtocolError::Malformed("field longer than 65535 bytes"))?;
        self.u16(len);
        self.bytes.extend_from_slice(bytes);
        Ok(self)
    }
}

/// What reading a frame from a stream gave.
pub(crate) enum Frame {
    /// A complete frame body.
    Body(Vec<u8>),
    /// The peer closed the connection between frames.
    Closed,
    /// The length header announces more than the limit; the body was not read.
    TooLarge(u32),
}

/// Reads one frame (`u32` big-endian length, then the body) of at most `max` bytes.
///
/// End of stream inside a frame is an `UnexpectedEof` error.
pub(crate) fn read_frame(stream: &mut impl Read, max: usize) -> io::Result<Frame> {
    let mut header = [0u8; 4];
    let mut filled = 0;
    while filled < header.len() {
        match stream.read(&mut header[filled..]) {
            Ok(0) if filled == 0 => return Ok(Frame::Closed),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes(header);
    if usize::try_from(len).map_or(true, |len| len > max) {
        return Ok(Frame::TooLarge(len));
    }
    let mut body = vec![0; len as usize];
    stream.read_exact(&mut body)?;
    Ok(Frame::Body(body))
}

/// Writes one frame around `body`.
pub(crate) fn write_frame(stream: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame)?;
    stream.flush()
}
