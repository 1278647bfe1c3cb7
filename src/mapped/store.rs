//! What the cache-aside path reads through when namespaces exist: mapped
//! keys are read from their tables, every other key from the key-value
//! store.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::Mapped;
use crate::error::Result;
use crate::keyspace::Row;
use crate::store::{BoxFuture, RowSource, Store};

pub struct Routed {
    pub kv: Arc<dyn Store>,
    pub mapped: Arc<Mapped>,
}

impl RowSource for Routed {
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
}
