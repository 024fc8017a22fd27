//! Newtypes whose constructors validate, so a `Config` cannot hold an invalid value.

use std::fmt;

use serde::Serialize;

/// Number of app instances, 1..=64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct InstanceCount(u32);

impl InstanceCount {
    pub const MAX: u32 = 64;

    pub fn new(n: u32) -> Result<Self, String> {
        if (1..=Self::MAX).contains(&n) {
            Ok(InstanceCount(n))
        } else {
            Err(format!("must be between 1 and {} (got {n})", Self::MAX))
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

impl std::str::FromStr for InstanceCount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let n: u32 = s.trim().parse().map_err(|_| {
            format!(
                "must be a whole number between 1 and {} (got {s:?})",
                Self::MAX
            )
        })?;
        InstanceCount::new(n)
    }
}

/// A TCP port, 1..=65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Port(u16);

impl Port {
    pub fn get(self) -> u16 {
        self.0
    }
}

impl std::str::FromStr for Port {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(Port(n as u16)),
            _ => Err(format!(
                "must be a port number between 1 and 65535 (got {s:?})"
            )),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LbStrategy {
    LeastConn,
    RoundRobin,
    IpHash,
}

impl std::str::FromStr for LbStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "least_conn" => Ok(LbStrategy::LeastConn),
            "round_robin" => Ok(LbStrategy::RoundRobin),
            "ip_hash" => Ok(LbStrategy::IpHash),
            other => Err(format!(
                "must be one of least_conn, round_robin, ip_hash (got {other:?})"
            )),
        }
    }
}

/// A Docker image reference: `[registry[:port]/]path[:tag][@sha256:hex]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageRef(String);

impl ImageRef {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The reference split as the Engine API's image-create call wants it: (name, tag or digest).
    pub fn name_and_tag(&self) -> (&str, &str) {
        if let Some((name, digest)) = self.0.split_once('@') {
            return (name, digest);
        }
        let last_slash = self.0.rfind('/').map_or(0, |i| i + 1);
        match self.0[last_slash..].rfind(':') {
            Some(i) => (&self.0[..last_slash + i], &self.0[last_slash + i + 1..]),
            None => (&self.0, "latest"),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = |why: &str| {
            Err(format!("is not a valid image reference ({why}; got {s:?}), e.g. nginx:stable-bookworm or registry.example:5000/team/app:1.2"))
        };
        if s.is_empty() {
            return bad("empty");
        }
        if s.len() > 255 {
            return bad("longer than 255 characters");
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            let ok = d.split_once(':').is_some_and(|(alg, hex)| {
                !alg.is_empty()
                    && alg
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
                    && hex.len() >= 32
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !ok {
                return bad("malformed digest");
            }
        }
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (path, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !valid {
                return bad("malformed tag");
            }
        }
        let mut components = path.split('/').collect::<Vec<_>>();
        // A first component with a dot, a colon or `localhost` is a registry host.
        if components.len() > 1 {
            let first = components[0];
            if first.contains('.') || first.contains(':') || first == "localhost" {
                let host_ok = first
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c));
                if !host_ok {
                    return bad("malformed registry host");
                }
                components.remove(0);
            }
        }
        for c in &components {
            let valid = !c.is_empty()
                && c.chars()
                    .next()
                    .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars()
                    .last()
                    .is_some_and(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch));
            if !valid {
                return bad("path components must be lowercase letters, digits and . _ -");
            }
        }
        Ok(ImageRef(s.to_string()))
    }
}

/// A project name Docker and Compose both accept: lowercase letters, digits, `-` and `_`,
/// starting with a letter or digit. Every object the tool creates is named after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for ProjectName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let valid = !s.is_empty()
            && s.len() <= 48
            && s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if valid {
            Ok(ProjectName(s.to_string()))
        } else {
            Err(format!("is not a valid project name (got {s:?}): use 1-48 lowercase letters, digits, - or _, starting with a letter or digit"))
        }
    }
}

/// A CPU limit in billionths of a CPU, as the Engine API takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NanoCpus(pub i64);

impl std::str::FromStr for NanoCpus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(c) if (0.01..=256.0).contains(&c) => Ok(NanoCpus((c * 1e9).round() as i64)),
            _ => Err(format!(
                "must be a number of CPUs between 0.01 and 256, e.g. 0.5 (got {s:?})"
            )),
        }
    }
}

impl NanoCpus {
    /// The form Compose writes (`"0.5"`).
    pub fn as_cpus_string(self) -> String {
        let s = format!("{:.3}", self.0 as f64 / 1e9);
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A memory size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryBytes(pub i64);

impl std::str::FromStr for MemoryBytes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.strip_suffix('b').unwrap_or(&t);
        let (digits, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1i64 << 10),
            Some('m') => (&t[..t.len() - 1], 1 << 20),
            Some('g') => (&t[..t.len() - 1], 1 << 30),
            _ => (t, 1),
        };
        match digits.parse::<i64>() {
            Ok(n) if n > 0 && n.checked_mul(mult).is_some_and(|b| b >= 16 << 20) => {
                Ok(MemoryBytes(n * mult))
            }
            _ => Err(format!(
                "must be a memory size of at least 16m, e.g. 256m or 1g (got {s:?})"
            )),
        }
    }
}

