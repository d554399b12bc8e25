//! Time-based one-time passwords (RFC 6238) for two-factor sign-in, and the recovery codes
//! that stand in for a lost authenticator.
//!
//! The parameters are the ones every authenticator app supports without configuration:
//! HMAC-SHA-1, 30-second steps, 6 digits. SHA-1's collision weakness does not matter for HMAC,
//! and choosing anything else makes some apps silently generate wrong codes.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

use super::secrets::sha256_hex;
use crate::platform::random::{RandomSource, RandomUnavailable};

type HmacSha1 = Hmac<Sha1>;

/// Length of the codes users type.
pub const DIGITS: u32 = 6;

/// Seconds per time step (RFC 6238's default, and the only value most apps honour).
pub const STEP_SECS: u64 = 30;

/// Steps either side of the current one that are still accepted, to absorb clock drift between
/// phone and server and the time it takes to type: ±1 step gives a code up to ~90 s of life.
pub const ALLOWED_DRIFT_STEPS: u64 = 1;

/// Bytes of a newly generated shared secret: 160 bits, the HMAC-SHA-1 block-size-appropriate
/// length RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;

/// Recovery codes issued when two-factor sign-in is turned on.
pub const DEFAULT_RECOVERY_CODE_COUNT: usize = 10;

/// Crockford's base32 alphabet, lowercase: no `i`, `l`, `o` or `u`, so nothing a person copies
/// from paper can be misread, and 32 symbols means each random byte maps without bias.
const RECOVERY_CODE_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Characters of randomness in a recovery code (shown as two groups of five).
const RECOVERY_CODE_CHARS: usize = 10;

const BASE32_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A fresh random shared secret for enrolling an authenticator.
pub fn generate_secret(rng: &(impl RandomSource + ?Sized)) -> Result<Vec<u8>, RandomUnavailable> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rng.fill(&mut secret)?;
    Ok(secret)
}

/// The time step that `now_unix_secs` falls in.
pub fn time_step(now_unix_secs: u64) -> u64 {
    now_unix_secs / STEP_SECS
}

/// The 6-digit code for `step`, as an authenticator app would show it.
pub fn generate(secret: &[u8], step: u64) -> String {
    hotp(secret, step, DIGITS)
}

/// Checks a code typed by the user and returns the time step it belongs to.
///
/// The caller must store the returned step and pass it back as `last_used_step` next time: a
/// code whose step is not newer than the last accepted one is refused, so an intercepted or
/// shoulder-surfed code cannot be replayed within its ~90 s of validity (RFC 6238 §5.2).
///
/// Input may have surrounding whitespace and spaces inside (`"123 456"`); anything other than
/// exactly six ASCII digits after that is refused. An empty secret never verifies.
pub fn verify(
    secret: &[u8],
    code: &str,
    now_unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    if secret.is_empty() {
        return None;
    }
    let typed = normalize_code(code)?;
    let current = time_step(now_unix_secs);
    let first = current.saturating_sub(ALLOWED_DRIFT_STEPS);
    let last = current.saturating_add(ALLOWED_DRIFT_STEPS);

    // Every candidate step is computed and compared, with no early exit, so timing does not
    // tell which step (if any) matched. Among matches, prefer the newest one that has not
    // been used, so a rare collision with an old step cannot lock the user out.
    let mut matched: Option<u64> = None;
    for step in first..=last {
        let expected = generate(secret, step);
        let is_match: bool = expected.as_bytes().ct_eq(typed.as_bytes()).into();
        let is_fresh = last_used_step.is_none_or(|used| step > used);
        if is_match && is_fresh {
            matched = Some(step);
        }
    }
    matched
}

/// Strips whitespace and requires exactly [`DIGITS`] ASCII digits.
fn normalize_code(code: &str) -> Option<String> {
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let well_formed = digits.len() == DIGITS as usize && digits.bytes().all(|b| b.is_ascii_digit());
    well_formed.then_some(digits)
}

/// HOTP (RFC 4226 §5.3) with a configurable number of digits, so the RFC's 8-digit TOTP test
/// vectors can be checked against the same code path that produces our 6-digit codes.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let mut mac =
        HmacSha1::new_from_slice(secret).expect("HMAC is defined for keys of every length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();

    // Dynamic truncation: the low nibble of the last byte picks where 31 bits are read from.
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let truncated = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    let code = u64::from(truncated) % 10u64.pow(digits);
    format!("{code:0width$}", width = digits as usize)
}

