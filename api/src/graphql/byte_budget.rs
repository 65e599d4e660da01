//! A least-recently-used cache bounded by the bytes of what it holds, not by
//! a count: what a client sends or is answered can differ a thousandfold in
//! size, and a count would let the largest fill memory.

use lru::LruCache;

pub(crate) struct ByteBudget<V> {
    entries: LruCache<String, (V, usize)>,
    bytes: usize,
    budget: usize,
}

impl<V: Clone> ByteBudget<V> {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            budget,
        }
    }

    /// What the kept values add up to, keys included.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn get(&mut self, key: &str) -> Option<V> {
        self.entries.get(key).map(|(value, _)| value.clone())
    }

    /// Keeps `value` as `size` bytes (its key's included), least recently
    /// used out first; a value larger than the whole budget is not kept.
    pub(crate) fn insert(&mut self, key: String, value: V, size: usize) {
        if size > self.budget {
            return;
        }
        if let Some((_, old)) = self.entries.put(key, (value, size)) {
            self.bytes -= old;
        }
        self.bytes += size;
        while self.bytes > self.budget {
            match self.entries.pop_lru() {
                Some((_, (_, size))) => self.bytes -= size,
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_go_once_their_bytes_pass_the_budget() {
        let mut cache = ByteBudget::new(100);
        cache.insert("a".into(), 'x', 40);
        cache.insert("b".into(), 'y', 40);
        // a is used: b is now the least recent
        assert_eq!(cache.get("a"), Some('x'));
        cache.insert("c".into(), 'z', 40);
        assert_eq!(cache.bytes, 80);
        assert_eq!(cache.get("b"), None);
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
        // a value larger than the whole budget is not kept at all
        cache.insert("d".into(), 'w', 201);
        assert_eq!(cache.get("d"), None);
        assert_eq!(cache.bytes, 80);
        // the same key again replaces, and counts once
        cache.insert("a".into(), 'v', 20);
        assert_eq!(cache.bytes, 60);
        assert_eq!(cache.get("a"), Some('v'));
    }
}
