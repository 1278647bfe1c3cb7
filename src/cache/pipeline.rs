//! A lean pipelined connection to Redis for the hot commands (the read
//! path's MGET), shared by every client connection of this instance.
//!
//! Callers queue requests on a channel; one task owns the socket. Each turn
//! of its loop takes every request queued since the last turn (having
//! yielded once, so that the clients that are ready now add theirs),
//! encodes them all into one buffer and writes it with one call: the
//! commands of many clients travel to Redis together (cross-client
//! batching), while earlier batches are still in flight. Replies come back
//! in the order the commands were written; the task only finds where each
//! reply ends ([`Scanner`]) and hands its bytes to the waiter at the front
//! of a FIFO queue, so parsing happens on the callers' side.
//!
//! Failures: a connection that breaks, sends something that is not RESP2,
//! or leaves its oldest request unanswered for `timeout` (a stopped Redis)
//! is dropped, and every request in flight on it fails (`Unavailable` or
//! `Timeout`, naming "redis"). The next request connects again, bounded by
//! the same timeout; requests queued meanwhile share that attempt's fate.
//! No request waits longer than about `timeout`, and none needs a timer of
//! its own.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use redis::{ConnectionAddr, ConnectionInfo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::reply::{Reply, Scanner};
use crate::error::{Error, Result};
use crate::net::read_some;

/// Named in errors.
const NAME: &str = "redis";
/// Read buffer reservation per read.
const READ_CHUNK: usize = 64 * 1024;
/// Buffers above this size are released once the connection is idle.
const KEEP: usize = 256 * 1024;

/// One command for the pipeline.
#[derive(Debug, Clone)]
pub enum Command {
    /// The command name followed by keys, each sent with the pipeline's key
    /// prefix (`MGET k1 k2 …`).
    Keys(&'static str, Vec<Bytes>),
    /// A command sent exactly as given.
    Args(Vec<Bytes>),
}

/// Where and how to connect: the parts of a `redis://` URL this
/// connection understands.
#[derive(Debug, Clone)]
pub struct Target {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
}

impl Target {
    /// The target of a URL the redis crate has parsed. `None` for what only
    /// the generic client handles (TLS, Unix sockets): callers fall back to
    /// it.
    pub fn from_info(info: &ConnectionInfo) -> Option<Target> {
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        Some(Target {
            host: host.clone(),
            port: *port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
        })
    }
}

struct Request {
    cmd: Command,
    done: oneshot::Sender<Result<Bytes>>,
}

/// A request written to Redis, waiting for its reply.
struct Waiter {
    done: oneshot::Sender<Result<Bytes>>,
    sent: Instant,
}

/// The caller's handle. Cheap to share; the connection task ends when the
/// last handle is dropped.
pub struct Pipeline {
    tx: mpsc::UnboundedSender<Request>,
}

impl Pipeline {
    /// Starts the connection task (it connects on the first request). Must
    /// run inside a Tokio runtime.
    pub fn spawn(target: Target, prefix: Bytes, timeout: Duration) -> Pipeline {
        let (tx, rx) = mpsc::unbounded_channel();
        let driver = Driver {
            rx,
            target,
            prefix,
            timeout,
        };
        tokio::spawn(driver.run());
        Pipeline { tx }
    }

    /// Sends `cmd` and returns its whole reply, unparsed (see
    /// [`Reply::parse`]). An error reply from Redis is a successful call
    /// here: the caller decides what it means.
    pub async fn call(&self, cmd: Command) -> Result<Bytes> {
        let (done, reply) = oneshot::channel();
        if self.tx.send(Request { cmd, done }).is_err() {
            return Err(Error::unavailable(NAME, "connection task stopped"));
        }
        match reply.await {
            Ok(result) => result,
            Err(_) => Err(Error::unavailable(NAME, "connection task stopped")),
        }
    }

