//! The integration tests of signals-core on SQLite, PostgreSQL and MySQL, one module per
//! area, in one test binary (one link instead of one per file). Tests that change state
//! of the whole process (receivers for every model, muting a shared model, a global
//! tracing subscriber, models that reference the shared seed
//! models, whose deletes would then cascade to their tables) and those that run processes of
//! their own stay binaries of their own beside this one.
#![allow(clippy::unwrap_used)]

#[path = "../common/mod.rs"]
mod common;

mod aggregates;
mod blog;
mod bulk;
mod bulk_keys;
mod cancel_pool;
mod cascade_probes;
mod changed;
mod deadlock;
mod derive_pass;
mod edges;
mod edges_more;
mod errors;
mod field_types;
mod harness;
mod hygiene;
mod interop;
mod json_lookups;
mod kept;
mod load;
mod locking;
mod lookups;
mod m2m;
mod makemigrations;
mod makemigrations_edges;
mod migrate_signals;
mod on_commit;
mod on_rollback;
mod options;
mod or_create;
mod post_load;

mod queries_edges;
mod query;
mod raw;
mod recording;
mod relations;
mod relations_edges;
mod reliability;
mod robust;
mod round4_probes;
mod round5_probes;
mod save;
mod schema;
mod signals;
mod sqlite_queue;
mod stream;
mod test_helpers;
mod transactions;
mod types;
mod upsert;
