//! Test-only fake engines the executors run against in unit tests.

pub mod host;
