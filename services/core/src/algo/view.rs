//! Insert-by-seq: how a client keeps a list ordered by sequence number while
//! pushes arrive repeated or out of order, and how it notices gaps.

/// Items kept sorted by their sequence number, each number at most once.
#[derive(Debug, Clone)]
pub struct SeqView<T> {
    items: Vec<(u64, T)>,
    /// Everything at or below this number is known to be present (or was
    /// before the view started).
    base: u64,
}

impl<T> Default for SeqView<T> {
    fn default() -> Self {
        Self::starting_after(0)
    }
}

impl<T> SeqView<T> {
    /// A view that already has everything up to `base` (a persisted cursor).
    pub fn starting_after(base: u64) -> Self {
        Self {
            items: Vec::new(),
            base,
        }
    }

    /// Inserts `item` at `seq`: appended if larger than the last, else placed
    /// after the largest smaller seq. Returns false for a repeat (or a seq
    /// at or below the base), which is dropped.
    pub fn insert(&mut self, seq: u64, item: T) -> bool {
        if seq <= self.base {
            return false;
        }
        match self.items.last() {
            None => {
                self.items.push((seq, item));
                true
            }
            Some((last, _)) if seq > *last => {
                self.items.push((seq, item));
                true
            }
            _ => match self.items.binary_search_by_key(&seq, |(s, _)| *s) {
                Ok(_) => false,
                Err(pos) => {
                    self.items.insert(pos, (seq, item));
                    true
                }
            },
        }
    }

    /// The highest seq such that base+1 ..= it are all present.
    pub fn contiguous_upto(&self) -> u64 {
        let mut upto = self.base;
        for (s, _) in &self.items {
            if *s == upto + 1 {
                upto = *s;
            } else if *s > upto + 1 {
                break;
            }
        }
        upto
    }

    /// Missing seqs below the highest present one, as inclusive ranges.
    pub fn gaps(&self) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut expect = self.base + 1;
        for (s, _) in &self.items {
            if *s > expect {
                out.push((expect, s - 1));
            }
            expect = s + 1;
        }
        out
    }

    /// The highest seq present (or the base).
    pub fn last_seq(&self) -> u64 {
        self.items.last().map(|(s, _)| *s).unwrap_or(self.base)
    }

    /// Items in seq order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        self.items.iter().map(|(s, t)| (*s, t))
    }

    /// Number of items held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}
