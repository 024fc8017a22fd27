//! A small bounded pool of `tokio-postgres` connections.
//!
//! At most `DB_POOL_SIZE` connections exist at once (a semaphore permit per checked-out
//! connection). Connections are opened lazily, so the app starts while Postgres is still down,
//! and a connection goes back to the pool only when the caller says it worked
//! ([`PooledClient::release`]): one that failed, timed out or was closed by a Postgres restart is
//! dropped, and the next checkout opens a fresh one. That is the whole reconnect strategy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, NoTls};

use crate::config::PostgresConfig;

pub struct PgPool {
    config: tokio_postgres::Config,
    idle: Mutex<Vec<Client>>,
    permits: Arc<Semaphore>,
}

pub struct PooledClient {
    client: Option<Client>,
    pool: Arc<PgPool>,
    _permit: OwnedSemaphorePermit,
}

impl PgPool {
    pub fn new(cfg: &PostgresConfig, application_name: &str) -> Arc<PgPool> {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&cfg.host)
            .port(cfg.port)
            .user(&cfg.user)
            .dbname(&cfg.db)
            .application_name(application_name)
            .connect_timeout(Duration::from_secs(1))
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30));
        if let Some(pw) = &cfg.password {
            config.password(pw.expose());
        }
        Arc::new(PgPool {
            config,
            idle: Mutex::new(Vec::with_capacity(cfg.pool_size)),
            permits: Arc::new(Semaphore::new(cfg.pool_size)),
        })
    }

    /// Waits for a free slot, then reuses an idle open connection or opens a new one.
    /// Callers bound the wait with their own timeout.
    pub async fn get(self: &Arc<Self>) -> Result<PooledClient, tokio_postgres::Error> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed");
        let reused = loop {
            let candidate = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match candidate {
                Some(c) if c.is_closed() => continue,
                other => break other,
            }
        };
        let client = match reused {
            Some(c) => c,
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                // The connection future drives the socket; it ends when Postgres closes it (for
                // example on restart), which marks the client closed so the pool skips it.
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                client
            }
        };
        Ok(PooledClient {
            client: Some(client),
            pool: self.clone(),
            _permit: permit,
        })
    }
}

impl PooledClient {
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("present until release")
    }

    /// Returns the connection to the pool; call only after it was used successfully.
    pub fn release(mut self) {
        if let Some(c) = self.client.take() {
            if !c.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(c);
            }
        }
    }
}