    /// As [`call`](Self::call), parsed; an error reply becomes `Unavailable`
    /// with Redis's text.
    pub async fn query(&self, cmd: Command) -> Result<Reply> {
        let frame = self.call(cmd).await?;
        match Reply::parse(&frame) {
            Ok(Reply::Error(text)) => Err(error_reply(&text)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(Error::unavailable(NAME, e)),
        }
    }
}

/// An error reply as an error naming redis.
pub fn error_reply(text: &[u8]) -> Error {
    Error::unavailable(
        NAME,
        String::from_utf8_lossy(text).replace(['\r', '\n'], " "),
    )
}

/// The connection task's state.
struct Driver {
    rx: mpsc::UnboundedReceiver<Request>,
    target: Target,
    prefix: Bytes,
    timeout: Duration,
}

/// Why a connection ended.
enum End {
    /// Every handle is gone: stop.
    Closed,
    /// The connection failed: its waiters get this error; connect again.
    Failed(Error),
}

impl Driver {
    async fn run(mut self) {
        while let Some(first) = self.rx.recv().await {
            let connected = tokio::time::timeout(self.timeout, self.connect()).await;
            let error = match connected {
                Ok(Ok(stream)) => match self.serve(stream, first).await {
                    End::Closed => return,
                    End::Failed(e) => {
                        tracing::debug!(error = %e, "redis pipeline connection dropped");
                        continue;
                    }
                },
                Ok(Err(e)) => e,
                Err(_) => self.timed_out(),
            };
            // Nothing was sent: the first request and all queued behind
            // the failed attempt fail with its error.
            let _ = first.done.send(Err(error.shared()));
            while let Ok(req) = self.rx.try_recv() {
                let _ = req.done.send(Err(error.shared()));
            }
        }
    }

    fn timed_out(&self) -> Error {
        Error::Timeout {
            backend: NAME,
            after: self.timeout,
        }
    }

    /// Opens the socket and runs AUTH and SELECT when the URL asks for them.
    async fn connect(&self) -> Result<TcpStream> {
        let t = &self.target;
        let mut stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .map_err(|e| Error::unavailable(NAME, e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| Error::unavailable(NAME, e))?;
        let mut hello = Vec::new();
        if let Some(password) = &t.password {
            let mut args = vec![Bytes::from_static(b"AUTH")];
            args.extend(t.username.as_ref().map(|u| Bytes::from(u.clone())));
            args.push(Bytes::from(password.clone()));
            hello.push(Command::Args(args));
        }
        if t.db != 0 {
            let db = Bytes::from(t.db.to_string());
            hello.push(Command::Args(vec![Bytes::from_static(b"SELECT"), db]));
        }
        if hello.is_empty() {
            return Ok(stream);
        }
        let mut out = BytesMut::new();
        for cmd in &hello {
            encode(cmd, &self.prefix, &mut out);
        }
        let io = |e: std::io::Error| Error::unavailable(NAME, e);
        stream.write_all(&out).await.map_err(io)?;
        let (mut input, mut scanner) = (BytesMut::new(), Scanner::default());
        for _ in &hello {
            let frame = loop {
                if let Some(n) = scanner
                    .next(&input)
                    .map_err(|e| Error::unavailable(NAME, e))?
                {
                    break input.split_to(n).freeze();
                }
                if stream.read_buf(&mut input).await.map_err(io)? == 0 {
                    return Err(Error::unavailable(NAME, "connection closed by redis"));
                }
            };
            if let Ok(Reply::Error(text)) = Reply::parse(&frame) {
                return Err(error_reply(&text));
            }
        }
        Ok(stream)
    }

    /// Runs one connection until it fails or every handle is dropped.
    async fn serve(&mut self, stream: TcpStream, first: Request) -> End {
        let mut conn = Conn {
            out: BytesMut::new(),
            input: BytesMut::new(),
            scanner: Scanner::default(),
            waiting: VecDeque::new(),
        };
        let end = self.drive(&stream, &mut conn, first).await;
        if let End::Failed(e) = &end {
            for w in conn.waiting.drain(..) {
                let _ = w.done.send(Err(e.shared()));
            }
        }
        end
    }

    async fn drive(&mut self, stream: &TcpStream, c: &mut Conn, first: Request) -> End {
        let mut now = Instant::now();
        c.push(first, &self.prefix, now);
        let mut closed = false;
        let alarm = tokio::time::sleep(self.timeout);
        tokio::pin!(alarm);
        loop {
            while let Ok(req) = self.rx.try_recv() {
                c.push(req, &self.prefix, now);
            }
            while !c.out.is_empty() {
                match stream.try_write(&c.out) {
                    Ok(n) => c.out.advance(n),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return End::Failed(Error::unavailable(NAME, e)),
                }
            }
            if let Some(front) = c.waiting.front() {
                let due = front.sent + self.timeout;
                if due <= now {
                    return End::Failed(self.timed_out());
                }
                if alarm.is_elapsed() || alarm.deadline() > due {
                    alarm.as_mut().reset(due);
                }
            } else if closed {
                return End::Closed;
            } else {
                c.release_idle_buffers();
            }
            let waiting = !c.waiting.is_empty();
            tokio::select! {
                biased;
                ready = stream.readable(), if waiting => {
                    if let Err(e) = ready {
                        return End::Failed(Error::unavailable(NAME, e));
                    }
                    if let Err(e) = c.read(stream) {
                        return End::Failed(e);
                    }
                }
                req = self.rx.recv(), if !closed => match req {
                    Some(req) => {
                        c.push(req, &self.prefix, Instant::now());
                        // Let the other clients that are ready now queue
                        // their commands too, so they share one write.
                        tokio::task::yield_now().await;
                    }
                    None => closed = true,
                },
                ready = stream.writable(), if !c.out.is_empty() => {
                    if let Err(e) = ready {
                        return End::Failed(Error::unavailable(NAME, e));
                    }
                }
                () = &mut alarm, if waiting && !alarm.is_elapsed() => {}
            }
            now = Instant::now();
        }
    }
}

/// One live connection's buffers and the requests in flight on it.
struct Conn {
    out: BytesMut,
    input: BytesMut,
    scanner: Scanner,
    waiting: VecDeque<Waiter>,
}

impl Conn {
    fn push(&mut self, req: Request, prefix: &[u8], now: Instant) {
        encode(&req.cmd, prefix, &mut self.out);
        self.waiting.push_back(Waiter {
            done: req.done,
            sent: now,
        });
    }

