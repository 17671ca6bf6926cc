//! [`VpcdLink`]: an in-process card inserted into vsmartcard's vpcd reader.

use crate::error::{ApduError, Result};
use crate::transport::CardHandler;
use std::io::{self, ErrorKind};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Where vpcd listens for the card of its first reader (Debian's `/etc/reader.conf.d/vpcd`).
pub const DEFAULT_VPCD_ADDR: &str = "127.0.0.1:35963";

/// The PC/SC name of the reader behind [`DEFAULT_VPCD_ADDR`].
pub const VPCD_READER: &str = "Virtual PCD 00 00";

/// How long the link waits for a frame before it looks at its stop flag again.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How long the rest of a frame may take once its first byte has arrived.
const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to vpcd: while it is open, a card is in vpcd's reader.
pub struct VpcdLink {
    addr: String,
    /// The same socket as `connection`'s, kept for socket options and peeking.
    socket: TcpStream,
    connection: vpicc::Connection,
    quickack: bool,
}

impl VpcdLink {
    /// Connects to vpcd at `addr` (`host:port`, usually [`DEFAULT_VPCD_ADDR`]). pcscd sees the
    /// card inserted within about half a second; see [`wait_for_card`](super::wait_for_card).
    pub fn connect(addr: &str) -> Result<Self> {
        let failed = |e: io::Error| match e.kind() {
            ErrorKind::ConnectionRefused => ApduError::Transport(format!(
                "vpcd at {addr} refuses connections: is pcscd running with the vpcd driver \
                 (package vsmartcard-vpcd)?"
            )),
            _ => link_error(addr, "cannot connect", e),
        };
        let stream = TcpStream::connect(addr).map_err(failed)?;
        stream.set_nodelay(true).map_err(failed)?;
        let socket = stream.try_clone().map_err(failed)?;
        Ok(Self {
            addr: addr.to_owned(),
            socket,
            connection: vpicc::Connection::from(stream),
            quickack: true,
        })
    }

    /// Whether to re-arm `TCP_QUICKACK` before every read (on by default; Linux only). Turning
    /// it off costs about 40 ms per APDU and exists to measure that.
    pub fn set_quickack(&mut self, on: bool) {
        self.quickack = on;
    }

    /// Serves `card` until vpcd closes the connection (pcscd stopped: returns `Ok`) or `stop`
    /// is set (returns `Ok` within about 50 ms and closes the connection, which removes the
    /// card). Powers the card on first, to have the ATR vpcd asks for.
    ///
    /// Fails on a broken frame, an unknown control byte or an I/O error.
    pub fn serve(mut self, card: &mut dyn CardHandler, stop: &AtomicBool) -> Result<()> {
        let atr = card.power_on();
        let mut card = Vicc { card, atr };
        while !stop.load(Ordering::Acquire) {
            match self.wait_for_frame()? {
                Frame::Begun => self
                    .connection
                    .poll(&mut card)
                    .map_err(|e| self.error("broken frame", e))?,
                Frame::NotYet => {}
                Frame::Closed => return Ok(()),
            }
        }
        Ok(())
    }

    /// Waits up to [`STOP_POLL`] for the first byte of a frame.
    fn wait_for_frame(&mut self) -> Result<Frame> {
        if self.quickack {
            quickack(&self.socket).map_err(|e| self.error("TCP_QUICKACK", e))?;
        }
        self.socket
            .set_read_timeout(Some(STOP_POLL))
            .map_err(|e| self.error("read timeout", e))?;
        let frame = match self.socket.peek(&mut [0]) {
            Ok(0) => Frame::Closed,
            Ok(_) => Frame::Begun,
            Err(e) => match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted => {
                    Frame::NotYet
                }
                ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => Frame::Closed,
                _ => return Err(self.error("read", e)),
            },
        };
        if let Frame::Begun = frame {
            self.socket
                .set_read_timeout(Some(FRAME_TIMEOUT))
                .map_err(|e| self.error("read timeout", e))?;
        }
        Ok(frame)
    }

    fn error(&self, what: &str, e: io::Error) -> ApduError {
        link_error(&self.addr, what, e)
    }
}

/// Connects to vpcd at `addr` and serves `card` there until vpcd closes the connection or
/// `stop` is set: [`VpcdLink::connect`] then [`VpcdLink::serve`].
pub fn serve_vpcd(card: &mut dyn CardHandler, addr: &str, stop: &AtomicBool) -> Result<()> {
    VpcdLink::connect(addr)?.serve(card, stop)
}

enum Frame {
    Begun,
    NotYet,
    Closed,
}

