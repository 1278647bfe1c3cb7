//! Socket helpers shared by the client connections and the pipelined
//! connection to Redis.

use bytes::BytesMut;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Reads what the socket holds: `Some(0)` at end of stream, `None` when
/// nothing was there after all. A read that leaves room in the buffer took
/// everything the kernel had, so it also clears the socket's readiness, as
/// an `EAGAIN` would: the next wait then sleeps until new data arrives
/// instead of costing one more read that only says `EAGAIN`.
pub fn read_some(stream: &TcpStream, buf: &mut BytesMut) -> std::io::Result<Option<usize>> {
    let mut got = None;
    let read = stream.try_io(Interest::READABLE, || {
        let room = buf.capacity() - buf.len();
        let n = stream.try_read_buf(buf)?;
        got = Some(n);
        if n > 0 && n < room {
            Err(std::io::ErrorKind::WouldBlock.into())
        } else {
            Ok(n)
        }
    });
    match read {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(got),
        Err(e) => Err(e),
    }
}
