//! Child processes owned by the test process: spawning, signals, waiting.
//!
//! A server a test starts must die with the test process even when the
//! harness is killed or aborts; a leaked Postgres or Redis would hold its
//! port and its directory long after the run. Children therefore get a
//! parent-death signal. Linux sends that signal when the *thread* that forked
//! the child exits, and test threads end as soon as their test does, so every
//! child is forked by one spawner thread that lives as long as the process.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Gid, Pid, Uid};

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Who a child runs as. PostgreSQL refuses to run as root, so when the tests
/// run as root its processes switch to an unprivileged account.
#[derive(Clone, Copy, Debug)]
pub struct RunAs {
    pub uid: Uid,
    pub gid: Gid,
}

/// Spawns `cmd` so that it receives `death_signal` if the test process dies.
///
/// Stdin is closed, so no child can ever wait on a terminal; stdout and
/// stderr are whatever the caller set (normally a log file).
pub fn spawn_owned(
    mut cmd: Command,
    death_signal: Signal,
    run_as: Option<RunAs>,
) -> io::Result<Child> {
    cmd.stdin(Stdio::null());
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls (setgroups, setgid, setuid, prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            // Credentials change first: a later change would clear the
            // parent-death signal again.
            if let Some(who) = run_as {
                nix::unistd::setgroups(&[])?;
                nix::unistd::setgid(who.gid)?;
                nix::unistd::setuid(who.uid)?;
            }
            nix::sys::prctl::set_pdeathsig(death_signal)?;
            // The parent may have died before the signal was armed.
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(io::Error::other("test process exited during spawn"));
            }
            Ok(())
        });
    }
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner()
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread dropped the request"))?
}

fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("test-support-spawner".into())
            .spawn(move || {
                // The sender lives in a static, so this loop ends only with the process.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the test support spawner thread");
        tx
    })
}

/// Sends `sig` to the child unless it has already been reaped (its pid may
/// belong to another process by now). A child that is exiting anyway is not
/// an error, so this is safe in `Drop`.
pub fn signal(child: &mut Child, sig: Signal) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = signal::kill(Pid::from_raw(child.id() as i32), sig);
}

/// Polls the child until it exits or `timeout` passes (`None`, also when it
/// cannot be waited for). Never panics, so `Drop` can use it.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(_) => return None,
        }
        if Instant::now() >= deadline {
            return None;
        }
        super::pause(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// SIGKILLs the child and reaps it, so its port and pid are free on return.
pub fn kill_and_reap(child: &mut Child) -> ExitStatus {
    signal(child, Signal::SIGKILL);
    child
        .wait()
        .unwrap_or_else(|e| panic!("cannot reap pid {}: {e}", child.id()))
}

/// Whether the child is still running (reaping it if it is not).
pub fn is_running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// An append-mode log file for a child's stdout and stderr, so restarts
/// keep the history of earlier runs in one place.
pub fn log_file(path: &Path) -> (File, File) {
    let out = File::options()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open log file {}: {e}", path.display()));
    let err = out
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot clone log file handle {}: {e}", path.display()));
    (out, err)
}

/// The current length of a log, to read only what a later run appends.
pub fn log_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The log from byte `offset` on, lossily decoded (logs may hold any bytes).
pub fn read_log_from(path: &Path, offset: u64) -> String {
    let mut text = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.seek(SeekFrom::Start(offset));
        let _ = f.read_to_end(&mut text);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// The last `lines` lines of a log, for failure messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = read_log_from(path, 0);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Looks `name` up in PATH, as a shell would.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether the tests run as root, where servers must drop privileges.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}
