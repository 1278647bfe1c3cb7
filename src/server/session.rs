//! Per-connection state: protocol version, authentication, client name, and
//! the MULTI queue and WATCHed keys of an open transaction.

use bytes::Bytes;

use crate::resp::Protocol;
use crate::write::{Call, Watched};

#[derive(Default)]
pub struct Session {
    pub id: u64,
    pub addr: String,
    pub proto: Protocol,
    pub authenticated: bool,
    pub name: Option<Bytes>,
    pub lib_name: Option<Bytes>,
    pub lib_ver: Option<Bytes>,
    /// Commands queued since MULTI; `None` outside a transaction.
    pub multi: Option<Vec<Call>>,
    /// A command was refused while queueing: EXEC must abort.
    pub multi_failed: bool,
    pub watched: Vec<Watched>,
    /// Set by QUIT: close after this reply.
    pub closing: bool,
    /// WAL sequences of this connection's write-behind writes that may not
    /// be applied yet (WAITDB counts them).
    pub unapplied: std::collections::VecDeque<u64>,
}

impl Session {
    pub fn new(id: u64, addr: String, needs_auth: bool) -> Session {
        Session {
            id,
            addr,
            authenticated: !needs_auth,
            ..Session::default()
        }
    }

    /// Remembers a write-behind write for WAITDB.
    pub fn wrote(&mut self, seq: Option<u64>) {
        if let Some(seq) = seq {
            self.unapplied.push_back(seq);
        }
    }

    /// Forgets writes at or below the checkpoint; returns how many remain.
    pub fn still_unapplied(&mut self, checkpoint: u64) -> usize {
        self.unapplied.retain(|&s| s > checkpoint);
        self.unapplied.len()
    }

    /// Ends any transaction and forgets WATCHed keys.
    pub fn end_transaction(&mut self) {
        self.multi = None;
        self.multi_failed = false;
        self.watched.clear();
    }
}
