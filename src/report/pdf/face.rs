//! The embedded fonts as the layout measures them: glyph advances, fitting text to a width
//! with an ellipsis, and word wrap.

use krilla::text::{Font, GlyphId, KrillaGlyph};
use skrifa::charmap::Charmap;
use skrifa::instance::{LocationRef, Size};
use skrifa::metrics::GlyphMetrics;
use skrifa::{FontRef, MetadataProvider};

use crate::report::ReportError;

/// One embedded face: the handle krilla draws with, plus the metrics we measure with, so that
/// truncation uses the same advances the PDF viewer will.
pub(super) struct Face {
    pub(super) font: Font,
    charmap: Charmap<'static>,
    metrics: GlyphMetrics<'static>,
    units_per_em: f32,
}

impl Face {
    pub(super) fn load(bytes: &'static [u8]) -> Result<Face, ReportError> {
        let bad = || ReportError::Pdf("embedded font cannot be read".into());
        let font = Font::new(bytes.into(), 0).ok_or_else(bad)?;
        let font_ref = FontRef::new(bytes).map_err(|_| bad())?;
        Ok(Face {
            charmap: font_ref.charmap(),
            metrics: font_ref.glyph_metrics(Size::unscaled(), LocationRef::default()),
            units_per_em: font.units_per_em(),
            font,
        })
    }

    pub(super) fn advance(&self, c: char) -> f32 {
        let glyph = self.charmap.map(c).unwrap_or_default();
        self.metrics.advance_width(glyph).unwrap_or(0.0)
    }

    /// One glyph per character at its plain advance, when that is all the text needs: scripts
    /// without joining, reordering or mark placement, every character in the font. A table of
    /// 5,000 leads is 25,000 cells, and full shaping (krilla's `draw_text` re-parses the font's
    /// layout tables for every call) was most of the render time. Anything else is shaped.
    pub(super) fn simple_glyphs(&self, text: &str) -> Option<Vec<KrillaGlyph>> {
        text.char_indices()
            .map(|(i, c)| {
                // Latin, Greek, Cyrillic, punctuation and symbols; not combining marks, RTL
                // scripts, or the invisible bidi and joiner controls in U+2000–U+206F.
                let simple = matches!(c,
                    '\u{20}'..='\u{2FF}'
                        | '\u{370}'..='\u{52F}'
                        | '\u{1E00}'..='\u{1FFF}'
                        | '\u{2010}'..='\u{2027}'
                        | '\u{2030}'..='\u{205F}'
                        | '\u{2070}'..='\u{2BFF}'
                );
                let glyph = self.charmap.map(c).filter(|_| simple)?;
                let advance = self.metrics.advance_width(glyph)? / self.units_per_em;
                let id = GlyphId::new(glyph.to_u32());
                Some(KrillaGlyph::new(
                    id,
                    advance,
                    0.0,
                    0.0,
                    0.0,
                    i..i + c.len_utf8(),
                    None,
                ))
            })
            .collect()
    }

    /// Width in points. Kerning is ignored, which for DejaVu only ever over-estimates a little,
    /// so fitted text never overflows.
    pub(super) fn width(&self, text: &str, size: f32) -> f32 {
        text.chars().map(|c| self.advance(c)).sum::<f32>() * size / self.units_per_em
    }

    /// `text` cut to `max_width` points with a trailing ellipsis, unchanged if it fits.
    pub(super) fn fit(&self, text: String, max_width: f32, size: f32) -> String {
        if self.width(&text, size) <= max_width {
            return text;
        }
        let budget = max_width * self.units_per_em / size - self.advance('…');
        let mut used = 0.0;
        let mut cut = 0;
        for (i, c) in text.char_indices() {
            used += self.advance(c);
            if used > budget {
                break;
            }
            cut = i + c.len_utf8();
        }
        // Don't strand an accent: back off to before the base letter a combining mark sits on.
        while cut > 0 && text[cut..].chars().next().is_some_and(is_combining_mark) {
            cut = text[..cut].char_indices().next_back().map_or(0, |(i, _)| i);
        }
        let mut out = text[..cut].trim_end().to_owned();
        out.push('…');
        out
    }
}

/// Combining diacritical marks (the common blocks); enough to keep `é` written as `e` + U+0301
/// together when truncating.
pub(super) fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}' | '\u{1AB0}'..='\u{1AFF}' | '\u{1DC0}'..='\u{1DFF}' | '\u{20D0}'..='\u{20FF}' | '\u{FE20}'..='\u{FE2F}')
}

/// Control characters (newlines, tabs, NUL…) would draw as boxes or nothing; a table cell is
/// one line, so they become spaces.
pub(super) fn one_line(text: String) -> String {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    } else {
        text
    }
}

/// Greedy word wrap to at most `max_lines`; the last line gets an ellipsis if text remains.
pub(super) fn wrap(
    face: &Face,
    text: &str,
    width: f32,
    size: f32,
    max_lines: usize,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    let mut words = text.split(' ').filter(|w| !w.is_empty()).peekable();
    while let Some(word) = words.next() {
        let candidate = if current.is_empty() {
            word.to_owned()
        } else {
            format!("{current} {word}")
        };
        if face.width(&candidate, size) <= width || current.is_empty() {
            current = candidate;
            continue;
        }
        lines.push(std::mem::take(&mut current));
        current = word.to_owned();
        if lines.len() == max_lines - 1 {
            // Last line: everything left, cut to fit.
            let rest: Vec<&str> = std::iter::once(word).chain(words.by_ref()).collect();
            current = rest.join(" ");
            break;
        }
    }
    if !current.is_empty() || lines.is_empty() {
        lines.push(current);
    }
    lines
        .into_iter()
        .map(|l| face.fit(l, width, size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::pdf::REGULAR_TTF;

    #[test]
    fn truncation_uses_glyph_widths_and_keeps_accents_whole() {
        let face = Face::load(REGULAR_TTF).unwrap();
        assert_eq!(face.fit("Zoë".into(), 100.0, 8.0), "Zoë");
        let long = "W".repeat(60);
        let cut = face.fit(long, 100.0, 8.0);
        assert!(
            cut.ends_with('…') && face.width(&cut, 8.0) <= 100.0,
            "{cut}"
        );
        // 'i' is far narrower than 'W', so more of them fit.
        let narrow = face.fit("i".repeat(200), 100.0, 8.0);
        assert!(narrow.chars().count() > cut.chars().count() * 2);
        // "Jose\u{301}" repeated: never cut between the e and its accent.
        let decomposed = "Jose\u{301} ".repeat(20);
        let cut = face.fit(decomposed, 60.0, 8.0);
        assert!(!cut.trim_end_matches('…').ends_with('e'), "{cut:?}");
    }
}
