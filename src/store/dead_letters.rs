//! Dead letters: write-behind records the database rejects for good
//! (constraint, check, foreign key), kept in `spillway_dead_letters` with
//! their error instead of being retried forever.
//!
//! `Store::apply_with_dead_letters` finds them. Its transaction first tries
//! the whole batch in one upsert inside a savepoint, as `apply` does; when
//! the database rejects it, the savepoint is rolled back and the rows are
//! upserted one at a time, each in its own savepoint, so the good rows land
//! and the rejected ones are recorded with their error text. The same
//! transaction records the parked records (later writes of keys that already
//! have a dead letter) and advances the checkpoint, so the checkpoint never
//! passes a record that is neither applied nor dead-lettered. This module
//! holds that search once; each backend supplies the statements
//! (`DrainTxn`).

use std::collections::HashMap;

use bytes::Bytes;

use super::rows;
use crate::error::{Backend, Error, Result};
use crate::keyspace::Row;

/// Whether a batch's rows stand alone or form one block that is applied or
/// dead-lettered as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whole {
    Rows,
    Block,
}

/// The error recorded for a write parked behind an earlier dead letter.
pub const PARKED: &str = "parked behind an earlier dead letter of this key";

/// One write-behind record of a key: the WAL sequence that logged it and
/// the row it wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub key: Bytes,
    pub row: Row,
}

/// A record the database rejected, with the database's error.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub seq: u64,
    pub key: Bytes,
    pub error: String,
}

/// A stored dead letter.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Never reused, so a command naming one cannot hit another.
    pub id: i64,
    pub seq: u64,
    pub key: Bytes,
    pub row: Row,
    pub error: String,
    /// ms since the epoch.
    pub failed_at: i64,
}

/// The columns of one `spillway_dead_letters` row, as read back.
pub(crate) struct Stored {
    pub id: i64,
    pub seq: i64,
    pub key: Vec<u8>,
    pub kind: i64,
    pub value: Option<Vec<u8>>,
    pub expire_at: Option<i64>,
    pub version: i64,
    pub error: String,
    pub failed_at: i64,
}

impl Stored {
    /// The dead letter these columns hold; bad columns are corruption.
    pub(crate) fn decode(self, backend: Backend) -> Result<DeadLetter> {
        let seq = u64::try_from(self.seq).map_err(|_| Error::Corruption {
            backend,
            detail: format!("negative seq {} in spillway_dead_letters", self.seq),
        })?;
        Ok(DeadLetter {
            id: self.id,
            seq,
            key: Bytes::from(self.key),
            row: rows::from_columns(backend, self.kind, self.value, self.expire_at, self.version)?,
            error: self.error,
            failed_at: self.failed_at,
        })
    }
}

/// The statements the search needs inside one open transaction.
/// Implementations bound each statement by the store's timeout.
pub(crate) trait DrainTxn: Send {
    /// Upserts rows under the version guard (`StoreTxn::put`'s meaning).
    fn upsert(&mut self, rows: &[(Bytes, Row)]) -> impl Future<Output = Result<()>> + Send;

