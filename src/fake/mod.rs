//! Fake engines for unit tests of the executors: in-memory stand-ins for the Docker verbs each
//! executor states as a trait, recording what they were asked.

pub mod host;
pub mod swarm;
