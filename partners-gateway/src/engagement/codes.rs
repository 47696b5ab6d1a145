//! Codes people type: vouchers, discount codes and referral codes. Crockford's base32 (no I, L,
//! O or U), in groups of four, from the operating system's random source, so a code cannot be
//! guessed from others; typed input is normalised (case, dashes, spaces, and the letters that
//! look like digits) before it is looked up.

use rand::Rng;

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new random code of `groups` groups of four characters (5 bits each: 16 characters carry
/// 80 bits), joined by dashes.
pub fn new_code(groups: usize) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(groups * 5);
    for g in 0..groups {
        if g > 0 {
            out.push('-');
        }
        for _ in 0..4 {
            out.push(ALPHABET[rng.random_range(0..32)] as char);
        }
    }
    out
}

/// Longest code accepted as typed (a shared discount code an operator chose, with dashes).
pub const CODE_LEN_MAX: usize = 40;

/// The code as stored: upper case, no dashes or spaces, `I`/`L` read as `1` and `O` as `0`.
/// `None` when it is empty, too long, or has a character no code has.
pub fn normalise(typed: &str) -> Option<String> {
    if typed.len() > CODE_LEN_MAX {
        return None;
    }
    let mut out = String::with_capacity(typed.len());
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            '-' | ' ' => continue,
            'I' | 'L' => '1',
            'O' => '0',
            c if c.is_ascii_alphanumeric() => c,
            _ => return None,
        };
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// `code` as people read it: groups of four joined by dashes.
pub fn display(code: &str) -> String {
    code.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_code_reads_back_through_normalise_and_display() {
        let c = new_code(4);
        assert_eq!(c.len(), 19);
        let n = normalise(&c).expect("a new code normalises");
        assert_eq!(n.len(), 16);
        assert_eq!(display(&n), c);
        assert_ne!(new_code(4), c, "two codes of 80 bits differ");
    }

    #[test]
    fn typed_codes_forgive_case_dashes_and_look_alike_letters() {
        assert_eq!(normalise("ab12-o0il").as_deref(), Some("AB120011"));
        assert_eq!(normalise("SUMMER 25").as_deref(), Some("SUMMER25"));
        assert_eq!(normalise("--"), None);
        assert_eq!(normalise("café"), None);
    }
}