/// RFC 4648 base32 without padding, as authenticator apps expect in `otpauth://` URIs.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(
                BASE32_ALPHABET[((buffer >> bits) & 0x1f) as usize],
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            BASE32_ALPHABET[((buffer << (5 - bits)) & 0x1f) as usize],
        ));
    }
    out
}

/// Decodes RFC 4648 base32 the way people paste it: any case, spaces anywhere, trailing `=`
/// padding optional. Returns `None` for other characters or an impossible length.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let symbols: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let unpadded_len = symbols
        .iter()
        .rposition(|&b| b != b'=')
        .map_or(0, |last| last + 1);
    let (symbols, padding) = symbols.split_at(unpadded_len);
    if padding.len() >= 8 {
        return None;
    }
    // 1, 3 and 6 leftover symbols cannot come from whole bytes.
    if matches!(symbols.len() % 8, 1 | 3 | 6) {
        return None;
    }

    let mut out = Vec::with_capacity(symbols.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &symbol in symbols {
        let value = match symbol.to_ascii_uppercase() {
            upper @ b'A'..=b'Z' => upper - b'A',
            digit @ b'2'..=b'7' => digit - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://` URI an authenticator app scans from a QR code (Google Authenticator's
/// key-URI format). The issuer appears both as the label prefix and as a parameter, because
/// older apps read only one or the other.
pub fn otpauth_uri(issuer: &str, account_email: &str, secret_b32: &str) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}\
         &algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        account = percent_encode(account_email),
        secret = percent_encode(secret_b32),
    )
}

/// Percent-encodes everything except RFC 3986 unreserved characters and `@` (legal in both
/// the path and the query, and kept so apps display emails readably). Spaces become `%20`,
/// never `+`, which some apps would show literally; `:` is encoded because it separates the
/// issuer from the account in the label.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Single-use recovery codes like `7hq2m-x0c9d`, shown to the user once.
///
/// Each code has 50 bits of randomness: online guessing is hopeless behind rate limits, and a
/// code only stands in for the second factor (the password is still required).
pub fn generate_recovery_codes(
    rng: &(impl RandomSource + ?Sized),
    n: usize,
) -> Result<Vec<String>, RandomUnavailable> {
    let mut bytes = [0u8; RECOVERY_CODE_CHARS];
    (0..n)
        .map(|_| {
            rng.fill(&mut bytes)?;
            let mut code = String::with_capacity(RECOVERY_CODE_CHARS + 1);
            for (i, byte) in bytes.iter().enumerate() {
                if i == RECOVERY_CODE_CHARS / 2 {
                    code.push('-');
                }
                // 256 is a multiple of 32, so masking keeps every symbol equally likely.
                code.push(char::from(RECOVERY_CODE_ALPHABET[usize::from(byte & 0x1f)]));
            }
            Ok(code)
        })
        .collect()
}

/// Canonical form of a typed recovery code: lowercase, without dashes or whitespace, and with
/// the look-alikes `o`→`0` and `i`/`l`→`1` mapped as Crockford's base32 prescribes. `None` if
/// it cannot be a recovery code.
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let mut code = String::with_capacity(RECOVERY_CODE_CHARS);
    for c in input.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            other => other,
        };
        if !c.is_ascii() || !RECOVERY_CODE_ALPHABET.contains(&(c as u8)) {
            return None;
        }
        code.push(c);
    }
    (code.len() == RECOVERY_CODE_CHARS).then_some(code)
}

