//! One client connection: read, parse every complete command in the buffer,
//! dispatch them in order, write all replies in one flush (pipelining), and
//! wait for more. Buffers are released while a connection is idle, so idle
//! clients cost a task and a socket, nothing more.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::dispatch::{check_write, dispatch};
use super::session::Session;
use crate::cmd::{self, Exec, Spec};
use crate::engine::Engine;
use crate::net::read_some;
use crate::resp::{Frame, Limits, RequestParser, encode};
use crate::stats::Stats;
use crate::write::Call;

/// Replies are flushed early once this much is buffered.
const FLUSH_AT: usize = 64 * 1024;
/// Idle buffers larger than this are freed rather than kept.
const KEEP_IDLE: usize = 16 * 1024;
/// Largest single read reservation, however large a bulk is announced.
const MAX_RESERVE: usize = 1 << 20;
/// Commands parsed from the buffer before they are executed.
const MAX_BATCH: usize = 1024;

/// The table entry of `argv` if it can join a concurrent run of reads: a
/// read command with the right arity, outside MULTI, from an authenticated
/// client. Anything else goes through `dispatch` one at a time.
fn plain_read(sess: &Session, argv: &[Bytes]) -> Option<&'static Spec> {
    let spec = cmd::lookup(argv.first()?)?;
    let plain = matches!(spec.exec, Exec::Read(_))
        && spec.arity_ok(argv.len())
        && sess.authenticated
        && sess.multi.is_none();
    plain.then_some(spec)
}

/// The table entry of `argv` if it can join a run of writes: a write
/// command with the right arity, outside MULTI, from an authenticated
/// client, that the dispatcher would not refuse. Refusals go through
/// `dispatch` alone, which answers them.
fn plain_write(engine: &Engine, sess: &Session, argv: &[Bytes]) -> Option<&'static Spec> {
    let spec = cmd::lookup(argv.first()?)?;
    let plain = matches!(spec.exec, Exec::Write(_))
        && spec.arity_ok(argv.len())
        && sess.authenticated
        && sess.multi.is_none()
        && check_write(engine, spec, argv).is_none();
    plain.then_some(spec)
}

/// Runs a run of writes as one unit (under write-behind: one WAL request);
/// replies in order, and remembers the logged writes for WAITDB.
async fn write_all(engine: &Engine, sess: &mut Session, calls: &[Call]) -> Vec<Frame> {
    Stats::add(&engine.stats.commands_processed, calls.len() as u64);
    let outcome = engine.write_run(calls).await;
    if let Some(b) = engine.behind() {
        // A connection's seqs only grow: forget those the checkpoint has
        // passed, so one that never asks WAITDB keeps no seq per write.
        let applied = b.writer.backlog.checkpoint();
        while sess.unapplied.front().is_some_and(|&s| s <= applied) {
            sess.unapplied.pop_front();
        }
    }
    for seq in outcome.seqs {
        sess.wrote(Some(seq));
    }
    outcome.replies
}

/// Runs a run of reads over one load of all their keys; replies in order.
async fn read_all(engine: &Engine, calls: &[Call]) -> Vec<Frame> {
    Stats::add(&engine.stats.commands_processed, calls.len() as u64);
    engine.read_many(calls).await
}

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
    let mut batch: Vec<Vec<Bytes>> = Vec::new();
    let mut calls: Vec<Call> = Vec::new();
    loop {
        let mut broken = None;
        while batch.len() < MAX_BATCH {
            match parser.next(&mut input) {
                Ok(Some(argv)) => batch.push(argv),
                Ok(None) => break,
                Err(e) => {
                    broken = Some(e);
                    break;
                }
            }
        }
        let capped = batch.len() == MAX_BATCH;
        let mut commands = batch.drain(..).peekable();
        while let Some(argv) = commands.next() {
            let replies = match plain_read(&sess, &argv) {
                // A run of plain reads loads all its keys at once (one
                // batched round trip to the cache tier, as MGET does), then
                // the handlers run in order over that one working set.
                Some(first) => {
                    calls.clear();
                    calls.push(Call { spec: first, argv });
                    while let Some(spec) = commands.peek().and_then(|a| plain_read(&sess, a)) {
                        let Some(argv) = commands.next() else { break };
                        calls.push(Call { spec, argv });
                    }
                    let replies = read_all(&engine, &calls).await;
                    // Dropped now: arguments pin the read buffer.
                    calls.clear();
                    replies
                }
                None => match plain_write(&engine, &sess, &argv) {
                    // A run of plain writes executes as one unit: under
                    // write-behind its records share one WAL append and
                    // one fsync instead of one group commit each.
                    Some(first) => {
                        let mut calls = Vec::with_capacity(1 + commands.len());
                        calls.push(Call { spec: first, argv });
                        while let Some(spec) =
                            commands.peek().and_then(|a| plain_write(&engine, &sess, a))
                        {
                            let Some(argv) = commands.next() else { break };
                            calls.push(Call { spec, argv });
                        }
                        write_all(&engine, &mut sess, &calls).await
                    }
                    None => vec![dispatch(&engine, &mut sess, argv).await],
                },
            };
            for reply in &replies {
                encode(reply, sess.proto, &mut output);
            }
            if sess.closing {
                let _ = stream.write_all(&output).await;
                return;
            }
            if output.len() >= FLUSH_AT {
                if stream.write_all(&output).await.is_err() {
                    return;
                }
                output.clear();
            }
        }
        if let Some(e) = broken {
            // The stream cannot be resynchronised: say why and close.
            encode(&Frame::err(e), sess.proto, &mut output);
            let _ = stream.write_all(&output).await;
            return;
        }
        if capped {
            // More complete commands may be buffered: run them before reading.
            continue;
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
        match read_some(&stream, &mut input) {
            Ok(Some(0)) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
