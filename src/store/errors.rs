//! How each backend's failures become an `Error`, named by what the caller
//! does next: retry later (`Unavailable`, `Timeout`), give up on this write
//! (`Rejected`), report damage (`Corruption`), or tell the client the commit
//! outcome is unknown (`CommitUnknown`). Details are one line: they reach
//! clients as `-ERR` text.

use std::time::Duration;

use sqlx::error::DatabaseError;

use crate::error::{Backend, Error};

/// A PostgreSQL failure. Connection trouble and server shutdown are
/// `Unavailable`, a cancelled statement (`statement_timeout`, 57014) or a
/// lock wait given up (55P03) is `Timeout`, data and integrity errors
/// (classes 22, 23) are `Rejected`, a damaged page (XX001) is `Corruption`.
pub(crate) fn postgres(timeout: Duration, e: sqlx::Error) -> Error {
    const BACKEND: Backend = "postgres";
    classify(BACKEND, e, |db, detail| {
        let code = db.code().unwrap_or_default();
        match (code.as_ref(), code.get(..2).unwrap_or("")) {
            ("57014" | "55P03", _) => Error::Timeout {
                backend: BACKEND,
                after: timeout,
            },
            (_, "22" | "23") => Error::Rejected {
                backend: BACKEND,
                detail,
            },
            ("XX001", _) => Error::Corruption {
                backend: BACKEND,
                detail,
            },
            _ => Error::Unavailable {
                backend: BACKEND,
                detail,
            },
        }
    })
}

/// True when a PostgreSQL connection broke, so a COMMIT sent on it may or
/// may not have been applied.
pub(crate) fn postgres_connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            code.starts_with("08") || code.starts_with("57P")
        }
        _ => false,
    }
}

/// A SQLite failure, by primary result code: BUSY or LOCKED (the write lock
/// was not free within `busy_timeout`) is `Timeout`; TOOBIG, CONSTRAINT,
/// MISMATCH and RANGE are `Rejected`; CORRUPT and NOTADB are `Corruption`;
/// the rest (I/O, disk full, cannot open, read-only) is `Unavailable`.
pub(crate) fn sqlite(timeout: Duration, e: sqlx::Error) -> Error {
    const BACKEND: Backend = "sqlite";
    classify(BACKEND, e, |db, detail| {
        let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(-1);
        match code & 0xff {
            5 | 6 => Error::Timeout {
                backend: BACKEND,
                after: timeout,
            },
            18 | 19 | 20 | 25 => Error::Rejected {
                backend: BACKEND,
                detail,
            },
            11 | 26 => Error::Corruption {
                backend: BACKEND,
                detail,
            },
            _ => Error::Unavailable {
                backend: BACKEND,
                detail,
            },
        }
    })
}

/// What both backends share: pool trouble is `Unavailable`, a column that
/// does not decode is `Corruption`, a value that cannot be encoded is
/// `Rejected`; database errors go to `database` with a one-line detail.
fn classify(
    backend: Backend,
    e: sqlx::Error,
    database: impl FnOnce(&dyn DatabaseError, String) -> Error,
) -> Error {
    let detail = one_line(&e);
    match e {
        sqlx::Error::PoolTimedOut => Error::Unavailable {
            backend,
            detail: "timed out waiting for a connection".into(),
        },
        sqlx::Error::PoolClosed => Error::Unavailable {
            backend,
            detail: "connection pool closed".into(),
        },
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default().into_owned();
            let detail = one_line(format!("{} (code {code})", db.message()));
            database(&*db, detail)
        }
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
            Error::Corruption { backend, detail }
        }
        sqlx::Error::Encode(_) => Error::Rejected { backend, detail },
        _ => Error::Unavailable { backend, detail },
    }
}

/// COMMIT got no answer in time: it may have reached the server, so its
/// outcome is unknown.
pub(crate) fn commit_timed_out(backend: Backend, timeout: Duration) -> Error {
    Error::CommitUnknown {
        backend,
        detail: format!(
            "no answer to COMMIT within {}",
            humantime::format_duration(timeout)
        ),
    }
}

/// A failed migration: database errors mapped as any statement's, a schema
/// this binary does not know (applied by a newer release, or edited) as a
/// configuration error, since retrying cannot fix it.
pub(crate) fn migrate(
    backend: Backend,
    e: sqlx::migrate::MigrateError,
    map: impl FnOnce(sqlx::Error) -> Error,
) -> Error {
    use sqlx::migrate::MigrateError;
    match e {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => map(e),
        other => Error::Config(format!("{backend} migrations: {}", one_line(other))),
    }
}

/// Error text for a client reply: `-ERR` lines cannot carry newlines.
pub(crate) fn one_line(text: impl std::fmt::Display) -> String {
    let text = text.to_string();
    let mut out = String::with_capacity(text.len());
    for part in text.split(['\r', '\n']).filter(|p| !p.trim().is_empty()) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(part.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_errors_are_unavailable_and_one_line() {
        let t = Duration::from_secs(1);
        assert!(matches!(
            postgres(t, sqlx::Error::PoolTimedOut),
            Error::Unavailable {
                backend: "postgres",
                ..
            }
        ));
        assert!(matches!(
            sqlite(t, sqlx::Error::PoolClosed),
            Error::Unavailable {
                backend: "sqlite",
                ..
            }
        ));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset\nby peer");
        let e = sqlx::Error::Io(io);
        assert!(postgres_connection_lost(&e));
        match postgres(t, e) {
            Error::Unavailable { detail, .. } => assert!(!detail.contains('\n'), "{detail}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(!postgres_connection_lost(&sqlx::Error::RowNotFound));
        assert!(matches!(
            sqlite(t, sqlx::Error::Decode("bad".into())),
            Error::Corruption { .. }
        ));
    }

    #[test]
    fn details_are_one_line() {
        assert_eq!(one_line("a\nb\r\n\nc "), "a; b; c");
    }
}
