//! The fragmentation report of FreeBSD's `blist_stats`: the maximal free ranges, counted,
//! averaged and sorted into Fibonacci size classes.

use std::fmt;

/// The lower bounds of the size classes: class `i` holds the ranges of `FIB[i] .. FIB[i+1]`
/// blocks (the last class everything from `FIB[31]` up).
pub const FIB: [u64; 32] = [
    1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 1597, 2584, 4181, 6765, 10946,
    17711, 28657, 46368, 75025, 121393, 196418, 317811, 514229, 832040, 1346269, 2178309, 3524578,
];

/// What `Blist::stats` reports. Its `Display` is FreeBSD's `blist_stats` text, byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlistStats {
    /// The number of maximal free ranges.
    pub ranges: u64,
    /// The length of the largest free range (0 when nothing is free).
    pub largest: u64,
    /// FreeBSD's integer running mean of the range lengths, in ascending block order.
    pub average: u64,
    /// `histogram[i]` ranges have a length in size class `i` (see [`FIB`]).
    pub histogram: [u64; 32],
}

impl BlistStats {
    /// The report for the given maximal free ranges `(first, len)`, in ascending order.
    ///
    /// The mean is FreeBSD's: `err += len - avg; num += 1; avg += err / num; err %= num`, with
    /// C's division (truncating toward zero). It stays exact without a sum that could overflow,
    /// and matching it to the last digit is what makes the text identical.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> BlistStats {
        let mut stats = BlistStats::default();
        let (mut avg, mut err, mut num) = (0i64, 0i64, 0i64);
        for (_, len) in ranges {
            stats.ranges += 1;
            stats.largest = stats.largest.max(len);
            stats.histogram[size_class(len)] += 1;
            err += len as i64 - avg;
            num += 1;
            avg += err / num;
            err %= num;
        }
        stats.average = avg as u64;
        stats
    }

    /// The non-empty size classes as `(lo, hi, count)`: `count` ranges have a length within
    /// `lo ..= hi`. For the highest class `hi` is the largest range (no range is longer).
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        let top = self.top_class();
        (0..=top).filter(|&i| self.histogram[i] != 0).map(move |i| {
            let hi = if i == top {
                self.largest
            } else {
                FIB[i + 1] - 1
            };
            (FIB[i], hi, self.histogram[i])
        })
    }

    /// The highest non-empty size class, 0 when there is none.
    fn top_class(&self) -> usize {
        self.histogram.iter().rposition(|&n| n != 0).unwrap_or(0)
    }
}

/// The size class of a range of `len >= 1` blocks: the last `i` with `FIB[i] <= len`.
fn size_class(len: u64) -> usize {
    FIB.partition_point(|&f| f <= len).saturating_sub(1)
}

impl fmt::Display for BlistStats {
    /// FreeBSD's layout: three summary lines, then the table, counts right-aligned in 20
    /// columns. Classes below the highest are printed when non-empty, as `a to b` or `a` when
    /// the class holds one size; the highest is printed last (even when empty, which only
    /// happens when nothing is free), bounded by the largest range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "number of maximal free ranges: {}", self.ranges)?;
        writeln!(f, "largest free range: {}", self.largest)?;
        writeln!(f, "average maximal free range size: {}", self.average)?;
        writeln!(f, "number of maximal free ranges of different sizes:")?;
        writeln!(f, "               count  |  size range")?;
        writeln!(f, "               -----  |  ----------")?;
        let top = self.top_class();
        for i in 0..top {
            let count = self.histogram[i];
            if count == 0 {
                continue;
            }
            if FIB[i] == FIB[i + 1] - 1 {
                writeln!(f, "{count:>20}  |  {}", FIB[i])?;
            } else {
                writeln!(f, "{count:>20}  |  {} to {}", FIB[i], FIB[i + 1] - 1)?;
            }
        }
        let count = self.histogram[top];
        if count > 1 {
            writeln!(f, "{count:>20}  |  {} to {}", FIB[top], self.largest)
        } else {
            writeln!(f, "{count:>20}  |  {}", self.largest)
        }
    }
}
