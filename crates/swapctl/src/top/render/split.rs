//! Splitting a rectangle into rows or columns by plain arithmetic.
//!
//! ratatui's `Layout` solves constraints with a general solver on every call, and without its
//! cache that alone costs more than the rest of a frame. Our layouts are all "these fixed
//! sizes, and the rest shared", which two loops can do exactly.

use ratatui::layout::Rect;

/// A size along one axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    /// Exactly this many cells (fewer if the area runs out; earlier parts are served first).
    Fixed(u16),
    /// An equal share of what the fixed parts leave; the first shares get the odd cells.
    Fill,
}

/// The lengths `sizes` take out of `total` cells.
fn lengths<const N: usize>(total: u16, sizes: [Size; N]) -> [u16; N] {
    let mut out = [0; N];
    let mut left = total;
    for (len, size) in out.iter_mut().zip(sizes) {
        if let Size::Fixed(n) = size {
            *len = n.min(left);
            left -= *len;
        }
    }
    let fills = sizes.iter().filter(|s| **s == Size::Fill).count() as u16;
    if let Some(share) = left.checked_div(fills) {
        let mut extra = left % fills;
        for (len, size) in out.iter_mut().zip(sizes) {
            if size == Size::Fill {
                *len = share + u16::from(extra > 0);
                extra = extra.saturating_sub(1);
            }
        }
    }
    out
}

/// Split `area` into rows, top to bottom.
pub fn vertical<const N: usize>(area: Rect, sizes: [Size; N]) -> [Rect; N] {
    let mut y = area.y;
    lengths(area.height, sizes).map(|height| {
        let rect = Rect { y, height, ..area };
        y += height;
        rect
    })
}

/// Split `area` into columns, left to right.
pub fn horizontal<const N: usize>(area: Rect, sizes: [Size; N]) -> [Rect; N] {
    let mut x = area.x;
    lengths(area.width, sizes).map(|width| {
        let rect = Rect { x, width, ..area };
        x += width;
        rect
    })
}

/// A `width` x `height` rectangle centred in `area` (clipped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let (width, height) = (width.min(area.width), height.min(area.height));
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_parts_come_first_and_fills_share_the_rest() {
        assert_eq!(
            lengths(10, [Size::Fixed(3), Size::Fill, Size::Fixed(2)]),
            [3, 5, 2]
        );
        assert_eq!(lengths(7, [Size::Fill, Size::Fill]), [4, 3]);
        assert_eq!(
            lengths(4, [Size::Fixed(3), Size::Fixed(3), Size::Fill]),
            [3, 1, 0]
        );
        let [a, b] = vertical(Rect::new(2, 3, 10, 9), [Size::Fixed(4), Size::Fill]);
        assert_eq!((a, b), (Rect::new(2, 3, 10, 4), Rect::new(2, 7, 10, 5)));
        assert_eq!(
            centered(Rect::new(0, 0, 80, 24), 64, 15),
            Rect::new(8, 4, 64, 15)
        );
    }
}
