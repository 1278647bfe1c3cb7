//! Mapped writes: each command becomes SQL on the user's table inside one
//! transaction, after every argument was checked against the catalog, so a
//! refused write touches nothing. Columns a command does not name keep
//! their values; defaults, types and constraints are the database's.

use bytes::Bytes;
use indexmap::IndexMap;
use sqlx::{AssertSqlSafe, Postgres, Transaction};

use super::catalog::{Column, Table, quote};
use super::value::Kind;
use super::{Mapped, Namespace, WRITES, refuse, refuse_column};
use crate::error::{Error, with_timeout};
use crate::resp::Frame;
use crate::store::errors;
use crate::write::Call;

const BACKEND: &str = "postgres";

type Reply = std::result::Result<Frame, Frame>;

impl Mapped {
    /// Runs one write whose keys are all mapped (for DEL and UNLINK, the
    /// mapped part of their keys, see `delete`).
    pub async fn write(&self, call: &Call) -> Frame {
        if let Err(refused) = self.check(call, WRITES) {
            return refused;
        }
        let reply = match call.spec.name {
            "hset" | "hmset" => self.hset(call).await,
            "hdel" => self.hdel(call).await,
            "hincrby" => self.hincr(call, false).await,
            "hincrbyfloat" => self.hincr(call, true).await,
            "set" => self.set_json(call).await,
            "del" | "unlink" => {
                let keys: Vec<Bytes> = call.spec.keys(&call.argv).into_iter().cloned().collect();
                self.delete(&keys).await.map(Frame::Integer)
            }
            other => Err(Frame::err(format!("{other} is not a mapped write"))),
        };
        reply.unwrap_or_else(|refused| refused)
    }

    /// Deletes the rows of the mapped keys among `keys`; replies how many
    /// existed. One transaction for every namespace involved.
    pub async fn delete(&self, keys: &[Bytes]) -> std::result::Result<i64, Frame> {
        let mut ids: IndexMap<usize, (&Namespace, Vec<String>)> = IndexMap::new();
        for key in keys {
            let Some((n, id)) = self.find_index(key) else {
                continue;
            };
            let ns = &self.namespaces[n];
            let id = String::from_utf8_lossy(id).into_owned();
            let entry = ids.entry(n).or_insert((ns, Vec::new()));
            if !entry.1.contains(&id) {
                entry.1.push(id);
            }
        }
        let Some((first, _)) = ids.values().next() else {
            return Ok(0);
        };
        let first = *first;
        let mut tx = self.begin(first).await?;
        let mut deleted = 0;
        for (ns, ids) in ids.values() {
            let key = ns.table.key_column();
            let sql = format!(
                "DELETE FROM {} WHERE {} = ANY($1::text[]::{}[])",
                ns.table.sql_name,
                quote(&key.name),
                key.cast
            );
            let done = self
                .timed(
                    ns,
                    sqlx::query(AssertSqlSafe(sql)).bind(ids).execute(&mut *tx),
                )
                .await?;
            deleted += done.rows_affected() as i64;
        }
        self.commit(first, tx).await?;
        Ok(deleted)
    }

