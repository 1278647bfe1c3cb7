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

    /// Ends any transaction and forgets WATCHed keys.
    pub fn end_transaction(&mut self) {
        self.multi = None;
        self.multi_failed = false;
        self.watched.clear();
    }
}
