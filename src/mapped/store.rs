//! The store the cache-aside path reads through when namespaces exist:
//! mapped keys are read from their tables, every other key and every other
//! operation goes to the key-value store unchanged.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Mapped;
use crate::error::Result;
use crate::keyspace::{Row, Version};
use crate::store::{
    BoxFuture, DeadLetter, KeyCounts, Locked, Record, Refused, ScanPage, Store, Whole,
};

pub struct Routed {
    pub kv: Arc<dyn Store>,
    pub mapped: Arc<Mapped>,
}

impl Store for Routed {
    fn name(&self) -> &'static str {
        self.kv.name()
    }

    fn get<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Vec<Row>>> {
        Box::pin(async move {
            let (mapped, kv): (Vec<usize>, Vec<usize>) =
                (0..keys.len()).partition(|&i| self.mapped.is_mapped(&keys[i]));
            if mapped.is_empty() {
                return self.kv.get(keys).await;
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| keys[i].clone()).collect::<Vec<_>>();
            let mut out = vec![Row::absent(); keys.len()];
            let rows = self.mapped.rows(&pick(&mapped)).await?;
            for (i, row) in mapped.into_iter().zip(rows) {
                out[i] = row;
            }
            if !kv.is_empty() {
                let rows = self.kv.get(&pick(&kv)).await?;
                for (i, row) in kv.into_iter().zip(rows) {
                    out[i] = row;
                }
            }
            Ok(out)
        })
    }

    fn ttl_for(&self, key: &[u8]) -> Option<Duration> {
        self.mapped.ttl_for(key)
    }

    fn begin<'a>(&'a self, keys: &'a [Bytes]) -> BoxFuture<'a, Result<Locked>> {
        self.kv.begin(keys)
    }

    fn apply<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [(Bytes, Row)],
    ) -> BoxFuture<'a, Result<()>> {
        self.kv.apply(instance, through, rows)
    }

    fn apply_with_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        through: u64,
        rows: &'a [Record],
        parked: &'a [Record],
        whole: Whole,
    ) -> BoxFuture<'a, Result<Vec<Refused>>> {
        self.kv
            .apply_with_dead_letters(instance, through, rows, parked, whole)
    }

    fn dead_letters<'a>(
        &'a self,
        instance: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<DeadLetter>>> {
        self.kv.dead_letters(instance, limit)
    }

    fn dead_letter_keys<'a>(
        &'a self,
        instance: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(Bytes, u64)>>> {
        self.kv.dead_letter_keys(instance)
    }

    fn retry_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>> {
        self.kv.retry_dead_letters(instance, key)
    }

    fn drop_dead_letters<'a>(
        &'a self,
        instance: &'a str,
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<u64>> {
        self.kv.drop_dead_letters(instance, key)
    }

    fn checkpoint<'a>(&'a self, instance: &'a str) -> BoxFuture<'a, Result<Option<u64>>> {
        self.kv.checkpoint(instance)
    }

    fn set_low_water<'a>(
        &'a self,
        instance: &'a str,
        version: Version,
    ) -> BoxFuture<'a, Result<()>> {
        self.kv.set_low_water(instance, version)
    }

    fn low_water(&self) -> BoxFuture<'_, Result<Option<Version>>> {
        self.kv.low_water()
    }

    fn scan(&self, cursor: u64, count: usize, now_ms: i64) -> BoxFuture<'_, Result<ScanPage>> {
        self.kv.scan(cursor, count, now_ms)
    }

    fn count(&self, now_ms: i64) -> BoxFuture<'_, Result<KeyCounts>> {
        self.kv.count(now_ms)
    }

    fn max_version(&self) -> BoxFuture<'_, Result<Version>> {
        self.kv.max_version()
    }

    fn sweep(
        &self,
        now_ms: i64,
        tombstones_before: Version,
        limit: usize,
    ) -> BoxFuture<'_, Result<u64>> {
        self.kv.sweep(now_ms, tombstones_before, limit)
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        self.kv.ping()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.kv.close()
    }
}
