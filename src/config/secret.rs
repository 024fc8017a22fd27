//! Secret values: redacted everywhere, judged for strength, generated from the OS random source.

use std::fmt;

/// A secret string. `Debug` and `Display` never show the value; code that needs it calls
/// [`Secret::expose`], which makes every place a secret leaves the program easy to find.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Why a secret is too weak, or `None` when it is acceptable.
///
/// The entropy estimate is deliberately simple (length x log2 of the distinct characters used):
/// it cannot prove a secret strong, but it reliably catches the weak values people actually
/// type — short words, repeated characters, `password123`.
pub fn weakness(value: &str, min_len: usize) -> Option<String> {
    let len = value.chars().count();
    if len < min_len {
        return Some(format!("is {len} characters long; use at least {min_len}"));
    }
    let lower = value.to_ascii_lowercase();
    if lower.contains("change-me") || lower.contains("changeme") || lower.starts_with("your") {
        return Some("is the example file's placeholder".to_string());
    }
    let bits = estimated_entropy_bits(value);
    if bits < 80.0 {
        return Some(format!(
            "has too little entropy (about {bits:.0} bits; at least 80 needed)"
        ));
    }
    None
}

fn estimated_entropy_bits(value: &str) -> f64 {
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 2 {
        return 0.0;
    }
    // Shannon entropy of the value's own character distribution, times its length.
    let len = value.chars().count() as f64;
    let per_char: f64 = distinct
        .iter()
        .map(|c| {
            let p = value.chars().filter(|x| x == c).count() as f64 / len;
            -p * p.log2()
        })
        .sum();
    per_char * len
}

/// A new random secret: `bytes` bytes from the OS random source, URL-safe base64 without
/// padding (safe in env files, URLs and shell words).
pub fn generate(bytes: usize) -> Result<Secret, getrandom::Error> {
    use base64::Engine as _;
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf)?;
    Ok(Secret(
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("hunter2-very-secret");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
    }

    #[test]
    fn short_secret_is_weak() {
        assert!(weakness("abc", 16).unwrap().contains("at least 16"));
    }

    #[test]
    fn repeated_characters_are_weak() {
        assert!(weakness(&"a".repeat(40), 16).unwrap().contains("entropy"));
        assert!(weakness(&"ab".repeat(20), 16).unwrap().contains("entropy"));
    }

    #[test]
    fn placeholder_is_weak() {
        let w = weakness("change-me-session-secret-at-least-32-chars", 32).unwrap();
        assert!(w.contains("placeholder"));
    }

    #[test]
    fn generated_secret_is_strong_and_unique() {
        let a = generate(32).unwrap();
        let b = generate(32).unwrap();
        assert_ne!(a, b);
        assert_eq!(weakness(a.expose(), 32), None);
        assert_eq!(a.expose().len(), 43);
    }
}
