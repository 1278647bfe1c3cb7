//! Rebuilds when a migration is added: `sqlx::migrate!` embeds the files of
//! `migrations/`, but on stable Rust cargo does not know it reads them.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