    /// Reads what the socket has and completes the waiters whose replies
    /// are whole.
    fn read(&mut self, stream: &TcpStream) -> Result<()> {
        self.input.reserve(READ_CHUNK);
        match read_some(stream, &mut self.input) {
            Ok(Some(0)) => return Err(Error::unavailable(NAME, "connection closed by redis")),
            Ok(Some(_)) => {}
            Ok(None) => return Ok(()),
            Err(e) => return Err(Error::unavailable(NAME, e)),
        }
        while let Some(n) = self
            .scanner
            .next(&self.input)
            .map_err(|e| Error::unavailable(NAME, e))?
        {
            let frame = self.input.split_to(n).freeze();
            let Some(waiter) = self.waiting.pop_front() else {
                return Err(Error::unavailable(NAME, "reply without a request"));
            };
            // A waiter that gave up (its client left) just drops the reply.
            let _ = waiter.done.send(Ok(frame));
        }
        Ok(())
    }

    fn release_idle_buffers(&mut self) {
        if self.input.is_empty() && self.input.capacity() > KEEP {
            self.input = BytesMut::new();
        }
        if self.out.is_empty() && self.out.capacity() > KEEP {
            self.out = BytesMut::new();
        }
    }
}

/// Appends `cmd` as a RESP array of bulk strings.
fn encode(cmd: &Command, prefix: &[u8], out: &mut BytesMut) {
    match cmd {
        Command::Keys(name, keys) => {
            let size: usize = keys.iter().map(|k| k.len() + prefix.len() + 16).sum();
            out.reserve(size + name.len() + 32);
            array_header(out, keys.len() + 1);
            bulk(out, &[name.as_bytes()]);
            for key in keys {
                bulk(out, &[prefix, key]);
            }
        }
        Command::Args(args) => {
            array_header(out, args.len());
            for arg in args {
                bulk(out, &[arg]);
            }
        }
    }
}

fn array_header(out: &mut BytesMut, len: usize) {
    out.put_u8(b'*');
    out.put_slice(itoa::Buffer::new().format(len).as_bytes());
    out.put_slice(b"\r\n");
}

/// One bulk string made of `parts`, written one after the other.
fn bulk(out: &mut BytesMut, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.put_u8(b'$');
    out.put_slice(itoa::Buffer::new().format(len).as_bytes());
    out.put_slice(b"\r\n");
    for part in parts {
        out.put_slice(part);
    }
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_encoded_with_the_prefix_on_keys_only() {
        let mut out = BytesMut::new();
        let keys = vec![Bytes::from_static(b"a"), Bytes::from_static(b"")];
        encode(&Command::Keys("MGET", keys), b"p:", &mut out);
        encode(
            &Command::Args(vec![Bytes::from_static(b"PING")]),
            b"p:",
            &mut out,
        );
        assert_eq!(
            &out[..],
            b"*3\r\n$4\r\nMGET\r\n$3\r\np:a\r\n$2\r\np:\r\n*1\r\n$4\r\nPING\r\n"
        );
    }

    #[test]
    fn only_plain_tcp_urls_get_a_target() {
        use redis::IntoConnectionInfo;
        let info = "redis://u:pw@127.0.0.1:7000/3"
            .into_connection_info()
            .unwrap();
        let t = Target::from_info(&info).unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db), ("127.0.0.1", 7000, 3));
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.password.as_deref(), Some("pw"));
        let unix = "redis+unix:///tmp/redis.sock"
            .into_connection_info()
            .unwrap();
        assert!(Target::from_info(&unix).is_none());
    }
}
