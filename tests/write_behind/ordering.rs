//! Coalescing and per-key order: one random stream of full writes (SET,
//! MSET, DEL), partial writes (HSET, HDEL, APPEND, INCR, HINCRBY) and MULTI
//! blocks over a few keys, sent to a real redis-server and to write-behind
//! spillway. Replies must match, and after the drain every key must read
//! the same through spillway and be stored the same in Postgres as Redis
//! holds it.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::support::{PgDatabase, RawConn, RedisServer, encode_command};
use super::{Stored, start, stored_rows, wait_drained};

const KEYS: usize = 6;
const FIELDS: usize = 4;

fn random_command(rng: &mut StdRng) -> Vec<String> {
    let key = |rng: &mut StdRng| format!("o:{}", rng.random_range(0..KEYS));
    let field = |rng: &mut StdRng| format!("f{}", rng.random_range(0..FIELDS));
    let value = |rng: &mut StdRng| rng.random_range(0..50).to_string();
    let words: Vec<String> = match rng.random_range(0..10) {
        0 | 1 => vec!["SET".into(), key(rng), value(rng)],
        2 => vec!["MSET".into(), key(rng), value(rng), key(rng), value(rng)],
        3 => vec!["DEL".into(), key(rng)],
        4 | 5 => vec!["HSET".into(), key(rng), field(rng), value(rng)],
        6 => vec!["HDEL".into(), key(rng), field(rng)],
        7 => vec!["APPEND".into(), key(rng), value(rng)],
        8 => vec!["INCR".into(), key(rng)],
        _ => vec!["HINCRBY".into(), key(rng), field(rng), "3".into()],
    };
    words
}

/// Sends `commands` pipelined and returns the raw replies.
fn send_all(conn: &mut RawConn, commands: &[Vec<String>]) -> Vec<Vec<u8>> {
    let mut bytes = Vec::new();
    for c in commands {
        bytes.extend(encode_command(c));
    }
    conn.send(&bytes);
    commands.iter().map(|_| conn.read_reply()).collect()
}

/// What Redis (or spillway) holds for `key`: via TYPE, GET and HGETALL.
fn read_key(conn: &mut RawConn, key: &str) -> (Vec<u8>, Vec<u8>) {
    let kind = conn.cmd(&["TYPE", key]);
    let value = match kind.as_slice() {
        b"+string\r\n" => conn.cmd(&["GET", key]),
        b"+hash\r\n" => conn.cmd(&["HGETALL", key]),
        _ => Vec::new(),
    };
    (kind, value)
}

#[test]
fn interleaved_full_and_partial_writes_end_as_redis_ends() {
    let oracle = RedisServer::start();
    let cache = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = start(
        &cache,
        &pg.url(),
        &[("SPILLWAY__WRITE_BEHIND__FLUSH_INTERVAL", "50ms")],
    );
    let mut theirs = RawConn::connect(format!("127.0.0.1:{}", oracle.port()).parse().unwrap());
    let mut ours = sp.raw();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for round in 0..30 {
        let mut batch: Vec<Vec<String>> = (0..20).map(|_| random_command(&mut rng)).collect();
        if round % 3 == 0 {
            // A MULTI block in the middle of the pipeline.
            let block = [
                vec!["MULTI".to_string()],
                random_command(&mut rng),
                random_command(&mut rng),
                vec!["EXEC".to_string()],
            ];
            batch.splice(10..10, block);
        }
        let expected = send_all(&mut theirs, &batch);
        let got = send_all(&mut ours, &batch);
        for ((cmd, e), g) in batch.iter().zip(&expected).zip(&got) {
            assert_eq!(
                String::from_utf8_lossy(g),
                String::from_utf8_lossy(e),
                "round {round}: {cmd:?}"
            );
        }
        if round == 15 {
            assert_eq!(ours.cmd(&["SPILLWAY", "CACHE", "FLUSH"]), b"+OK\r\n");
        }
    }
    wait_drained(&sp);
    assert_eq!(ours.cmd(&["SPILLWAY", "CACHE", "FLUSH"]), b"+OK\r\n");
    let stored = stored_rows(|sql| pg.psql(sql));
    for i in 0..KEYS {
        let key = format!("o:{i}");
        let (kind, value) = read_key(&mut theirs, &key);
        assert_eq!(
            read_key(&mut ours, &key),
            (kind.clone(), value.clone()),
            "{key} through spillway"
        );
        let in_pg = stored.get(&key).cloned().unwrap_or(Stored::Tombstone);
        let want = match kind.as_slice() {
            b"+string\r\n" => {
                let raw = value.split(|&b| b == b'\n').nth(1).unwrap_or_default();
                Stored::Str(raw.strip_suffix(b"\r").unwrap_or(raw).to_vec())
            }
            b"+hash\r\n" => {
                let fields: Vec<Vec<u8>> = theirs_fields(&mut theirs, &key);
                Stored::Hash(
                    fields
                        .chunks(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect(),
                )
            }
            _ => Stored::Tombstone,
        };
        assert_eq!(in_pg, want, "{key} in Postgres");
    }
}

/// HGETALL of `key` on Redis as a flat list of fields and values.
fn theirs_fields(conn: &mut RawConn, key: &str) -> Vec<Vec<u8>> {
    let reply = conn.cmd(&["HGETALL", key]);
    let text = reply
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec());
    text.skip(1)
        .filter(|l| !l.starts_with(b"$") && !l.is_empty())
        .collect()
}
