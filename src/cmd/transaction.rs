//! MULTI / EXEC / DISCARD / WATCH / UNWATCH.
//!
//! Queued data commands run in EXEC as one unit under the write policy (one
//! database transaction in write-through), after the watched versions are
//! re-checked inside it. Queued session commands (PING, TIME, INFO …) touch
//! no keys; their replies are computed after the block, in their places.

use bytes::Bytes;

use super::Exec;
use crate::engine::Engine;
use crate::resp::Frame;
use crate::server::session::Session;

pub fn multi(sess: &mut Session) -> Frame {
    if sess.multi.is_some() {
        return Frame::err("MULTI calls can not be nested");
    }
    sess.multi = Some(Vec::new());
    Frame::ok()
}

pub fn discard(sess: &mut Session) -> Frame {
    if sess.multi.is_none() {
        return Frame::err("DISCARD without MULTI");
    }
    sess.end_transaction();
    Frame::ok()
}

pub async fn watch(engine: &Engine, sess: &mut Session, argv: &[Bytes]) -> Frame {
    if sess.multi.is_some() {
        return Frame::err("WATCH inside MULTI is not allowed");
    }
    for key in &argv[1..] {
        if sess.watched.iter().any(|w| w.key == key) {
            continue;
        }
        match engine.watch(key).await {
            Ok(w) => sess.watched.push(w),
            Err(e) => return Frame::err(e),
        }
    }
    Frame::ok()
}

pub fn unwatch(sess: &mut Session) -> Frame {
    sess.watched.clear();
    Frame::ok()
}

pub async fn exec(engine: &Engine, sess: &mut Session) -> Frame {
    let Some(queue) = sess.multi.take() else {
        return Frame::err("EXEC without MULTI");
    };
    let failed = sess.multi_failed;
    let watched = std::mem::take(&mut sess.watched);
    sess.end_transaction();
    if failed {
        return Frame::Error("EXECABORT Transaction discarded because of previous errors.".into());
    }
    let data: Vec<_> = queue
        .iter()
        .filter(|c| !matches!(c.spec.exec, Exec::Session))
        .cloned()
        .collect();
    let mut data_replies = if data.is_empty() && watched.is_empty() {
        Vec::new()
    } else {
        match engine.write(&data, &watched).await {
            Ok(outcome) => {
                sess.wrote(outcome.seq);
                match outcome.replies {
                    Some(replies) => replies,
                    None => return Frame::NullArray,
                }
            }
            Err(reply) => return reply,
        }
    }
    .into_iter();
    let mut replies = Vec::with_capacity(queue.len());
    for call in &queue {
        let reply = match call.spec.exec {
            Exec::Session => {
                Box::pin(super::session::run(engine, sess, call.spec, &call.argv)).await
            }
            _ => data_replies
                .next()
                .unwrap_or_else(|| Frame::err("missing reply")),
        };
        replies.push(reply);
    }
    Frame::Array(replies)
}