fn link_error(addr: &str, what: &str, e: io::Error) -> ApduError {
    let detail = match e.kind() {
        ErrorKind::UnexpectedEof => "vpcd closed the connection in the middle of a frame".into(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut => format!(
            "vpcd sent no rest of the frame for {} s",
            FRAME_TIMEOUT.as_secs()
        ),
        _ => e.to_string(),
    };
    ApduError::Transport(format!("vpcd at {addr}: {what}: {detail}"))
}

#[cfg(target_os = "linux")]
fn quickack(socket: &TcpStream) -> io::Result<()> {
    socket2::SockRef::from(socket).set_tcp_quickack(true)
}

#[cfg(not(target_os = "linux"))]
fn quickack(_: &TcpStream) -> io::Result<()> {
    Ok(())
}

/// A [`CardHandler`] as `vpicc` sees a card.
struct Vicc<'a> {
    card: &'a mut dyn CardHandler,
    atr: Vec<u8>,
}

impl vpicc::VSmartCard for Vicc<'_> {
    fn atr(&self) -> &[u8] {
        &self.atr
    }

    fn power_on(&mut self) {
        self.atr = self.card.power_on();
    }

    fn reset(&mut self) {
        self.atr = self.card.power_on();
    }

    fn execute(&mut self, command: &[u8]) -> Vec<u8> {
        let response = self.card.handle(command);
        if response.len() > usize::from(u16::MAX) {
            // vpcd's length field cannot carry it (an extended 65,536-byte answer); say
            // "no precise diagnosis" rather than truncate the frame.
            return vec![0x6F, 0x00];
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::thread;

    /// A card that answers every command with its length and 9000.
    struct Counter {
        powered: u8,
    }

    impl CardHandler for Counter {
        fn power_on(&mut self) -> Vec<u8> {
            self.powered += 1;
            vec![0x3B, 0x00, self.powered]
        }
        fn handle(&mut self, command: &[u8]) -> Vec<u8> {
            vec![command.len() as u8, 0x90, 0x00]
        }
    }

    fn send(stream: &mut TcpStream, payload: &[u8]) {
        // Two writes, as vpcd does.
        stream
            .write_all(&(payload.len() as u16).to_be_bytes())
            .unwrap();
        stream.write_all(payload).unwrap();
    }

    fn receive(stream: &mut TcpStream) -> Vec<u8> {
        let mut length = [0; 2];
        stream.read_exact(&mut length).unwrap();
        let mut payload = vec![0; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut payload).unwrap();
        payload
    }

    /// Plays vpcd: a listener the link connects to.
    fn fake_vpcd() -> (TcpListener, String) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        (listener, addr)
    }

    #[test]
    fn the_link_answers_control_bytes_and_apdus_and_ends_when_vpcd_closes() {
        let (listener, addr) = fake_vpcd();
        let card = thread::spawn(move || {
            let stop = AtomicBool::new(false);
            let mut card = Counter { powered: 0 };
            serve_vpcd(&mut card, &addr, &stop).map(|()| card.powered)
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        send(&mut vpcd, &[0x04]);
        assert_eq!(receive(&mut vpcd), [0x3B, 0x00, 1]);
        send(&mut vpcd, &[0x01]);
        send(&mut vpcd, &[0x04]);
        assert_eq!(receive(&mut vpcd), [0x3B, 0x00, 2]);
        send(&mut vpcd, &[0x00, 0x84, 0x00, 0x00, 0x08]);
        assert_eq!(receive(&mut vpcd), [5, 0x90, 0x00]);
        send(&mut vpcd, &[0x02]);
        send(&mut vpcd, &[0x00]);
        drop(vpcd);
        assert_eq!(card.join().unwrap(), Ok(3));
    }

    #[test]
    fn the_link_stops_when_asked_and_reports_broken_frames() {
        let (listener, addr) = fake_vpcd();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let card = thread::spawn({
            let stop = stop.clone();
            move || serve_vpcd(&mut Counter { powered: 0 }, &addr, &stop)
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        send(&mut vpcd, &[0x04]);
        receive(&mut vpcd);
        stop.store(true, Ordering::Release);
        assert_eq!(card.join().unwrap(), Ok(()));
        assert_eq!(vpcd.read(&mut [0; 1]).unwrap(), 0, "the link closed");

        let (listener, addr) = fake_vpcd();
        let card = thread::spawn(move || {
            serve_vpcd(&mut Counter { powered: 0 }, &addr, &AtomicBool::new(false))
        });
        let (mut vpcd, _) = listener.accept().unwrap();
        vpcd.write_all(&[0x00, 0x05, 0x00, 0x84]).unwrap();
        drop(vpcd);
        let err = card.join().unwrap().unwrap_err().to_string();
        assert!(
            err.ends_with("broken frame: vpcd closed the connection in the middle of a frame"),
            "{err}"
        );
    }

    #[test]
    fn a_refused_connection_names_the_missing_service() {
        let (listener, addr) = fake_vpcd();
        drop(listener);
        let err = serve_vpcd(&mut Counter { powered: 0 }, &addr, &AtomicBool::new(false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("refuses connections"), "{err}");
    }
}