/// The digest to store for a recovery code (or to look one up with): SHA-256 hex of its
/// normalised form, so `7HQ2M X0C9D` and `7hq2m-x0c9d` match the same row. `None` if the input
/// cannot be a recovery code.
///
/// A fast hash keeps checking one attempt to a single lookup instead of up to ten argon2 runs;
/// the price is that a stolen database lets an attacker brute-force the 50 bits offline, which
/// still leaves them needing the user's password.
pub fn hash_recovery_code(input: &str) -> Option<String> {
    normalize_recovery_code(input).map(|code| sha256_hex(&code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::random::CountingRandomSource;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn hotp_matches_rfc_4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(
                hotp(RFC_SECRET, counter as u64, 6),
                *code,
                "counter {counter}"
            );
        }
    }

    #[test]
    fn totp_matches_rfc_6238_appendix_b_sha1_vectors() {
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        for (time, code) in vectors {
            assert_eq!(hotp(RFC_SECRET, time_step(time), 8), code, "time {time}");
        }
    }

    #[test]
    fn generated_code_is_the_last_six_digits_of_the_rfc_value() {
        assert_eq!(generate(RFC_SECRET, time_step(59)), "287082");
        assert_eq!(generate(RFC_SECRET, time_step(1_111_111_109)), "081804");
    }

    #[test]
    fn current_code_is_accepted_and_its_step_returned() {
        let now = 1_111_111_111;
        let code = generate(RFC_SECRET, time_step(now));
        assert_eq!(verify(RFC_SECRET, &code, now, None), Some(time_step(now)));
    }

    #[test]
    fn code_from_one_step_before_or_after_is_accepted() {
        let now = 1_111_111_111;
        let step = time_step(now);
        let previous = generate(RFC_SECRET, step - 1);
        let next = generate(RFC_SECRET, step + 1);
        assert_eq!(verify(RFC_SECRET, &previous, now, None), Some(step - 1));
        assert_eq!(verify(RFC_SECRET, &next, now, None), Some(step + 1));
    }

    #[test]
    fn code_from_two_steps_away_is_refused() {
        let now = 1_111_111_111;
        let step = time_step(now);
        assert_eq!(
            verify(RFC_SECRET, &generate(RFC_SECRET, step - 2), now, None),
            None
        );
        assert_eq!(
            verify(RFC_SECRET, &generate(RFC_SECRET, step + 2), now, None),
            None
        );
    }

    #[test]
    fn totp_code_is_not_accepted_twice() {
        let now = 1_234_567_890;
        let code = generate(RFC_SECRET, time_step(now));
        let used = verify(RFC_SECRET, &code, now, None);
        assert!(used.is_some());
        assert_eq!(verify(RFC_SECRET, &code, now + 5, used), None);
    }

    #[test]
    fn code_older_than_the_last_used_step_is_refused() {
        let now = 1_234_567_890;
        let step = time_step(now);
        let previous = generate(RFC_SECRET, step - 1);
        assert_eq!(verify(RFC_SECRET, &previous, now, Some(step)), None);
    }

    #[test]
    fn newer_code_is_accepted_after_an_older_one_was_used() {
        let now = 1_234_567_890;
        let step = time_step(now);
        let code = generate(RFC_SECRET, step);
        assert_eq!(verify(RFC_SECRET, &code, now, Some(step - 1)), Some(step));
    }

    #[test]
    fn wrong_code_is_refused() {
        let now = 1_234_567_890;
        let right = generate(RFC_SECRET, time_step(now));
        let wrong = format!("{:06}", (right.parse::<u32>().unwrap_or(0) + 1) % 1_000_000);
        assert_eq!(verify(RFC_SECRET, &wrong, now, None), None);
    }

    #[test]
    fn code_with_surrounding_whitespace_and_inner_space_is_accepted() {
        let now = 1_234_567_890;
        let code = generate(RFC_SECRET, time_step(now));
        let typed = format!("  {} {}\n", &code[..3], &code[3..]);
        assert_eq!(verify(RFC_SECRET, &typed, now, None), Some(time_step(now)));
    }

    #[test]
    fn code_that_is_not_exactly_six_ascii_digits_is_refused() {
        let now = 1_234_567_890;
        let code = generate(RFC_SECRET, time_step(now));
        for typed in [
            String::new(),
            code[..5].to_owned(),
            format!("{code}0"),
            format!("{}-{}", &code[..3], &code[3..]),
            format!("+{}", &code[1..]),
            "١٢٣٤٥٦".to_owned(),
        ] {
            assert_eq!(verify(RFC_SECRET, &typed, now, None), None, "{typed:?}");
        }
    }

    #[test]
    fn empty_secret_never_verifies() {
        let code = generate(b"", 0);
        assert_eq!(verify(b"", &code, 0, None), None);
    }

    #[test]
    fn first_time_step_is_handled_without_underflow() {
        let code = generate(RFC_SECRET, 0);
        assert_eq!(verify(RFC_SECRET, &code, 10, None), Some(0));
    }

    #[test]
    fn base32_encodes_rfc_4648_vectors_without_padding() {
        let vectors = [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base32_encode(plain.as_bytes()), encoded);
            assert_eq!(base32_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn base32_decode_ignores_case_spaces_and_padding() {
        assert_eq!(
            base32_decode("mzxw 6ytb oi").as_deref(),
            Some(&b"foobar"[..])
        );
        assert_eq!(base32_decode("MZXW6YQ=").as_deref(), Some(&b"foob"[..]));
    }

    #[test]
    fn base32_decode_refuses_foreign_characters_and_impossible_lengths() {
        assert_eq!(base32_decode("MZXW1"), None);
        assert_eq!(base32_decode("MZ=XW"), None);
        assert_eq!(base32_decode("M"), None);
        assert_eq!(base32_decode("MZX"), None);
        assert_eq!(base32_decode("MZXW6Y"), None);
        assert_eq!(base32_decode("MY========"), None);
    }

    #[test]
    fn generated_secret_round_trips_through_base32() {
        let secret = generate_secret(&CountingRandomSource::starting_at(7)).unwrap();
        assert_eq!(secret.len(), SECRET_BYTES);
        assert_eq!(base32_decode(&base32_encode(&secret)), Some(secret));
    }

    #[test]
    fn otpauth_uri_has_label_secret_and_parameters() {
        let uri = otpauth_uri("Threadline", "alice@example.com", "JBSWY3DPEHPK3PXP");
        assert_eq!(
            uri,
            "otpauth://totp/Threadline:alice@example.com?secret=JBSWY3DPEHPK3PXP\
             &issuer=Threadline&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn otpauth_uri_percent_encodes_spaces_colons_and_query_characters() {
        let uri = otpauth_uri("Acme: Chat & Co", "a+b c@example.com", "ABC");
        assert_eq!(
            uri,
            "otpauth://totp/Acme%3A%20Chat%20%26%20Co:a%2Bb%20c@example.com?secret=ABC\
             &issuer=Acme%3A%20Chat%20%26%20Co&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_are_two_groups_of_five_unambiguous_characters() {
        let codes = generate_recovery_codes(
            &CountingRandomSource::starting_at(0),
            DEFAULT_RECOVERY_CODE_COUNT,
        )
        .unwrap();
        assert_eq!(codes.len(), 10);
        for code in &codes {
            assert_eq!(code.len(), 11);
            assert_eq!(code.as_bytes()[5], b'-');
            assert!(code
                .bytes()
                .filter(|&b| b != b'-')
                .all(|b| RECOVERY_CODE_ALPHABET.contains(&b)));
            assert!(!code.contains(['i', 'l', 'o', 'u']));
        }
    }

    #[test]
    fn recovery_codes_in_one_batch_are_distinct() {
        let codes = generate_recovery_codes(&CountingRandomSource::starting_at(0), 10).unwrap();
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
    }

    #[test]
    fn recovery_code_matches_regardless_of_case_dashes_and_spaces() {
        let codes = generate_recovery_codes(&CountingRandomSource::starting_at(0), 1).unwrap();
        let code = &codes[0];
        let typed = format!(" {} ", code.to_uppercase().replace('-', " "));
        assert!(hash_recovery_code(code).is_some());
        assert_eq!(hash_recovery_code(&typed), hash_recovery_code(code));
        assert_eq!(normalize_recovery_code(code), Some(code.replace('-', "")));
    }

    #[test]
    fn recovery_code_look_alike_letters_are_read_as_digits() {
        assert_eq!(
            normalize_recovery_code("O1IL0-abcde").as_deref(),
            Some("01110abcde")
        );
    }

    #[test]
    fn malformed_recovery_code_is_refused() {
        for input in [
            "",
            "abcde",
            "abcde-abcdef",
            "abcde-abcdu",
            "abcde-abcd!",
            "ábcde-abcde",
        ] {
            assert_eq!(hash_recovery_code(input), None, "{input:?}");
        }
    }
}
