//! Interned strings.

use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

/// Index of a string in [`Strings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StringId(pub u32);

/// A string table: each distinct string is stored once. Id 0 is the empty string.
#[derive(Debug, Clone)]
pub struct Strings {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, StringId>,
}

impl Default for Strings {
    fn default() -> Self {
        let mut s = Strings {
            strings: Vec::new(),
            index: HashMap::default(),
        };
        s.intern("");
        s
    }
}

impl Strings {
    /// The id of the empty string.
    pub const EMPTY: StringId = StringId(0);

    /// Returns the id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> StringId {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = StringId(self.strings.len() as u32);
        let arc: Arc<str> = Arc::from(s);
        self.strings.push(arc.clone());
        self.index.insert(arc, id);
        id
    }

    /// The id of `s` when the table holds it.
    pub fn find(&self, s: &str) -> Option<StringId> {
        self.index.get(s).copied()
    }

    /// The string behind `id` (empty for an id from another table).
    pub fn get(&self, id: StringId) -> &str {
        self.strings.get(id.0 as usize).map_or("", |s| s)
    }

    /// Every string, the empty one first.
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.strings.iter().map(|s| &**s)
    }

    /// Number of strings, the empty one included.
    pub fn len(&self) -> usize {
        self.strings.len()
    }

    /// Always false: the empty string is always present.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_once() {
        let mut s = Strings::default();
        let a = s.intern("main");
        let b = s.intern("main");
        assert_eq!(a, b);
        assert_eq!(s.get(a), "main");
        assert_eq!(s.intern(""), Strings::EMPTY);
        assert_eq!(s.len(), 2);
    }
}