    async fn hset(&self, call: &Call) -> Reply {
        let (ns, id) = self.namespace_of(call)?;
        let pairs = &call.argv[2..];
        if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
            return Err(Frame::err(format!(
                "wrong number of arguments for '{}' command",
                call.spec.name
            )));
        }
        // Repeated fields count once and the last value wins, as in Redis.
        let mut fields: IndexMap<usize, String> = IndexMap::new();
        for pair in pairs.chunks(2) {
            let (i, col) = writable(ns, &pair[0])?;
            check_value(ns, col, Some(&pair[1]))?;
            fields.insert(i, String::from_utf8_lossy(&pair[1]).into_owned());
        }
        let names: Vec<usize> = fields.keys().copied().collect();
        let mut tx = self.begin(ns).await?;
        let before = self.non_null(ns, &names, id, &mut tx).await?;
        if before.is_none() {
            needs_no_more(ns, &names)?;
        }
        let added = match &before {
            None => names.len(),
            Some(present) => present.iter().filter(|p| !**p).count(),
        };
        let values: Vec<Option<String>> = fields.into_values().map(Some).collect();
        if before.is_some() {
            // An INSERT … ON CONFLICT would be checked against NOT NULL
            // columns this HSET does not name, before the conflict is seen.
            self.update(ns, id, &names, &values, &mut tx).await?;
        } else {
            self.upsert(ns, id, &names, &values, &[], &mut tx).await?;
        }
        self.commit(ns, tx).await?;
        Ok(if call.spec.name == "hmset" {
            Frame::ok()
        } else {
            Frame::Integer(added as i64)
        })
    }

    async fn hdel(&self, call: &Call) -> Reply {
        let (ns, id) = self.namespace_of(call)?;
        let mut names: Vec<usize> = Vec::new();
        for field in &call.argv[2..] {
            let (i, col) = writable(ns, field)?;
            if col.not_null {
                return Err(refuse_column(
                    ns,
                    field,
                    "is NOT NULL: HDEL cannot clear it",
                ));
            }
            if !names.contains(&i) {
                names.push(i);
            }
        }
        let mut tx = self.begin(ns).await?;
        let Some(present) = self.non_null(ns, &names, id, &mut tx).await? else {
            return Ok(Frame::Integer(0));
        };
        let cleared = present.iter().filter(|p| **p).count();
        if cleared > 0 {
            let sets: Vec<String> = names
                .iter()
                .map(|&i| format!("{} = NULL", quote(&ns.table.columns[i].name)))
                .collect();
            let key = ns.table.key_column();
            let sql = format!(
                "UPDATE {} SET {} WHERE {} = $1::{}",
                ns.table.sql_name,
                sets.join(", "),
                quote(&key.name),
                key.cast
            );
            self.timed(
                ns,
                sqlx::query(AssertSqlSafe(sql)).bind(id).execute(&mut *tx),
            )
            .await?;
        }
        self.commit(ns, tx).await?;
        Ok(Frame::Integer(cleared as i64))
    }

    async fn hincr(&self, call: &Call, float: bool) -> Reply {
        let (ns, id) = self.namespace_of(call)?;
        let (i, col) = writable(ns, &call.argv[2])?;
        let incr = String::from_utf8_lossy(&call.argv[3]).into_owned();
        let fits = match (float, col.kind) {
            (false, Kind::Int { .. } | Kind::Numeric) => incr.parse::<i64>().is_ok(),
            (true, Kind::Float | Kind::Numeric) => incr.parse::<f64>().is_ok_and(f64::is_finite),
            _ => {
                let wanted = if float {
                    "float or numeric"
                } else {
                    "integer or numeric"
                };
                return Err(refuse_column(
                    ns,
                    &call.argv[2],
                    format!(
                        "{} needs an {wanted} column",
                        call.spec.name.to_ascii_uppercase()
                    ),
                ));
            }
        };
        if !fits {
            return Err(Frame::err(if float {
                "value is not a valid float"
            } else {
                "value is not an integer or out of range"
            }));
        }
        check_value(ns, col, Some(incr.as_bytes()))?;
        let key = ns.table.key_column();
        let column = quote(&col.name);
        let update = format!(
            "UPDATE {table} SET {column} = COALESCE({column}, 0) + $2::{cc} \
             WHERE {k} = $1::{kc} RETURNING {column}::text",
            table = ns.table.sql_name,
            k = quote(&key.name),
            kc = key.cast,
            cc = col.cast,
        );
        let mut tx = self.begin(ns).await?;
        let query = sqlx::query_scalar::<_, String>(AssertSqlSafe(update))
            .bind(id)
            .bind(&incr);
        let value = match self.timed(ns, query.fetch_optional(&mut *tx)).await? {
            Some(value) => value,
            None => {
                // No row yet: the increment is the column's first value.
                needs_no_more(ns, &[i])?;
                self.upsert(ns, id, &[i], &[Some(incr.clone())], &[], &mut tx)
                    .await?;
                incr.clone()
            }
        };
        let reply = if float {
            Frame::Bulk(value.into())
        } else {
            match value.parse::<i64>() {
                Ok(n) => Frame::Integer(n),
                // The transaction rolls back when dropped.
                Err(_) => return Err(Frame::err("hash value is not an integer")),
            }
        };
        self.commit(ns, tx).await?;
        Ok(reply)
    }

    async fn set_json(&self, call: &Call) -> Reply {
        let (ns, id) = self.namespace_of(call)?;
        if call.argv.len() != 3 {
            return Err(refuse(
                ns,
                "SET options (EX, NX, GET …) do not apply to a mapped row",
            ));
        }
        let given = super::json::parse(&ns.table, id.as_bytes(), &call.argv[2])
            .map_err(|m| refuse(ns, m))?;
        let mut names = Vec::with_capacity(given.len());
        let mut values = Vec::with_capacity(given.len());
        for (i, value) in given {
            let col = &ns.table.columns[i];
            writable(ns, col.name.as_bytes())?;
            check_value(ns, col, value.as_deref().map(str::as_bytes))?;
            names.push(i);
            values.push(value);
        }
        needs_no_more(ns, &names)?;
        let defaults: Vec<usize> = (0..ns.table.columns.len())
            .filter(|&i| i != ns.table.key && !names.contains(&i))
            .filter(|&i| !ns.table.columns[i].read_only)
            .collect();
        let mut tx = self.begin(ns).await?;
        self.upsert(ns, id, &names, &values, &defaults, &mut tx)
            .await?;
        self.commit(ns, tx).await?;
        Ok(Frame::ok())
    }

    /// The one mapped key of a single-key command, and its id.
    fn namespace_of<'c>(
        &self,
        call: &'c Call,
    ) -> std::result::Result<(&Namespace, &'c str), Frame> {
        let key = call.argv.get(1).ok_or_else(|| Frame::err("missing key"))?;
        let (ns, id) = self
            .find(key)
            .ok_or_else(|| Frame::err("internal: not a mapped key"))?;
        // check_key accepted it, so it is UTF-8.
        let id = std::str::from_utf8(id).map_err(|_| refuse(ns, "key id is not UTF-8"))?;
        Ok((ns, id))
    }

    /// Locks the row and says, per named column, whether it is non-NULL;
    /// `None` when there is no row.
    async fn non_null(
        &self,
        ns: &Namespace,
        names: &[usize],
        id: &str,
        tx: &mut Transaction<'static, Postgres>,
    ) -> std::result::Result<Option<Vec<bool>>, Frame> {
        let tests: Vec<String> = names
            .iter()
            .map(|&i| format!("{} IS NOT NULL", quote(&ns.table.columns[i].name)))
            .collect();
        let key = ns.table.key_column();
        let sql = format!(
            "SELECT ARRAY[{}]::bool[] FROM {} WHERE {} = $1::{} FOR UPDATE",
            if tests.is_empty() {
                "NULL::bool".into()
            } else {
                tests.join(", ")
            },
            ns.table.sql_name,
            quote(&key.name),
            key.cast
        );
        let query = sqlx::query_scalar::<_, Vec<Option<bool>>>(AssertSqlSafe(sql)).bind(id);
        let row = self.timed(ns, query.fetch_optional(&mut **tx)).await?;
        Ok(row.map(|flags| flags.into_iter().map(|f| f.unwrap_or(false)).collect()))
    }

    /// Sets the named columns of an existing (locked) row.
    async fn update(
        &self,
        ns: &Namespace,
        id: &str,
        names: &[usize],
        values: &[Option<String>],
        tx: &mut Transaction<'static, Postgres>,
    ) -> std::result::Result<(), Frame> {
        let key = ns.table.key_column();
        let sets: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(n, &i)| {
                let col = &ns.table.columns[i];
                format!("{} = ${}::{}", quote(&col.name), n + 2, col.cast)
            })
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {} = $1::{}",
            ns.table.sql_name,
            sets.join(", "),
            quote(&key.name),
            key.cast
        );
        self.run_with_values(ns, sql, id, values, tx).await
    }

    /// Runs `sql` with the key's id as `$1` and `values` after it.
    async fn run_with_values(
        &self,
        ns: &Namespace,
        sql: String,
        id: &str,
        values: &[Option<String>],
        tx: &mut Transaction<'static, Postgres>,
    ) -> std::result::Result<(), Frame> {
        let mut query = sqlx::query(AssertSqlSafe(sql)).bind(id);
        for v in values {
            query = query.bind(v.as_deref());
        }
        self.timed(ns, query.execute(&mut **tx)).await?;
        Ok(())
    }

    /// Inserts the row or updates the named columns (and resets `defaults`).
    async fn upsert(
        &self,
        ns: &Namespace,
        id: &str,
        names: &[usize],
        values: &[Option<String>],
        defaults: &[usize],
        tx: &mut Transaction<'static, Postgres>,
    ) -> std::result::Result<(), Frame> {
        let sql = upsert_sql(&ns.table, names, defaults);
        self.run_with_values(ns, sql, id, values, tx).await
    }

    async fn begin(
        &self,
        ns: &Namespace,
    ) -> std::result::Result<Transaction<'static, Postgres>, Frame> {
        let mut tx = self.timed(ns, self.pool.begin()).await?;
        if self.namespaces.iter().any(|n| n.config.invalidate) {
            // The triggers put this in their notices: this instance's own
            // writes are invalidated here, not echoed back.
            let origin = sqlx::query("SELECT set_config('spillway.origin', $1, true)")
                .bind(&self.origin)
                .execute(&mut *tx);
            self.timed(ns, origin).await?;
        }
        Ok(tx)
    }

    async fn commit(
        &self,
        ns: &Namespace,
        tx: Transaction<'static, Postgres>,
    ) -> std::result::Result<(), Frame> {
        crate::store::postgres::write::commit(tx, self.timeout)
            .await
            .map_err(|e| refuse(ns, e))
    }

    /// Runs one database step within `database.timeout`; a failure is an
    /// error reply naming the namespace.
    async fn timed<T>(
        &self,
        ns: &Namespace,
        step: impl Future<Output = std::result::Result<T, sqlx::Error>>,
    ) -> std::result::Result<T, Frame> {
        with_timeout(BACKEND, self.timeout, async {
            step.await.map_err(|e| errors::postgres(self.timeout, e))
        })
        .await
        .map_err(|e: Error| refuse(ns, e))
    }
}

