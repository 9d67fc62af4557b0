//! Text from outside in the log: form names, Graph's messages, notes about a webhook body. One
//! helper, [`escaped`], writes such text so it can never start a line of its own or hide what
//! follows it: a `\n` in a form name must not forge a log line that seems to come from us.

use std::fmt::{self, Display, Write};

/// `value` as it prints, with every control character (newlines and tabs included), Unicode
/// line and paragraph separators and bidirectional overrides written as escapes (`\n`,
/// `\u{202e}`), and `\` as `\\`, so what was an escape in the input stays distinguishable.
/// Everything else, accents and scripts included, is kept as it is.
pub fn escaped<T: Display>(value: T) -> Escaped<T> {
    Escaped(value)
}

/// See [`escaped`].
pub struct Escaped<T>(T);

impl<T: Display> Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Escaping as the text is written, so no copy of it is made.
        write!(EscapingWriter(f), "{}", self.0)
    }
}

struct EscapingWriter<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl Write for EscapingWriter<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                '\\' => self.0.write_str("\\\\")?,
                c if needs_escape(c) => write!(self.0, "\\u{{{:x}}}", c as u32)?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Characters that end a line or change how the rest of one is shown.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newline_cannot_start_a_line_and_ordinary_text_is_kept() {
        let forged = "Spring\n[2026-11-28T14:02:11Z ERROR leadstream] admin logged in\r\tok";
        let out = escaped(forged).to_string();
        assert!(!out.contains('\n') && !out.contains('\r') && !out.contains('\t'));
        assert_eq!(
            out,
            "Spring\\n[2026-11-28T14:02:11Z ERROR leadstream] admin logged in\\r\\tok"
        );
        assert_eq!(escaped("Zoë Ström — 東京").to_string(), "Zoë Ström — 東京");
        assert_eq!(
            escaped("a\\nb").to_string(),
            "a\\\\nb",
            "a literal \\n stays literal"
        );
        assert_eq!(
            escaped("x\u{2028}y\u{202e}z\u{0}\u{1b}[31m").to_string(),
            "x\\u{2028}y\\u{202e}z\\u{0}\\u{1b}[31m"
        );
        // Works on anything that prints, such as an error.
        assert_eq!(escaped(format_args!("{}\n", 42)).to_string(), "42\\n");
    }
}
