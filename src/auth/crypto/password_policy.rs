//! Which new passwords we accept, following NIST SP 800-63B: length over complexity, a block
//! list of passwords attackers try first, no composition rules unless an operator insists.
//!
//! Passwords are checked exactly as typed. Nothing is trimmed or normalised, because whatever
//! we accepted here is what gets hashed, and the login form must reproduce it byte for byte.

use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;

/// Minimum length when the operator does not configure one (the product default).
pub const DEFAULT_MIN_LENGTH: usize = 12;

/// No configuration can lower the minimum below this (NIST's floor for user-chosen secrets).
pub const MIN_LENGTH_FLOOR: usize = 8;

/// Maximum length when the operator does not configure one: 128 characters, roomy enough for
/// any passphrase (at most 512 bytes of UTF-8) while bounding the work argon2 does per login.
pub const DEFAULT_MAX_LENGTH: usize = 128;

/// The maximum is never set below this, because NIST asks that at least 64 characters be
/// allowed, so passphrases and password-manager output fit.
pub const MAX_LENGTH_FLOOR: usize = 64;

/// The maximum is never set above this, so a hostile "password" cannot make us hash megabytes.
pub const MAX_LENGTH_CEILING: usize = 1024;

/// Shortest email local part (the bit before `@`) we look for inside a password. Shorter ones
/// ("bo", "li") occur inside ordinary words and would refuse good passwords.
const MIN_EMAIL_LOCAL_PART_CHARS: usize = 4;

/// The most common passwords from public breach corpora, lowercase, one per line.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Rules for choosing a new password.
///
/// The fields are plain configuration; [`check`](Self::check) applies the floors and ceilings
/// above to them, so no configuration can make the policy weaker than they allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) allowed; raised to [`MIN_LENGTH_FLOOR`].
    pub min_length: usize,
    /// Most characters (Unicode scalar values) allowed; kept within
    /// [`MAX_LENGTH_FLOOR`]..=[`MAX_LENGTH_CEILING`] and never below the minimum.
    pub max_length: usize,
    /// When on, at least three of lowercase, uppercase, digits and other characters are
    /// required. Off by default: NIST 800-63B finds such rules push users to predictable
    /// patterns ("Password1!") rather than stronger passwords.
    pub require_composition: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: DEFAULT_MIN_LENGTH,
            max_length: DEFAULT_MAX_LENGTH,
            require_composition: false,
        }
    }
}

impl PasswordPolicy {
    /// The minimum length actually enforced.
    pub fn effective_min_length(&self) -> usize {
        self.min_length.clamp(MIN_LENGTH_FLOOR, MAX_LENGTH_CEILING)
    }

    /// The maximum length actually enforced.
    pub fn effective_max_length(&self) -> usize {
        let floor = self.effective_min_length().max(MAX_LENGTH_FLOOR);
        self.max_length.clamp(floor, MAX_LENGTH_CEILING)
    }

    /// Decides whether `password` may become the password of the account with `email`.
    ///
    /// Checks run cheapest and most fundamental first, and the first failure is reported, so
    /// the user fixes one thing at a time.
    pub fn check(&self, password: &str, email: &str) -> Result<(), PolicyViolation> {
        let length = password.chars().count();
        let min_length = self.effective_min_length();
        if length < min_length {
            return Err(PolicyViolation::TooShort { min_length });
        }
        let max_length = self.effective_max_length();
        if length > max_length {
            return Err(PolicyViolation::TooLong { max_length });
        }
        if contains_email(password, email) {
            return Err(PolicyViolation::ContainsEmail);
        }
        if is_common_password(password) {
            return Err(PolicyViolation::Common);
        }
        if self.require_composition && character_classes(password) < 3 {
            return Err(PolicyViolation::Composition);
        }
        Ok(())
    }
}

/// Why a password was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyViolation {
    /// Fewer characters than the policy's minimum.
    TooShort { min_length: usize },
    /// More characters than the policy's maximum.
    TooLong { max_length: usize },
    /// On the block list of common passwords.
    Common,
    /// Equal to the account's email or containing its local part.
    ContainsEmail,
    /// Fewer than three character classes while composition rules are on.
    Composition,
}

impl PolicyViolation {
    /// Stable machine-readable code for API clients; never change an existing one.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::Common => "password_common",
            Self::ContainsEmail => "password_contains_email",
            Self::Composition => "password_composition",
        }
    }

    /// A sentence for the user that says what to change.
    pub fn message(&self) -> String {
        match self {
            Self::TooShort { min_length } => {
                format!("Password must be at least {min_length} characters.")
            }
            Self::TooLong { max_length } => {
                format!("Password must be at most {max_length} characters.")
            }
            Self::Common => "This password is too common and would be guessed quickly; \
                             choose a less predictable one."
                .to_owned(),
            Self::ContainsEmail => "Password must not contain your email address.".to_owned(),
            Self::Composition => "Password must contain at least three of: lowercase letters, \
                                  uppercase letters, digits, and other characters."
                .to_owned(),
        }
    }
}

