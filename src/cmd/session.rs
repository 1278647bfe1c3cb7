//! Routes session commands (connection, server, transaction) to their
//! families. Data commands never come here.

use bytes::Bytes;

use super::{Spec, connection, info, server, transaction};
use crate::engine::Engine;
use crate::resp::Frame;
use crate::server::session::Session;

pub async fn run(engine: &Engine, sess: &mut Session, spec: &Spec, argv: &[Bytes]) -> Frame {
    match spec.name {
        "ping" => connection::ping(argv),
        "echo" => Frame::Bulk(argv[1].clone()),
        "hello" => connection::hello(engine, sess, argv),
        "auth" => connection::auth(engine, sess, argv),
        "select" => connection::select(argv),
        "quit" => {
            sess.closing = true;
            Frame::ok()
        }
        "reset" => connection::reset(engine, sess),
        "client" => connection::client(sess, argv),
        "command" => server::command(argv),
        "info" => info::info(engine, argv).await,
        "dbsize" => server::dbsize(engine).await,
        "time" => server::time(),
        "scan" => server::scan(engine, argv).await,
        "keys" => server::keys(engine, argv).await,
        "flushdb" | "flushall" => server::flush_refused(spec.name),
        "spillway" => server::spillway(engine, argv).await,
        "waitdb" => server::waitdb(engine, sess, argv).await,
        "multi" => transaction::multi(sess),
        "exec" => transaction::exec(engine, sess).await,
        "discard" => transaction::discard(sess),
        "watch" => transaction::watch(engine, sess, argv).await,
        "unwatch" => transaction::unwatch(sess),
        other => Frame::err(format!("command '{other}' is not available here")),
    }
}
