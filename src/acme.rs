// TEMPORARY STUB (replaced by the acme branch)
#![allow(unused)]
use crate::config::Secret;
use crate::docker::DockerClient;
use crate::ui::Ui;
use anyhow::Result;
pub struct AcmeSettings {
    pub directory_url: String,
    pub email: Option<String>,
    pub hosts: Vec<String>,
    pub extra_roots_pem: Option<String>,
}
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: Secret,
}
pub fn new_account_key() -> Result<Secret> {
    todo!()
}
pub fn thumbprint(k: &Secret) -> Result<String> {
    todo!()
}
pub async fn issue(s: &AcmeSettings, k: &Secret, ui: &Ui) -> Result<Issued> {
    todo!()
}
pub fn volume_name(project: &str) -> String {
    todo!()
}
#[derive(Default)]
pub struct Store {
    pub account_key: Option<Secret>,
    pub chain_pem: Option<String>,
    pub key_pem: Option<Secret>,
}
impl Store {
    pub fn account_key_for(&self, d: &str) -> Option<&Secret> {
        todo!()
    }
}
pub async fn load_store(c: &DockerClient, p: &str, i: &str) -> Result<Store> {
    todo!()
}
pub async fn save_account(
    c: &DockerClient,
    p: &str,
    i: &str,
    k: &Secret,
    d: &str,
    e: Option<&str>,
) -> Result<()> {
    todo!()
}
pub async fn save_certificate(c: &DockerClient, p: &str, i: &str, x: &Issued) -> Result<()> {
    todo!()
}
