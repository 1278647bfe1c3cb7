//! Live reload (SIGHUP, `SPILLWAY RELOAD`, `spillway reload`): the config
//! file is read and validated again, compared with the one in force, and
//! applied only if everything that changed can change while serving. A bad
//! file or a change that needs a restart leaves the running config as it
//! was, with a message saying why.
//!
//! Live: `cache.ttl`, `cache.negative_ttl`, each namespace's `ttl`, and
//! `write.policy` between the policy spillway started with and `read-only`.
//! Everything else (listen address, WAL directory, backends, namespaces'
//! shape …) is fixed for the life of the process.

use std::time::Duration;

use crate::config::{Config, Policy};
use crate::engine::Engine;

/// What a reload changes, once accepted.
#[derive(Debug, PartialEq)]
pub struct Changes {
    pub ttl: Duration,
    pub negative_ttl: Duration,
    pub namespace_ttls: Vec<(String, Option<Duration>)>,
    pub read_only: bool,
    /// One line per changed setting, for the log and the reply.
    pub summary: Vec<String>,
}

/// Checks that `new` differs from `old` only in what can change live;
/// `base` is the write policy spillway started with (its writer).
pub fn plan(old: &Config, new: &Config, base: Policy) -> Result<Changes, String> {
    let restart = |what: String| Err(format!("{what}: a restart is needed to change it"));
    if old.server.listen != new.server.listen {
        return restart(format!(
            "server.listen changed from {} to {}",
            old.server.listen, new.server.listen
        ));
    }
    if old.write_behind.wal_dir != new.write_behind.wal_dir {
        return restart("write_behind.wal_dir changed".into());
    }
    if !matches!(new.write.policy, p if p == base || p == Policy::ReadOnly) {
        return restart(format!(
            "write.policy {:?} (started as {base:?}; only read-only can be switched live)",
            new.write.policy
        ));
    }
    // Everything else must be equal once the live settings are taken out.
    let mut same = new.clone();
    same.cache.ttl = old.cache.ttl;
    same.cache.negative_ttl = old.cache.negative_ttl;
    same.write.policy = old.write.policy;
    if same.namespaces.len() == old.namespaces.len() {
        for (n, o) in same.namespaces.iter_mut().zip(&old.namespaces) {
            n.ttl = o.ttl;
        }
    }
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let sections: [(&str, bool); 5] = [
        ("[server]", differs(&same.server, &old.server)),
        ("[cache]", differs(&same.cache, &old.cache)),
        ("[database]", differs(&same.database, &old.database)),
        (
            "[write_behind]",
            differs(&same.write_behind, &old.write_behind),
        ),
        (
            "[[namespaces]] (other than ttl)",
            differs(&same.namespaces, &old.namespaces),
        ),
    ];
    if let Some((name, _)) = sections.iter().find(|(_, changed)| *changed) {
        return restart(format!("{name} changed"));
    }
    let mut summary = Vec::new();
    let mut note = |key: String, from: String, to: String| {
        if from != to {
            summary.push(format!("{key}: {from} -> {to}"));
        }
    };
    let human = |d: Duration| humantime::format_duration(d).to_string();
    note(
        "cache.ttl".into(),
        human(old.cache.ttl),
        human(new.cache.ttl),
    );
    note(
        "cache.negative_ttl".into(),
        human(old.cache.negative_ttl),
        human(new.cache.negative_ttl),
    );
    note(
        "write.policy".into(),
        format!("{:?}", old.write.policy),
        format!("{:?}", new.write.policy),
    );
    for (o, n) in old.namespaces.iter().zip(&new.namespaces) {
        let show = |t: Option<Duration>| t.map_or("cache.ttl".to_string(), human);
        note(
            format!("namespace {} ttl", n.name),
            show(o.ttl),
            show(n.ttl),
        );
    }
    Ok(Changes {
        ttl: new.cache.ttl,
        negative_ttl: new.cache.negative_ttl,
        namespace_ttls: new
            .namespaces
            .iter()
            .map(|n| (n.name.clone(), n.ttl))
            .collect(),
        read_only: new.write.policy == Policy::ReadOnly,
        summary,
    })
}