impl MemoryBytes {
    /// The shortest exact form with a suffix, as Compose writes it (`256m`).
    pub fn as_compose_string(self) -> String {
        let b = self.0;
        if b % (1 << 30) == 0 {
            format!("{}g", b >> 30)
        } else if b % (1 << 20) == 0 {
            format!("{}m", b >> 20)
        } else if b % (1 << 10) == 0 {
            format!("{}k", b >> 10)
        } else {
            format!("{b}b")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_count_bounds() {
        assert!("0".parse::<InstanceCount>().is_err());
        assert!("65".parse::<InstanceCount>().is_err());
        assert!("-1".parse::<InstanceCount>().is_err());
        assert!("three".parse::<InstanceCount>().is_err());
        assert_eq!("64".parse::<InstanceCount>().unwrap().get(), 64);
        assert_eq!("1".parse::<InstanceCount>().unwrap().get(), 1);
    }

    #[test]
    fn port_bounds() {
        assert!("0".parse::<Port>().is_err());
        assert!("65536".parse::<Port>().is_err());
        assert!("http".parse::<Port>().is_err());
        assert_eq!("65535".parse::<Port>().unwrap().get(), 65535);
    }

    #[test]
    fn lb_strategy_values() {
        assert_eq!("ip_hash".parse::<LbStrategy>().unwrap(), LbStrategy::IpHash);
        let e = "random".parse::<LbStrategy>().unwrap_err();
        assert!(e.contains("least_conn, round_robin, ip_hash"));
    }

    #[test]
    fn image_refs_accepted() {
        for ok in [
            "nginx",
            "nginx:stable-bookworm",
            "radar-offline/postgres:bookworm",
            "localhost:5000/app:1.2",
            "registry.example.org/team/app:v1.2.3",
            "redis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(ok.parse::<ImageRef>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn image_refs_refused() {
        for bad in [
            "",
            "Nginx",
            "nginx:",
            "nginx:bad tag",
            "a//b",
            "app@sha256:xyz",
            "-app",
            "app:-x",
        ] {
            assert!(bad.parse::<ImageRef>().is_err(), "{bad}");
        }
    }

    #[test]
    fn image_name_and_tag() {
        let i: ImageRef = "localhost:5000/app".parse().unwrap();
        assert_eq!(i.name_and_tag(), ("localhost:5000/app", "latest"));
        let i: ImageRef = "nginx:stable-bookworm".parse().unwrap();
        assert_eq!(i.name_and_tag(), ("nginx", "stable-bookworm"));
    }

    #[test]
    fn project_names() {
        assert!("reporadar".parse::<ProjectName>().is_ok());
        assert!("ci_run-42".parse::<ProjectName>().is_ok());
        for bad in ["", "Radar", "-x", "a b", "a.b", &"x".repeat(49)] {
            assert!(bad.parse::<ProjectName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cpus_and_memory() {
        assert_eq!("0.5".parse::<NanoCpus>().unwrap().0, 500_000_000);
        assert_eq!("0.5".parse::<NanoCpus>().unwrap().as_cpus_string(), "0.5");
        assert!("0".parse::<NanoCpus>().is_err());
        assert_eq!("256m".parse::<MemoryBytes>().unwrap().0, 256 << 20);
        assert_eq!(
            "1G".parse::<MemoryBytes>().unwrap().as_compose_string(),
            "1g"
        );
        assert!("1m".parse::<MemoryBytes>().is_err());
        assert!("lots".parse::<MemoryBytes>().is_err());
    }
}

/// Where the stack runs. The command line's `--target` converts into it once (`TargetArgs` in
/// the `cli` module); the operations (`target`, `verify`, `drill`) match on this type, not on clap's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Containers on one Docker host.
    Single,
    /// Services on the Docker Swarm the daemon is a manager of.
    Swarm,
}

/// A path of the app's HTTP contract (`APP_HEALTH_PATH`, …): starts with `/`, no spaces or
/// control characters (it goes into a request line), at most 1024 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct AppPath(String);

impl AppPath {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AppPath {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if !s.starts_with('/') {
            return Err(format!(
                "must be a path starting with / (got {s:?}); an empty value turns the check off"
            ));
        }
        if s.len() > 1024
            || s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '#')
        {
            return Err(format!(
                "must be a URL path without spaces, control characters or # (got {s:?})"
            ));
        }
        Ok(AppPath(s.to_string()))
    }
}

/// A container user as Docker takes it: `name`, `uid`, `name:group` or `uid:gid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserSpec(String);

impl UserSpec {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether it names root (`root`, `0`, `root:…`, `0:…`).
    pub fn is_root(&self) -> bool {
        is_root_user(&self.0)
    }
}

/// Whether a user as an image or Docker names it is root: empty (Docker's default), `root` or
/// uid 0, with any group.
pub fn is_root_user(user: &str) -> bool {
    let name = user.split(':').next().unwrap_or("").trim();
    name.is_empty() || name == "root" || name == "0"
}

impl fmt::Display for UserSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UserSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let part_ok = |p: &str| {
            !p.is_empty()
                && p.len() <= 32
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !p.starts_with('-')
        };
        let valid = match s.split_once(':') {
            Some((u, g)) => part_ok(u) && part_ok(g),
            None => part_ok(s),
        };
        if valid {
            Ok(UserSpec(s.to_string()))
        } else {
            Err(format!(
                "must be a user as Docker takes it: name, uid, name:group or uid:gid (got {s:?})"
            ))
        }
    }
}
