//! An account's e-mail address, normalised once at the edge and compared exactly afterwards.
//!
//! Normal form: surrounding white space trimmed, Unicode NFC (so one address typed with a
//! composed `é` or with `e` + a combining accent is one identity), lower case. The database
//! stores and compares the normal form byte for byte (`utf8mb4_bin`): a collation that ignores
//! accents and width would make `sécurity@…` or a full-width `ａ` the same account as
//! `security@…`, which once handed the admin role to a look-alike sign-up.
//!
//! The whole address is lower-cased, not only the domain: RFC 5321 lets a mail server treat
//! `Alice` and `alice` as two mailboxes, but no provider people use does, and two accounts
//! that differ only in case are a trap for the people who own them.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// The longest address SMTP can carry (RFC 5321: 254 octets in a path).
pub const MAX_LEN: usize = 254;

/// A normalised e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises `raw` and checks its shape: one `@`, a non-empty local part, a dotted domain,
    /// no white space or control characters, at most [`MAX_LEN`] bytes.
    pub fn parse(raw: &str) -> Result<Email, String> {
        let email: String = raw.trim().nfc().collect::<String>().to_lowercase();
        if email.len() > MAX_LEN {
            return Err(format!("is {} bytes long; an address has at most {MAX_LEN}", email.len()));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(format!("`{raw}` is not an e-mail address: it has no `@`"));
        };
        let well_formed = !local.is_empty()
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control());
        if well_formed { Ok(Email(email)) } else { Err(format!("`{raw}` is not an e-mail address")) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_space_and_composition_are_one_identity() {
        let composed = Email::parse(" Sécurity@Example.TEST ").unwrap();
        let decomposed = Email::parse("se\u{301}curity@example.test").unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.as_str(), "sécurity@example.test");
    }

    #[test]
    fn look_alikes_stay_different_identities() {
        let plain = Email::parse("security@example.test").unwrap();
        for look_alike in ["sécurity@example.test", "securit\u{ff59}@example.test", "ｓecurity@example.test"] {
            assert_ne!(Email::parse(look_alike).unwrap(), plain, "{look_alike}");
        }
    }

    #[test]
    fn malformed_addresses_say_what_is_wrong() {
        assert!(Email::parse("root").unwrap_err().contains("has no `@`"));
        for bad in ["@example.test", "a@example", "a@.example.test", "a@example.test.", "a b@example.test", "a@b@c.de"]
        {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        let long = format!("{}@example.test", "a".repeat(250));
        assert!(Email::parse(&long).unwrap_err().contains("at most 254"));
    }
}
