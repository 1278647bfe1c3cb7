//! Live reload through the real binary: SIGHUP, `SPILLWAY RELOAD` and
//! `spillway reload` re-read the config file; TTLs and the read-only switch
//! apply on open connections; a bad file, or a change that needs a restart,
//! is refused and the running configuration stays.

mod support;

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use redis::{Commands, Connection};
use support::{RedisServer, Spillway, poll_until};

fn config(redis: &RedisServer, ttl: &str, policy: &str, pool_size: u32) -> String {
    format!(
        "[cache]\nbackend = \"redis\"\nurl = \"{}\"\nttl = \"{ttl}\"\n\
         [database]\npool_size = {pool_size}\n[write]\npolicy = \"{policy}\"\n",
        redis.url()
    )
}

/// The TTL (ms) of the cache entry a fresh read of `key` leaves in Redis.
fn cached_ttl_ms(c: &mut Connection, redis: &RedisServer, key: &str) -> i64 {
    let _: () = c.set(key, "v").expect("SET");
    let _: String = c.get(key).expect("GET fills the cache");
    redis
        .conn()
        .pttl(format!("spillway:{key}"))
        .expect("PTTL of the cache entry")
}

fn reload(c: &mut Connection) -> Result<String, String> {
    redis::cmd("SPILLWAY")
        .arg("RELOAD")
        .query::<String>(c)
        .map_err(|e| e.to_string())
}

#[test]
fn reload_applies_live_settings_and_refuses_the_rest() {
    let redis = RedisServer::start();
    let mut sp = Spillway::start_with_config(&config(&redis, "10m", "write-through", 16), &[]);
    let path = sp.dir().join("spillway.toml");
    let mut c = sp.conn();
    assert!(cached_ttl_ms(&mut c, &redis, "a") > 60_000);

    // SIGHUP: the new TTL applies to new fills, on the same connection.
    std::fs::write(&path, config(&redis, "5s", "write-through", 16)).expect("write config");
    let pid = sp.pid().expect("spillway runs");
    kill(Pid::from_raw(pid as i32), Signal::SIGHUP).expect("SIGHUP");
    let mut n = 0;
    let applied = poll_until(Duration::from_secs(10), || {
        n += 1;
        let ttl = cached_ttl_ms(&mut c, &redis, &format!("b{n}"));
        ttl > 0 && ttl <= 5_000
    });
    assert!(applied, "cache.ttl = 5s applies after SIGHUP\n{}", sp.log());

    // SPILLWAY RELOAD switches to read-only and back.
    std::fs::write(&path, config(&redis, "5s", "read-only", 16)).expect("write config");
    assert_eq!(reload(&mut c).as_deref(), Ok("OK"));
    let refused = c
        .set::<_, _, ()>("x", "1")
        .expect_err("read-only refuses writes");
    assert!(refused.to_string().contains("read only"), "{refused}");
    std::fs::write(&path, config(&redis, "5s", "write-through", 16)).expect("write config");
    assert_eq!(reload(&mut c).as_deref(), Ok("OK"));
    let _: () = c.set("x", "1").expect("writes again");

    // A change that needs a restart is refused; nothing of it applies.
    std::fs::write(&path, config(&redis, "10m", "write-through", 3)).expect("write config");
    let why = reload(&mut c).expect_err("pool_size needs a restart");
    assert!(
        why.contains("[database]") && why.contains("restart"),
        "{why}"
    );
    let ttl = cached_ttl_ms(&mut c, &redis, "c");
    assert!(
        ttl > 0 && ttl <= 5_000,
        "the refused file's ttl did not apply: {ttl}"
    );
    std::fs::write(&path, config(&redis, "10m", "write-behind", 16)).expect("write config");
    let why = reload(&mut c).expect_err("the write policy needs a restart");
    assert!(why.contains("write.policy"), "{why}");

    // A file that does not parse is refused with a log line.
    std::fs::write(&path, "[cache\nttl = ").expect("write config");
    let why = reload(&mut c).expect_err("a broken file is refused");
    assert!(why.contains("reload refused"), "{why}");
    assert!(
        sp.log().contains("configuration reload refused"),
        "{}",
        sp.log()
    );
    let _: () = c.set("y", "1").expect("still serving");

    // `spillway reload` asks the running process.
    std::fs::write(&path, config(&redis, "1m", "write-through", 16)).expect("write config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_spillway"))
        .arg("--config")
        .arg(&path)
        .arg("reload")
        .env("SPILLWAY__SERVER__LISTEN", sp.addr().to_string())
        .output()
        .expect("run spillway reload");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let ttl = cached_ttl_ms(&mut c, &redis, "d");
    assert!(
        ttl > 5_000 && ttl <= 60_000,
        "cache.ttl = 1m applies: {ttl}"
    );
    assert!(sp.is_running());
}
