//! Free TCP ports that stay free for this test process.
//!
//! Binding port 0 and closing the socket is racy once several test binaries
//! (or nextest's one process per test) run at once: the kernel hands the same
//! just-released port to the next asker. Instead a port is drawn at random
//! outside the kernel's ephemeral range (so outgoing connections never take
//! it), claimed with an advisory lock on a per-port file that every test
//! process honours (the kernel drops the lock when the process dies, however
//! it dies), and checked with a bind against anything else on the machine.
//! A claimed port stays with the process, so a server restarted on it finds
//! it still free.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::net::TcpListener;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;

use rand::Rng;

static CLAIMED: Mutex<Option<HashMap<u16, File>>> = Mutex::new(None);

/// A port on 127.0.0.1 that no other test process will be handed and that
/// nothing was listening on when it was picked.
pub fn free_port() -> u16 {
    let range = candidate_range();
    let dir = lock_dir();
    let mut rng = rand::rng();
    let mut claimed = CLAIMED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let claimed = claimed.get_or_insert_with(HashMap::new);
    for _ in 0..2000 {
        let port = rng.random_range(range.clone());
        if claimed.contains_key(&port) {
            continue;
        }
        let Ok(lock) = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{port}.lock")))
        else {
            continue;
        };
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => continue,
            Err(TryLockError::Error(_)) => continue,
        }
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        claimed.insert(port, lock);
        return port;
    }
    panic!(
        "no free port found in {range:?} after 2000 tries (lock files in {})",
        dir.display()
    );
}

/// Ports below the ephemeral range when there is room there, else above it.
fn candidate_range() -> Range<u16> {
    let (low, high) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
            Some((parts.next()??, parts.next()??))
        })
        .unwrap_or((32768, 60999));
    if low >= 12_000 {
        10_000..low
    } else if high < 64_000 {
        high + 1..65_535
    } else {
        20_000..30_000
    }
}

fn lock_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "spillway-test-ports-{}",
        nix::unistd::Uid::effective()
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create port lock directory {}: {e}", dir.display()));
    dir
}
