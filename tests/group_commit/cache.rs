//! The cache while a group commits.

use redis::Commands;

use crate::gate::{Gate, wait_for_lock_waiter};
use crate::support::{PgDatabase, RedisServer, Spillway};

/// While a write's COMMIT is under way, the cache holds no row of its keys
/// (the writer's lease stands there), so no reader can see the new row in
/// the database and then the old one in the cache. The COMMIT is held by a
/// deferred constraint trigger that waits for the test's lock.
#[test]
fn while_a_write_commits_the_cache_holds_no_row_of_its_keys() {
    const COMMIT_GATE: i64 = 424_242;
    let redis = RedisServer::start();
    let pg = PgDatabase::create();
    let sp = Spillway::start(&[
        ("SPILLWAY__CACHE__BACKEND", "redis"),
        ("SPILLWAY__CACHE__URL", &redis.url()),
        ("SPILLWAY__DATABASE__URL", &pg.url()),
    ]);
    let mut c = sp.conn();
    let _: () = c.set("c", "old").expect("SET");
    let _: String = c.get("c").expect("GET");
    let mut cache = redis.conn();
    let cached = |cache: &mut redis::Connection| -> Option<Vec<u8>> {
        cache.get("spillway:c").expect("redis GET")
    };
    assert!(
        cached(&mut cache).is_some_and(|v| v.first() != Some(&b'L')),
        "the old row is cached"
    );
    pg.psql(&format!(
        "CREATE FUNCTION wait_gate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           PERFORM pg_advisory_lock({COMMIT_GATE}); PERFORM pg_advisory_unlock({COMMIT_GATE}); \
           RETURN NULL; END $$; \
         CREATE CONSTRAINT TRIGGER wait_gate AFTER INSERT OR UPDATE ON spillway_kv \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION wait_gate()"
    ));
    let gate = Gate::hold_id(&pg.url(), COMMIT_GATE);
    let mut writer = sp.raw();
    writer.send_cmd(&["SET", "c", "new"]);
    wait_for_lock_waiter(&pg);
    let during = cached(&mut cache);
    assert!(
        during.as_ref().is_none_or(|v| v.first() == Some(&b'L')),
        "a row is cached while its write commits: {:?}",
        during.map(|v| String::from_utf8_lossy(&v).into_owned())
    );
    let v: String = c.get("c").expect("GET during the commit");
    assert_eq!(v, "old", "not committed yet");
    gate.release();
    assert_eq!(writer.read_reply(), b"+OK\r\n");
    let v: String = c.get("c").expect("GET after the commit");
    assert_eq!(v, "new");
}