    /// Runs one fixed statement (the savepoint commands).
    fn execute(&mut self, sql: &'static str) -> impl Future<Output = Result<()>> + Send;

    /// Records `rec` as a dead letter of `instance`, unless that record
    /// (instance, seq, key) is recorded already: a batch retried after an
    /// unknown commit outcome must not record it twice.
    fn insert_dead_letter(
        &mut self,
        instance: &str,
        rec: &Record,
        error: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// Records `parked` as dead letters, upserts `rows`, dead-letters those the
/// database rejects, and returns them. Any other error ends the search: the
/// caller drops the transaction, which rolls everything back.
pub(crate) async fn upsert_or_dead_letter<T: DrainTxn>(
    txn: &mut T,
    instance: &str,
    rows: &[Record],
    parked: &[Record],
    whole: Whole,
    now_ms: i64,
) -> Result<Vec<Refused>> {
    for rec in parked {
        txn.insert_dead_letter(instance, rec, PARKED, now_ms)
            .await?;
    }
    let rows = last_per_key(rows);
    let batch: Vec<(Bytes, Row)> = rows
        .iter()
        .map(|r| (r.key.clone(), r.row.clone()))
        .collect();
    match in_savepoint(txn, &BATCH, &batch).await? {
        None => return Ok(Vec::new()),
        Some(detail) if whole == Whole::Block => {
            // A MULTI block lands whole or not at all: every row goes.
            let error = format!("part of a MULTI block the database rejected: {detail}");
            let mut refused = Vec::new();
            for rec in &rows {
                txn.insert_dead_letter(instance, rec, &error, now_ms)
                    .await?;
                refused.push(Refused {
                    seq: rec.seq,
                    key: rec.key.clone(),
                    error: error.clone(),
                });
            }
            return Ok(refused);
        }
        Some(detail) => {
            tracing::debug!(error = %detail, rows = batch.len(), "batch rejected; looking for the rejected rows one by one")
        }
    }
    let mut refused = Vec::new();
    for (rec, row) in rows.iter().zip(batch.chunks(1)) {
        if let Some(error) = in_savepoint(txn, &ROW, row).await? {
            txn.insert_dead_letter(instance, rec, &error, now_ms)
                .await?;
            refused.push(Refused {
                seq: rec.seq,
                key: rec.key.clone(),
                error,
            });
        }
    }
    Ok(refused)
}

/// The three statements of one named savepoint.
struct Savepoint {
    begin: &'static str,
    undo: &'static str,
    release: &'static str,
}

const BATCH: Savepoint = Savepoint {
    begin: "SAVEPOINT spillway_batch",
    undo: "ROLLBACK TO SAVEPOINT spillway_batch",
    release: "RELEASE SAVEPOINT spillway_batch",
};

const ROW: Savepoint = Savepoint {
    begin: "SAVEPOINT spillway_row",
    undo: "ROLLBACK TO SAVEPOINT spillway_row",
    release: "RELEASE SAVEPOINT spillway_row",
};

/// Upserts `rows` inside savepoint `sp`. `Some(error)`: the database
/// rejected them and the savepoint undid whatever part was written.
async fn in_savepoint<T: DrainTxn>(
    txn: &mut T,
    sp: &Savepoint,
    rows: &[(Bytes, Row)],
) -> Result<Option<String>> {
    let Savepoint {
        begin,
        undo,
        release,
    } = *sp;
    txn.execute(begin).await?;
    let outcome = match txn.upsert(rows).await {
        Ok(()) => None,
        Err(Error::Rejected { detail, .. }) => {
            txn.execute(undo).await?;
            Some(detail)
        }
        Err(e) => return Err(e),
    };
    txn.execute(release).await?;
    Ok(outcome)
}

/// Each key once, its last record in `rows` winning, as the batch upsert
/// treats them.
fn last_per_key(rows: &[Record]) -> Vec<&Record> {
    let mut last: HashMap<&Bytes, usize> = HashMap::with_capacity(rows.len());
    for (i, rec) in rows.iter().enumerate() {
        last.insert(&rec.key, i);
    }
    rows.iter()
        .enumerate()
        .filter(|(i, rec)| last.get(&rec.key) == Some(i))
        .map(|(_, rec)| rec)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyspace::Version;

    /// A transaction that rejects some keys and remembers what happened.
    #[derive(Default)]
    struct Fake {
        bad: Vec<&'static [u8]>,
        stored: Vec<Bytes>,
        staged: Vec<Bytes>,
        dead: Vec<(u64, Bytes, String)>,
    }

    impl DrainTxn for Fake {
        async fn upsert(&mut self, rows: &[(Bytes, Row)]) -> Result<()> {
            for (k, _) in rows {
                if self.bad.contains(&k.as_ref()) {
                    return Err(Error::Rejected {
                        backend: "fake",
                        detail: format!("no {}", String::from_utf8_lossy(k)),
                    });
                }
                self.staged.push(k.clone());
            }
            Ok(())
        }

        async fn execute(&mut self, sql: &'static str) -> Result<()> {
            if sql.starts_with("ROLLBACK") {
                self.staged.clear();
            } else if sql.starts_with("RELEASE") {
                self.stored.append(&mut self.staged);
            }
            Ok(())
        }

        async fn insert_dead_letter(
            &mut self,
            _instance: &str,
            rec: &Record,
            error: &str,
            _now_ms: i64,
        ) -> Result<()> {
            self.dead
                .push((rec.seq, rec.key.clone(), error.to_string()));
            Ok(())
        }
    }

    fn rec(seq: u64, key: &'static str) -> Record {
        Record {
            seq,
            key: Bytes::from_static(key.as_bytes()),
            row: Row {
                entry: None,
                version: Version(seq),
            },
        }
    }

    #[tokio::test]
    async fn good_rows_land_and_rejected_ones_become_dead_letters() {
        let mut txn = Fake {
            bad: vec![b"bad"],
            ..Fake::default()
        };
        let rows = [rec(1, "a"), rec(2, "bad"), rec(3, "b")];
        let refused =
            upsert_or_dead_letter(&mut txn, "i", &rows, &[rec(4, "held")], Whole::Rows, 0)
                .await
                .unwrap();
        assert_eq!(txn.stored, vec![Bytes::from("a"), Bytes::from("b")]);
        assert_eq!(refused.len(), 1);
        assert_eq!((refused[0].seq, &refused[0].error[..]), (2, "no bad"));
        let dead: Vec<(u64, &str)> = txn.dead.iter().map(|(s, _, e)| (*s, &e[..])).collect();
        assert_eq!(dead, vec![(4, PARKED), (2, "no bad")]);
    }

    #[tokio::test]
    async fn a_clean_batch_is_one_upsert() {
        let mut txn = Fake::default();
        let refused = upsert_or_dead_letter(
            &mut txn,
            "i",
            &[rec(1, "a"), rec(2, "a")],
            &[],
            Whole::Rows,
            0,
        )
        .await
        .unwrap();
        assert!(refused.is_empty());
        assert_eq!(txn.stored, vec![Bytes::from("a")]);
    }
}
