//! One client connection: read, parse every complete command in the buffer,
//! dispatch them in order, write all replies in one flush (pipelining), and
//! wait for more. Buffers are released while a connection is idle, so idle
//! clients cost a task and a socket, nothing more.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::dispatch::dispatch;
use super::session::Session;
use crate::engine::Engine;
use crate::resp::{Frame, Limits, RequestParser, encode};

/// Replies are flushed early once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;
/// Idle buffers larger than this are freed rather than kept.
const KEEP_IDLE: usize = 16 * 1024;
/// Largest single read reservation, however large a bulk is announced.
const MAX_RESERVE: usize = 1 << 20;

pub async fn serve(
    engine: Arc<Engine>,
    mut stream: TcpStream,
    mut sess: Session,
    shutdown: CancellationToken,
) {
    let limits = Limits {
        max_request_bytes: engine.config.server.max_request_bytes.0 as usize,
        ..Limits::default()
    };
    let mut parser = RequestParser::new(limits);
    let mut input = BytesMut::new();
    let mut output = BytesMut::new();
    loop {
        loop {
            match parser.next(&mut input) {
                Ok(Some(argv)) => {
                    let reply = dispatch(&engine, &mut sess, argv).await;
                    encode(&reply, sess.proto, &mut output);
                    if sess.closing {
                        let _ = stream.write_all(&output).await;
                        return;
                    }
                    if output.len() >= FLUSH_AT && stream.write_all(&output).await.is_err() {
                        return;
                    }
                    if output.len() >= FLUSH_AT {
                        output.clear();
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The stream cannot be resynchronised: say why and close.
                    encode(&Frame::err(e), sess.proto, &mut output);
                    let _ = stream.write_all(&output).await;
                    return;
                }
            }
        }
        if !output.is_empty() {
            if stream.write_all(&output).await.is_err() {
                return;
            }
            output.clear();
        }
        if input.is_empty() && input.capacity() > KEEP_IDLE {
            input = BytesMut::new();
        }
        if output.capacity() > KEEP_IDLE {
            output = BytesMut::new();
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            ready = stream.readable() => {
                if ready.is_err() {
                    return;
                }
            }
        }
        input.reserve(parser.wants().clamp(4096, MAX_RESERVE));
        match stream.try_read_buf(&mut input) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
