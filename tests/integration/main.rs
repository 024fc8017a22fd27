//! The integration tests: one test binary, one module per area. One binary links the crate
//! once (eleven binaries each linked the whole crate and its dependencies), and lets the areas
//! share [`common`] without each compiling its own copy.
//!
//! Every test that touches Docker first takes a slot: [`common::shared`] for tests that only need
//! a stack of their own (they run side by side, as tests in one binary always did), or
//! [`common::alone`] for tests that measure timing or change the daemon's state (swarm mode, a
//! second daemon, load under fault): they run with no other Docker test beside them, as they did
//! when each area was a binary of its own that cargo ran after the last.
//!
//! Run one area with `cargo test --test integration engine::`; see `common` for the helpers.

mod common;

mod acme;
mod backup;
mod cli;
mod docs;
mod drill;
mod drill_daemon;
mod endpoints;
mod engine;
mod own_app;
mod release;
mod rust_version;
mod scale;
mod swarm;
mod swarm_three_nodes;
mod swarm_tls;
mod swarm_two_nodes;
mod tls;
mod tls_probe;
mod top;
mod verify;
mod windows;