impl fmt::Display for PolicyViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for PolicyViolation {}

/// Whether `password` is on the block list, ignoring case, either as typed or with trailing
/// digits and symbols removed.
///
/// The second form catches the commonest way people "strengthen" a listed password
/// (`Sunshine2024!`), which attackers' rule sets try first; we do not go further (leetspeak,
/// prefixes, words inside passphrases), because each extra rule refuses more good passwords
/// while the list is only a first line of defence behind rate limiting.
pub fn is_common_password(password: &str) -> bool {
    let lowered = password.to_lowercase();
    let base = lowered.trim_end_matches(|c: char| !c.is_alphabetic());
    let list = common_passwords();
    list.contains(lowered.as_str()) || (!base.is_empty() && list.contains(base))
}

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .collect()
    })
}

/// Whether the password is the email, contains it, or contains its local part (with and
/// without a `+tag`) when that part is long enough to be meaningful. Case-insensitive.
fn contains_email(password: &str, email: &str) -> bool {
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return false;
    }
    let password = password.to_lowercase();
    if password.contains(&email) {
        return true;
    }
    let local_part = email
        .rsplit_once('@')
        .map_or(email.as_str(), |(local, _)| local);
    let untagged = local_part
        .split_once('+')
        .map_or(local_part, |(base, _)| base);
    [local_part, untagged]
        .iter()
        .any(|part| part.chars().count() >= MIN_EMAIL_LOCAL_PART_CHARS && password.contains(part))
}

