//! Configurations for unit tests elsewhere in the crate (desired state, render, plan).

use std::io::Write;

use super::{resolve, Config, Inputs, Overrides};

/// A valid env file with fixed strong secrets; `extra` lines are appended (later lines win).
pub fn env_file(extra: &str) -> String {
    format!(
        "POSTGRES_USER=reporadar\nPOSTGRES_DB=reporadar\nPOSTGRES_PASSWORD=Vx8rT2qLm9ZpK4wN7bYc3HdQ\n\
         REDIS_PASSWORD=aJ5kP0sW8eR3tY6uI1oL4zXc\nSESSION_SECRET=q7W2e9R4t1Y6u3I8o5P0aS7dF2gH9jK4lZ\n\
         ENCRYPTION_KEY=M3n8B1v6C9x4Z7l2K5j0H3g8F1d6S9a4Qw\n{extra}"
    )
}

/// A resolved config from [`env_file`]`(extra)`, with HA when `ha`.
pub fn config(extra: &str, ha: bool) -> Config {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(".env.multi-instance");
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(env_file(extra).as_bytes()))
        .expect("write env file");
    resolve(&Inputs {
        env_file: path,
        project: "reporadar".into(),
        process_env: vec![],
        overrides: Overrides {
            ha,
            ..Overrides::default()
        },
    })
    .expect("test config is valid")
}