impl Engine {
    /// Re-reads the config file and applies what changed; `Err` says why
    /// nothing was applied. Logged either way.
    pub fn reload(&self) -> Result<String, String> {
        let outcome = self.try_reload();
        match &outcome {
            Ok(summary) => tracing::info!(changes = %summary, "configuration reloaded"),
            Err(why) => {
                tracing::error!("configuration reload refused, old configuration kept: {why}")
            }
        }
        outcome
    }

    fn try_reload(&self) -> Result<String, String> {
        let new = Config::load(self.config.source.as_deref()).map_err(|e| e.to_string())?;
        let mut current = self.live_config();
        let changes = plan(&current, &new, self.base_policy())?;
        self.aside.set_ttls(changes.ttl, changes.negative_ttl);
        if let Some(m) = &self.mapped {
            for (name, ttl) in &changes.namespace_ttls {
                m.set_ttl(name, *ttl);
            }
        }
        self.set_read_only(changes.read_only);
        current.cache.ttl = new.cache.ttl;
        current.cache.negative_ttl = new.cache.negative_ttl;
        current.write.policy = new.write.policy;
        for (c, n) in current.namespaces.iter_mut().zip(&new.namespaces) {
            c.ttl = n.ttl;
        }
        self.set_live_config(current);
        Ok(if changes.summary.is_empty() {
            "no changes".into()
        } else {
            changes.summary.join(", ")
        })
    }
}

/// Sends `SPILLWAY RELOAD` to a running spillway at `listen` (a wildcard
/// address means this host) and returns its `+OK` line, or the error it
/// answered with.
pub fn request(listen: &str, password: Option<&str>) -> Result<String, String> {
    use std::io::{BufRead, BufReader, Write};
    let addr = listen
        .replace("0.0.0.0:", "127.0.0.1:")
        .replace("[::]:", "[::1]:");
    let stream = std::net::TcpStream::connect(&addr)
        .map_err(|e| format!("cannot connect to spillway at {addr}: {e}"))?;
    let timeout = Some(Duration::from_secs(30));
    let _ = stream.set_read_timeout(timeout);
    let mut out = Vec::new();
    let mut command = |args: &[&[u8]]| {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    };
    if let Some(p) = password {
        command(&[b"AUTH", p.as_bytes()]);
    }
    command(&[b"SPILLWAY", b"RELOAD"]);
    (&stream)
        .write_all(&out)
        .map_err(|e| format!("cannot send to {addr}: {e}"))?;
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    let replies = if password.is_some() { 2 } else { 1 };
    for _ in 0..replies {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("no reply from {addr}: {e}"))?;
        if let Some(err) = line.strip_prefix('-') {
            return Err(err.trim_end().to_string());
        }
    }
    Ok(line.trim_start_matches('+').trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_settings_apply_and_others_need_a_restart() {
        let old = Config::default();
        let mut new = old.clone();
        new.cache.ttl = Duration::from_secs(5);
        new.write.policy = Policy::ReadOnly;
        let changes = plan(&old, &new, Policy::WriteThrough).expect("live changes");
        assert_eq!(changes.ttl, Duration::from_secs(5));
        assert!(changes.read_only);
        assert_eq!(changes.summary.len(), 2, "{:?}", changes.summary);

        let mut moved = old.clone();
        moved.server.listen = "127.0.0.1:7000".into();
        assert!(
            plan(&old, &moved, Policy::WriteThrough)
                .unwrap_err()
                .contains("server.listen")
        );
        let mut behind = old.clone();
        behind.write.policy = Policy::WriteBehind;
        assert!(
            plan(&old, &behind, Policy::WriteThrough)
                .unwrap_err()
                .contains("restart")
        );
        let mut pool = old.clone();
        pool.database.pool_size = 3;
        assert!(
            plan(&old, &pool, Policy::WriteThrough)
                .unwrap_err()
                .contains("[database]")
        );
        assert_eq!(
            plan(&old, &old, Policy::WriteThrough).map(|c| c.summary),
            Ok(vec![])
        );
    }
}