/// `INSERT … VALUES ($1 key, $2…) ON CONFLICT (key) DO UPDATE SET` the named
/// columns from the new row and `defaults` to their defaults.
fn upsert_sql(table: &Table, names: &[usize], defaults: &[usize]) -> String {
    let key = table.key_column();
    let mut cols = vec![quote(&key.name)];
    let mut params = vec![format!("$1::{}", key.cast)];
    let mut sets = Vec::new();
    for (n, &i) in names.iter().enumerate() {
        let col = &table.columns[i];
        cols.push(quote(&col.name));
        params.push(format!("${}::{}", n + 2, col.cast));
        sets.push(format!("{0} = EXCLUDED.{0}", quote(&col.name)));
    }
    for &i in defaults {
        sets.push(format!("{} = DEFAULT", quote(&table.columns[i].name)));
    }
    let action = if sets.is_empty() {
        "NOTHING".to_owned()
    } else {
        format!("UPDATE SET {}", sets.join(", "))
    };
    format!(
        "INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) DO {}",
        table.sql_name,
        cols.join(", "),
        params.join(", "),
        quote(&key.name),
        action
    )
}

/// The column a write names, if it may be written.
fn writable<'n>(
    ns: &'n Namespace,
    field: &[u8],
) -> std::result::Result<(usize, &'n Column), Frame> {
    match ns.table.column(field) {
        None => Err(refuse_column(ns, field, "no such column")),
        Some((i, _)) if i == ns.table.key => Err(refuse_column(
            ns,
            field,
            "is the key column: the key sets it",
        )),
        Some((_, col)) if col.read_only => Err(refuse_column(ns, field, "is generated")),
        Some(found) => Ok(found),
    }
}

fn check_value(
    ns: &Namespace,
    col: &Column,
    value: Option<&[u8]>,
) -> std::result::Result<(), Frame> {
    match value {
        None if col.not_null => Err(refuse_column(ns, col.name.as_bytes(), "is NOT NULL")),
        None => Ok(()),
        Some(v) => col
            .kind
            .check(v)
            .map_err(|why| refuse_column(ns, col.name.as_bytes(), why)),
    }
}

/// A new row needs every NOT NULL column that has no default.
fn needs_no_more(ns: &Namespace, names: &[usize]) -> std::result::Result<(), Frame> {
    let missing =
        ns.table.columns.iter().enumerate().find(|(i, c)| {
            *i != ns.table.key && c.not_null && !c.has_default && !names.contains(i)
        });
    match missing {
        Some((_, c)) => Err(refuse_column(
            ns,
            c.name.as_bytes(),
            "is NOT NULL and has no default: a new row needs a value",
        )),
        None => Ok(()),
    }
}
