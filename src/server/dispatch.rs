//! From argv to reply: table lookup, arity and auth checks, MULTI queueing,
//! then the read path, the write policy or a session command. Policy is
//! decided here from the table's flags, never inside a handler.

use bytes::Bytes;

use super::session::Session;
use crate::cmd::{self, Exec, Spec};
use crate::engine::Engine;
use crate::resp::Frame;
use crate::stats::Stats;
use crate::write::Call;

/// Commands allowed before AUTH when `requirepass` is set.
const NO_AUTH: &[&str] = &["auth", "hello", "quit", "reset"];
/// Commands that act immediately inside MULTI instead of being queued.
const TXN_CONTROL: &[&str] = &["exec", "discard", "multi", "watch", "quit", "reset"];

pub async fn dispatch(engine: &Engine, s: &mut Session, argv: Vec<Bytes>) -> Frame {
    Stats::add(&engine.stats.commands_processed, 1);
    let spec = match cmd::lookup(&argv[0]) {
        Some(spec) => spec,
        None => return refuse(s, unknown_command(&argv)),
    };
    if !spec.arity_ok(argv.len()) {
        return refuse_known(s, spec, wrong_arity(spec.name));
    }
    if !s.authenticated && !NO_AUTH.contains(&spec.name) {
        return refuse_known(
            s,
            spec,
            Frame::Error("NOAUTH Authentication required.".into()),
        );
    }
    if s.multi.is_some() && !TXN_CONTROL.contains(&spec.name) {
        if let Some(err) = check_write(engine, spec, &argv) {
            return refuse(s, err);
        }
        if let Some(queue) = s.multi.as_mut() {
            queue.push(Call { spec, argv });
        }
        return Frame::Simple("QUEUED".into());
    }
    match spec.exec {
        Exec::Read(_) => engine.read(&Call { spec, argv }).await,
        Exec::Write(_) => {
            if let Some(err) = check_write(engine, spec, &argv) {
                return err;
            }
            match engine.write(&[Call { spec, argv }], &[]).await {
                Ok(outcome) => {
                    s.wrote(outcome.seq);
                    match outcome.replies {
                        Some(mut replies) => {
                            replies.pop().unwrap_or_else(|| Frame::err("no reply"))
                        }
                        None => Frame::NullArray,
                    }
                }
                Err(reply) => reply,
            }
        }
        Exec::Session => cmd::session::run(engine, s, spec, &argv).await,
    }
}

/// An error while queueing also dooms the transaction (EXECABORT).
fn refuse(s: &mut Session, err: Frame) -> Frame {
    if s.multi.is_some() {
        s.multi_failed = true;
    }
    err
}

/// As [`refuse`] for a command that was found. A refused EXEC discards the
/// transaction and says so, as Redis does, even outside MULTI.
fn refuse_known(s: &mut Session, spec: &Spec, err: Frame) -> Frame {
    match err {
        Frame::Error(text) if spec.name == "exec" => {
            s.end_transaction();
            let why = text.strip_prefix("ERR ").unwrap_or(&text);
            Frame::Error(format!("EXECABORT Transaction discarded because of: {why}"))
        }
        err => refuse(s, err),
    }
}

/// Refuses a write before anything is written: read-only policy, or a key
/// (key + field for hashes) over `server.max_key_bytes`.
pub(super) fn check_write(engine: &Engine, spec: &Spec, argv: &[Bytes]) -> Option<Frame> {
    if !spec.is_write() {
        return None;
    }
    if engine.is_read_only() {
        return Some(crate::engine::read_only_error());
    }
    let max = engine.config.server.max_key_bytes;
    let field_step = match spec.name {
        "hset" | "hmset" => Some(2),
        "hsetnx" | "hincrby" | "hincrbyfloat" => Some(usize::MAX),
        _ => None,
    };
    for key in spec.keys(argv) {
        let longest_field = match field_step {
            Some(step) => argv[2..]
                .iter()
                .step_by(step)
                .map(|f| f.len())
                .max()
                .unwrap_or(0),
            None => 0,
        };
        let len = key.len() + longest_field;
        if len > max {
            return Some(Frame::err(format!(
                "key too long ({len} bytes, key plus field; server.max_key_bytes is {max})"
            )));
        }
    }
    None
}

pub fn unknown_command(argv: &[Bytes]) -> Frame {
    // Redis cuts the name at 128 bytes and the quoted arguments at 128 in all.
    let mut args = String::new();
    for a in argv.iter().skip(1) {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push_str(&format!("'{}' ", printable(&a[..a.len().min(room)])));
    }
    let name = printable(&argv[0][..argv[0].len().min(128)]);
    Frame::err(format!(
        "unknown command '{name}', with args beginning with: {args}"
    ))
}

pub fn wrong_arity(name: &str) -> Frame {
    Frame::err(format!("wrong number of arguments for '{name}' command"))
}

/// Argument text for error messages: no line breaks in an error reply.
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_exec_discards_the_transaction() {
        let mut s = Session::new(1, "test".into(), false);
        s.multi = Some(Vec::new());
        let exec = cmd::lookup(b"exec").unwrap();
        assert_eq!(
            refuse_known(&mut s, exec, wrong_arity("exec")),
            Frame::Error(
                "EXECABORT Transaction discarded because of: wrong number of arguments for 'exec' command"
                    .into()
            )
        );
        assert!(s.multi.is_none() && !s.multi_failed);

        let noauth = Frame::Error("NOAUTH Authentication required.".into());
        assert_eq!(
            refuse_known(&mut s, exec, noauth),
            Frame::Error(
                "EXECABORT Transaction discarded because of: NOAUTH Authentication required."
                    .into()
            )
        );
    }

    #[test]
    fn other_refusals_inside_multi_doom_the_transaction() {
        let mut s = Session::new(1, "test".into(), false);
        s.multi = Some(Vec::new());
        let get = cmd::lookup(b"get").unwrap();
        assert_eq!(
            refuse_known(&mut s, get, wrong_arity("get")),
            wrong_arity("get")
        );
        assert!(s.multi.is_some() && s.multi_failed);
    }
}