/// Counts the classes present among lowercase, uppercase, digits and everything else.
/// Letters without case (CJK, Arabic, …) count as "everything else", so non-Latin passwords
/// can still satisfy the rule.
fn character_classes(password: &str) -> usize {
    let (mut lower, mut upper, mut digit, mut other) = (false, false, false, false);
    for c in password.chars() {
        if c.is_lowercase() {
            lower = true;
        } else if c.is_uppercase() {
            upper = true;
        } else if c.is_numeric() {
            digit = true;
        } else {
            other = true;
        }
    }
    [lower, upper, digit, other]
        .into_iter()
        .filter(|&present| present)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMAIL: &str = "alice.smith@example.com";

    fn default_check(password: &str) -> Result<(), PolicyViolation> {
        PasswordPolicy::default().check(password, EMAIL)
    }

    #[test]
    fn default_policy_requires_twelve_characters() {
        assert_eq!(
            default_check("tangerine-7"),
            Err(PolicyViolation::TooShort { min_length: 12 })
        );
        assert_eq!(default_check("tangerine-72"), Ok(()));
    }

    #[test]
    fn too_short_message_says_how_long_a_password_must_be() {
        let violation = PolicyViolation::TooShort { min_length: 12 };
        assert_eq!(
            violation.message(),
            "Password must be at least 12 characters."
        );
        assert_eq!(violation.code(), "password_too_short");
    }

    #[test]
    fn configured_minimum_below_eight_is_raised_to_eight() {
        let policy = PasswordPolicy {
            min_length: 4,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check("mauve-7", EMAIL),
            Err(PolicyViolation::TooShort { min_length: 8 })
        );
        assert_eq!(policy.check("mauve-72", EMAIL), Ok(()));
    }

    #[test]
    fn password_longer_than_the_maximum_is_refused() {
        let at_max = "vermilion-".repeat(13)[..128].to_owned();
        assert_eq!(default_check(&at_max), Ok(()));
        assert_eq!(
            default_check(&format!("{at_max}x")),
            Err(PolicyViolation::TooLong { max_length: 128 })
        );
    }

    #[test]
    fn configured_maximum_stays_between_sixty_four_and_the_ceiling() {
        let too_low = PasswordPolicy {
            max_length: 20,
            ..PasswordPolicy::default()
        };
        assert_eq!(too_low.effective_max_length(), MAX_LENGTH_FLOOR);
        let too_high = PasswordPolicy {
            max_length: 1_000_000,
            ..PasswordPolicy::default()
        };
        assert_eq!(too_high.effective_max_length(), MAX_LENGTH_CEILING);
    }

    #[test]
    fn length_is_counted_in_characters_not_bytes() {
        // 12 characters, 24 bytes: long enough.
        assert_eq!(default_check("ééééééééééé1"), Ok(()));
        // 128 characters, 512 bytes: still within the maximum.
        assert_eq!(default_check(&"🐎".repeat(128)), Ok(()));
        // 11 characters, 33 bytes: too short despite the byte count.
        assert_eq!(
            default_check(&"字".repeat(11)),
            Err(PolicyViolation::TooShort { min_length: 12 })
        );
    }

    #[test]
    fn passphrase_of_64_unicode_characters_is_accepted_unmodified() {
        let passphrase = "  Ünïcödé pässphrasé: 私のパスワードは長い 🐎🔋📎 — correct horse!  ";
        let padded = format!(
            "{passphrase}{}",
            "·".repeat(64 - passphrase.chars().count())
        );
        assert_eq!(padded.chars().count(), 64);
        assert_eq!(default_check(&padded), Ok(()));
    }

    #[test]
    fn surrounding_whitespace_counts_towards_the_length() {
        // Nothing is trimmed: the spaces are part of the password.
        assert_eq!(default_check("  tangerine "), Ok(()));
    }

    #[test]
    fn common_password_is_refused_regardless_of_case() {
        assert_eq!(default_check("PassWord1234"), Err(PolicyViolation::Common));
        assert_eq!(default_check("QWERTYUIOP123"), Err(PolicyViolation::Common));
    }

    #[test]
    fn common_password_with_trailing_digits_and_symbols_is_refused() {
        assert_eq!(
            default_check("Sunshine2024!!"),
            Err(PolicyViolation::Common)
        );
        assert_eq!(default_check("baseball#1234"), Err(PolicyViolation::Common));
    }

    #[test]
    fn common_word_inside_a_longer_passphrase_is_accepted() {
        assert_eq!(default_check("my dragon eats tangerines"), Ok(()));
        assert_eq!(default_check("2024!!sunshine"), Ok(()));
    }

    #[test]
    fn common_password_message_explains_the_refusal() {
        assert_eq!(PolicyViolation::Common.code(), "password_common");
        assert!(PolicyViolation::Common.message().contains("too common"));
    }

    #[test]
    fn password_equal_to_email_is_refused() {
        assert_eq!(default_check(EMAIL), Err(PolicyViolation::ContainsEmail));
        assert_eq!(
            default_check("Alice.Smith@Example.COM"),
            Err(PolicyViolation::ContainsEmail)
        );
    }

    #[test]
    fn password_containing_the_email_local_part_is_refused() {
        assert_eq!(
            default_check("ALICE.SMITH-rocks-2024"),
            Err(PolicyViolation::ContainsEmail)
        );
    }

    #[test]
    fn password_containing_the_local_part_without_its_plus_tag_is_refused() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("my-name-is-carol!", "carol+chat@example.com"),
            Err(PolicyViolation::ContainsEmail)
        );
    }

    #[test]
    fn local_part_shorter_than_four_characters_is_not_looked_for() {
        let policy = PasswordPolicy::default();
        assert_eq!(
            policy.check("bobcat-dancing-tonight", "bob@example.com"),
            Ok(())
        );
    }

    #[test]
    fn contains_email_message_and_code_are_stable() {
        let violation = PolicyViolation::ContainsEmail;
        assert_eq!(violation.code(), "password_contains_email");
        assert_eq!(
            violation.message(),
            "Password must not contain your email address."
        );
    }

    #[test]
    fn composition_rules_are_off_by_default() {
        assert_eq!(default_check("tangerine marmalade"), Ok(()));
    }

    #[test]
    fn composition_rules_when_on_require_three_character_classes() {
        let policy = PasswordPolicy {
            require_composition: true,
            ..PasswordPolicy::default()
        };
        assert_eq!(
            policy.check("tangerinemarmalade", EMAIL),
            Err(PolicyViolation::Composition)
        );
        assert_eq!(
            policy.check("Tangerinemarmalade", EMAIL),
            Err(PolicyViolation::Composition)
        );
        assert_eq!(policy.check("Tangerine marmalade", EMAIL), Ok(()));
        assert_eq!(policy.check("tangerine marmalade 7", EMAIL), Ok(()));
        assert_eq!(PolicyViolation::Composition.code(), "password_composition");
    }

    #[test]
    fn too_long_violation_has_a_stable_code() {
        assert_eq!(
            PolicyViolation::TooLong { max_length: 128 }.code(),
            "password_too_long"
        );
    }

    #[test]
    fn block_list_has_over_a_thousand_lowercase_unique_entries() {
        let lines: Vec<&str> = COMMON_PASSWORDS.lines().collect();
        assert!(lines.len() >= 1000, "{} entries", lines.len());
        assert!(lines
            .iter()
            .all(|line| !line.is_empty() && *line == line.to_lowercase() && *line == line.trim()));
        assert_eq!(
            common_passwords().len(),
            lines.len(),
            "duplicates in the list"
        );
    }

    #[test]
    fn block_list_includes_the_best_known_passwords() {
        for password in [
            "123456", "password", "12345678", "qwerty", "iloveyou", "trustno1",
        ] {
            assert!(is_common_password(password), "{password}");
        }
    }
}
