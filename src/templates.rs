//! nginx and Sentinel configuration files, rendered from the minijinja templates in `templates/`.
//!
//! The templates are compiled into the binary, so a release needs no files beside it.

use minijinja::Environment;
use serde::Serialize;

const NGINX_CONF: &str = include_str!("../templates/nginx.conf.j2");
const STICKY_EXAMPLE: &str = include_str!("../templates/sticky-sessions.conf.example.j2");
const SENTINEL_CONF: &str = include_str!("../templates/sentinel.conf.j2");

/// nginx answers 503 to every request but `/health` while this file exists (nginx.conf.j2
/// names it literally; a test keeps the two equal). Its directory is a named volume.
pub const MAINTENANCE_FLAG: &str = "/etc/nginx/maintenance/on";
pub const MAINTENANCE_DIR: &str = "/etc/nginx/maintenance";
/// What `status`, `verify` and the operations say while the flag is set.
pub const MAINTENANCE_ON_NOTE: &str = "maintenance mode is on: nginx answers 503 to every \
     request but /health and no request reaches an instance; `radar-deploy maintenance off` ends it";
/// The header radar-deploy sends (value `1`) to ask nginx which instance served a request, and
/// the response header nginx answers with the upstream address (`172.18.0.5:3000`; after a
/// retry several, comma-separated, the last the one that answered). nginx.conf.j2's `map`.
pub const UPSTREAM_HEADER: &str = "X-Radar-Upstream";

#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct NginxVars {
    pub upstream: String,
    pub strategy: String,
    pub instances: Vec<Upstream>,
    pub listen_port: u16,
    /// The Swarm target: a task set that Swarm changes and nodes that can vanish.
    pub swarm: bool,
    /// HTTPS; `None` serves plain HTTP only (`TLS_MODE=off`).
    pub tls: Option<NginxTls>,
}

/// nginx's side of `TLS_MODE`: where the certificate is inside the container and how HTTP
/// hands over to HTTPS.
#[derive(Debug, Clone, Serialize)]
pub struct NginxTls {
    /// The port nginx's HTTPS server listens on inside its container.
    pub listen_port: u16,
    /// `:PORT` of the public HTTPS port for redirects, empty for 443.
    pub port_suffix: String,
    pub certificate: String,
    pub key: String,
    pub hsts: bool,
    /// ACME: the account key's thumbprint, for the stateless HTTP-01 answer.
    pub acme_thumbprint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SentinelVars {
    pub sentinels: u32,
    pub master_name: String,
    pub master_host: String,
    pub master_port: u16,
    pub quorum: u32,
    pub down_after_ms: u32,
    pub failover_timeout_ms: u32,
}

fn render(name: &str, source: &str, vars: impl Serialize) -> String {
    // `.gitattributes` keeps the templates LF on every checkout; should a checkout still turn
    // them CRLF (a Windows git with other settings), the rendered files, their hashes (which
    // decide whether containers are recreated) and the snapshots must not change.
    let source = source.replace("\r\n", "\n");
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
            .expect("the default syntax with kept trailing newlines is valid"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    // The templates are part of the binary and their variables are typed structs, so a failure
    // here is a bug in this crate, caught by the snapshot tests, not a user error.
    env.add_template(name, &source)
        .and_then(|_| {
            env.get_template(name)?
                .render(minijinja::value::Serde(&vars))
        })
        .unwrap_or_else(|e| panic!("template {name} is broken: {e:#}"))
}

pub fn nginx_conf(vars: &NginxVars) -> String {
    render("nginx.conf", NGINX_CONF, vars)
}

pub fn sticky_example(vars: &NginxVars) -> String {
    render("sticky-sessions.conf.example", STICKY_EXAMPLE, vars)
}

pub fn sentinel_conf(vars: &SentinelVars) -> String {
    render("sentinel.conf", SENTINEL_CONF, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_maintenance_flag_nginx_checks_is_the_one_radar_deploy_writes() {
        assert!(NGINX_CONF.contains(&format!("if (-f {MAINTENANCE_FLAG})")));
        assert_eq!(
            std::path::Path::new(MAINTENANCE_FLAG).parent(),
            Some(std::path::Path::new(MAINTENANCE_DIR))
        );
    }

    #[test]
    fn a_crlf_checkout_of_a_template_renders_the_same_bytes() {
        let vars = SentinelVars {
            sentinels: 3,
            master_name: "mymaster".into(),
            master_host: "redis-master".into(),
            master_port: 6379,
            quorum: 2,
            down_after_ms: 5000,
            failover_timeout_ms: 10000,
        };
        let lf = render("s", SENTINEL_CONF, &vars);
        let crlf = render("s", &SENTINEL_CONF.replace('\n', "\r\n"), &vars);
        assert_eq!(lf, crlf);
        assert!(!lf.contains('\r'));
    }

    #[test]
    fn nginx_names_the_upstream_only_to_a_request_that_asks() {
        let conf = nginx_conf(&NginxVars {
            upstream: "app".into(),
            strategy: "least_conn".into(),
            instances: vec![Upstream {
                host: "app-1".into(),
                port: 8000,
            }],
            listen_port: 80,
            swarm: false,
            tls: None,
        });
        let var = format!(
            "$http_{}",
            UPSTREAM_HEADER.to_ascii_lowercase().replace('-', "_")
        );
        assert!(
            conf.contains(&format!("map {var} $radar_upstream {{")),
            "{conf}"
        );
        assert!(conf.contains("default \"\";"));
        assert!(conf.contains("\"1\"     $upstream_addr;"));
        // `always`: also on the 502/504 nginx answers itself; an empty value is not sent.
        assert!(conf.contains(&format!(
            "add_header {UPSTREAM_HEADER} $radar_upstream always;"
        )));
    }
}
