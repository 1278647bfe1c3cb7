//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET, CLIENT.

use bytes::Bytes;

use super::args;
use crate::engine::Engine;
use crate::resp::{Frame, Protocol};
use crate::server::session::Session;

fn s(text: &str) -> Frame {
    Frame::bulk(Bytes::copy_from_slice(text.as_bytes()))
}

pub fn ping(argv: &[Bytes]) -> Frame {
    match argv.len() {
        1 => Frame::Simple("PONG".into()),
        2 => Frame::Bulk(argv[1].clone()),
        _ => Frame::err("wrong number of arguments for 'ping' command"),
    }
}

/// `AUTH pass` or `AUTH default pass`, checked against `server.requirepass`.
pub fn auth(engine: &Engine, sess: &mut Session, argv: &[Bytes]) -> Frame {
    let (user, pass) = match argv.len() {
        2 => (None, &argv[1]),
        3 => (Some(&argv[1]), &argv[2]),
        _ => return Frame::Error("ERR syntax error".into()),
    };
    match check_password(engine, user, pass) {
        Ok(()) => {
            sess.authenticated = true;
            Frame::ok()
        }
        Err(e) => e,
    }
}

fn check_password(engine: &Engine, user: Option<&Bytes>, pass: &[u8]) -> Result<(), Frame> {
    let Some(expected) = &engine.config.server.requirepass else {
        if user.is_none() {
            return Err(Frame::err(
                "AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            ));
        }
        // No password configured: the default user accepts any password.
        return if user.is_some_and(|u| &u[..] == b"default") {
            Ok(())
        } else {
            Err(wrong_pass())
        };
    };
    let user_ok = user.is_none_or(|u| &u[..] == b"default");
    if user_ok && constant_time_eq(expected.as_bytes(), pass) {
        Ok(())
    } else {
        Err(wrong_pass())
    }
}

fn wrong_pass() -> Frame {
    Frame::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`.
pub fn hello(engine: &Engine, sess: &mut Session, argv: &[Bytes]) -> Frame {
    let mut proto = sess.proto;
    if argv.len() > 1 {
        match args::parse_i64(&argv[1]) {
            Some(2) => proto = Protocol::Resp2,
            Some(3) => proto = Protocol::Resp3,
            Some(_) => return Frame::Error("NOPROTO unsupported protocol version".into()),
            None => return Frame::err("Protocol version is not an integer or out of range"),
        }
    }
    let mut i = 2;
    let mut name = None;
    let mut authed = false;
    while i < argv.len() {
        let opt = argv[i].to_ascii_lowercase();
        let more = argv.len() - i - 1;
        if opt == b"auth" && more >= 2 {
            if let Err(e) = check_password(engine, Some(&argv[i + 1]), &argv[i + 2]) {
                return e;
            }
            authed = true;
            i += 3;
        } else if opt == b"setname" && more >= 1 {
            if let Err(e) = valid_name(&argv[i + 1]) {
                return e;
            }
            name = Some(argv[i + 1].clone());
            i += 2;
        } else {
            return Frame::err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&argv[i])
            ));
        }
    }
    if authed {
        sess.authenticated = true;
    }
    if !sess.authenticated {
        return Frame::Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into());
    }
    if let Some(n) = name {
        sess.name = Some(n).filter(|n| !n.is_empty());
    }
    sess.proto = proto;
    let proto_num = if proto == Protocol::Resp3 { 3 } else { 2 };
    Frame::Map(vec![
        (s("server"), s("redis")),
        (s("version"), s(crate::REDIS_VERSION)),
        (s("proto"), Frame::Integer(proto_num)),
        (s("id"), Frame::Integer(sess.id as i64)),
        (s("mode"), s("standalone")),
        (s("role"), s("master")),
        (s("modules"), Frame::Array(vec![])),
    ])
}

/// `SELECT 0` works; Redis reads the index as a C `int` before it looks
/// at the range, so its errors come in that order.
pub fn select(argv: &[Bytes]) -> Frame {
    match args::parse_i64(&argv[1]) {
        None => args::not_integer(),
        Some(n) if i32::try_from(n).is_err() => {
            Frame::err("value is out of range, value must between -2147483648 and 2147483647")
        }
        Some(0) => Frame::ok(),
        Some(_) => Frame::err("DB index is out of range"),
    }
}

pub fn reset(engine: &Engine, sess: &mut Session) -> Frame {
    sess.end_transaction();
    sess.proto = Protocol::Resp2;
    sess.name = None;
    sess.authenticated = engine.config.server.requirepass.is_none();
    Frame::Simple("RESET".into())
}

fn valid_name(name: &[u8]) -> Result<(), Frame> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Frame::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

/// CLIENT SETNAME | GETNAME | ID | SETINFO | INFO | LIST | NO-EVICT | NO-TOUCH | REPLY ON.
pub fn client(sess: &mut Session, argv: &[Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    let arity_err = || {
        Frame::err(format!(
            "wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(&sub)
        ))
    };
    match (&sub[..], argv.len()) {
        (b"setname", 3) => match valid_name(&argv[2]) {
            Ok(()) => {
                sess.name = Some(argv[2].clone()).filter(|n| !n.is_empty());
                Frame::ok()
            }
            Err(e) => e,
        },
        (b"getname", 2) => sess.name.clone().map_or(Frame::Null, Frame::Bulk),
        (b"id", 2) => Frame::Integer(sess.id as i64),
        (b"setinfo", 4) => {
            let attr = argv[2].to_ascii_lowercase();
            if argv[3].iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
                return Frame::err(format!(
                    "{} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&argv[2])
                ));
            }
            match &attr[..] {
                b"lib-name" => sess.lib_name = Some(argv[3].clone()),
                b"lib-ver" => sess.lib_ver = Some(argv[3].clone()),
                _ => {
                    return Frame::err(format!(
                        "Unrecognized option '{}'",
                        String::from_utf8_lossy(&argv[2])
                    ));
                }
            }
            Frame::ok()
        }
        (b"info", 2) => Frame::Verbatim(Bytes::from(client_line(sess) + "\n")),
        (b"list", _) => Frame::Verbatim(Bytes::from(client_line(sess) + "\n")),
        (b"no-evict" | b"no-touch", 3) => match &argv[2].to_ascii_lowercase()[..] {
            b"on" | b"off" => Frame::ok(),
            _ => args::syntax_error(),
        },
        (b"setname" | b"getname" | b"id" | b"setinfo" | b"info" | b"no-evict" | b"no-touch", _) => {
            arity_err()
        }
        _ => Frame::err(format!(
            "unknown subcommand '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

fn client_line(sess: &Session) -> String {
    let name = sess
        .name
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let lib = sess
        .lib_name
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let ver = sess
        .lib_ver
        .as_deref()
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let resp = if sess.proto == Protocol::Resp3 { 3 } else { 2 };
    format!(
        "id={} addr={} name={name} db=0 multi={} resp={resp} lib-name={lib} lib-ver={ver}",
        sess.id,
        sess.addr,
        sess.multi.as_ref().map_or(-1, |q| q.len() as i64)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn client_no_evict_takes_on_or_off() {
        let mut sess = Session::default();
        for (arg, ok) in [("on", true), ("OFF", true), ("maybe", false), ("", false)] {
            let reply = client(&mut sess, &argv(&["client", "no-evict", arg]));
            let want = if ok {
                Frame::ok()
            } else {
                args::syntax_error()
            };
            assert_eq!(reply, want, "{arg:?}");
        }
    }

    #[test]
    fn select_parses_the_index_as_redis_does() {
        assert_eq!(select(&argv(&["select", "0"])), Frame::ok());
        let not_integer = args::not_integer();
        for bad in ["+0", "00", "-0", " 0", "0x0", ""] {
            assert_eq!(select(&argv(&["select", bad])), not_integer, "{bad:?}");
        }
        let range = Frame::err("DB index is out of range");
        assert_eq!(select(&argv(&["select", "1"])), range);
        assert_eq!(select(&argv(&["select", "-2147483648"])), range);
        for wide in ["2147483648", "-2147483649", "99999999999"] {
            let reply = select(&argv(&["select", wide]));
            assert!(
                matches!(&reply, Frame::Error(e) if e.starts_with("ERR value is out of range")),
                "{wide}: {reply:?}"
            );
        }
    }
}
