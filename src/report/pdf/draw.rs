//! Drawing primitives: text (with a fast path for simple scripts), rectangles, rules, and
//! numbers as people read them.

use krilla::color::rgb;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::TextDirection;

use super::face::Face;
use super::{Fonts, INK, MARGIN};

pub(super) fn heading(s: &mut Surface, fonts: &Fonts, baseline: f32, title: &str) {
    text(s, &fonts.bold, 11.0, MARGIN, baseline, title, INK);
}

/// Draws one line with its baseline at `y`.
pub(super) fn text(
    s: &mut Surface,
    face: &Face,
    size: f32,
    x: f32,
    y: f32,
    value: &str,
    color: (u8, u8, u8),
) {
    if value.is_empty() {
        return;
    }
    s.set_stroke(None);
    s.set_fill(Some(Fill {
        paint: rgb::Color::new(color.0, color.1, color.2).into(),
        ..Fill::default()
    }));
    let start = Point::from_xy(x, y);
    match face.simple_glyphs(value) {
        Some(glyphs) => s.draw_glyphs(start, &glyphs, face.font.clone(), value, size, false),
        None => s.draw_text(
            start,
            face.font.clone(),
            size,
            value,
            false,
            TextDirection::Auto,
        ),
    }
}

pub(super) fn text_right(
    s: &mut Surface,
    face: &Face,
    size: f32,
    right: f32,
    y: f32,
    value: &str,
    color: (u8, u8, u8),
) {
    let w = face.width(value, size);
    text(s, face, size, right - w, y, value, color);
}

pub(super) fn fill_rect(s: &mut Surface, x: f32, y: f32, w: f32, h: f32, color: (u8, u8, u8)) {
    let Some(rect) = Rect::from_xywh(x, y, w, h) else {
        return;
    };
    let mut pb = PathBuilder::new();
    pb.push_rect(rect);
    if let Some(path) = pb.finish() {
        s.set_stroke(None);
        s.set_fill(Some(Fill {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            ..Fill::default()
        }));
        s.draw_path(&path);
    }
}

pub(super) fn line(
    s: &mut Surface,
    from: (f32, f32),
    to: (f32, f32),
    width: f32,
    color: (u8, u8, u8),
) {
    let mut pb = PathBuilder::new();
    pb.move_to(from.0, from.1);
    pb.line_to(to.0, to.1);
    if let Some(path) = pb.finish() {
        s.set_fill(None);
        s.set_stroke(Some(Stroke {
            paint: rgb::Color::new(color.0, color.1, color.2).into(),
            width,
            ..Stroke::default()
        }));
        s.draw_path(&path);
        s.set_stroke(None);
    }
}

pub(super) fn hline(s: &mut Surface, x1: f32, x2: f32, y: f32, width: f32, color: (u8, u8, u8)) {
    line(s, (x1, y), (x2, y), width, color);
}

pub(super) fn vline(s: &mut Surface, x: f32, y1: f32, y2: f32, width: f32, color: (u8, u8, u8)) {
    line(s, (x, y1), (x, y2), width, color);
}

/// `12345` → `12,345`: totals are read by people.
pub(super) fn group_digits(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_grouped_in_thousands() {
        assert_eq!(group_digits(0), "0");
        assert_eq!(group_digits(999), "999");
        assert_eq!(group_digits(1000), "1,000");
        assert_eq!(group_digits(100000), "100,000");
        assert_eq!(group_digits(1234567), "1,234,567");
    }
}
