//! Meta's object ids, checked once.

/// Meta object ids (leads, pages, forms, ads) are decimal digits. Anything else is refused
/// before it can become a URL path segment (`../../x` must never reach Graph).
pub fn is_meta_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_digits_are_ids() {
        assert!(super::is_meta_id("1234567890123456"));
        assert!(!super::is_meta_id(""));
        assert!(!super::is_meta_id("../../x"));
        assert!(!super::is_meta_id("12 34"));
        assert!(!super::is_meta_id("١٢٣")); // Arabic-Indic digits are not ASCII digits
    }
}
