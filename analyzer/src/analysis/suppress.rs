//! Runtime-owned blocks: leak suppressions.
//!
//! Some blocks live until the end of every process without being anybody's leak: the C runtime
//! keeps them for the life of a thread or of the process (glibc's loader data, the locale
//! tables `setlocale` loads, each thread's DTV, libstdc++'s emergency exception pool). A block
//! still live at the end whose allocation stack has a frame matching a suppression rule is
//! counted as *runtime-owned* instead of *leaked* (docs/metrics.md, "Runtime-owned").
//!
//! Rules are function-name patterns: `*` matches any run of characters, everything else matches
//! itself. A pattern matches a frame's function name as written, or with glibc's internal
//! `__GI_` prefix removed (`__GI_setlocale` matches `setlocale`). The built-in rules
//! ([`Suppressions::builtin`]) come first; a user's file adds rules of its own
//! ([`Suppressions::parse`]: one pattern per line, `#` starts a comment).

use std::collections::HashMap;
use std::path::Path;

use crate::model::{Profile, RuntimeOwned, StackId};

/// The label of the rules read from a user's file.
pub const USER_RULE: &str = "suppression file";

/// A named group of function-name patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// What the matched blocks are (`per-thread DTV`, `glibc loader`, `suppression file`).
    pub label: String,
    /// Patterns a frame's function name is matched against.
    pub patterns: Vec<String>,
    /// Names that never match this rule even when a pattern does (the loader's entry points
    /// through which a library's own constructors run: their leaks are the library's).
    pub except: Vec<String>,
}

impl Rule {
    fn new(label: &str, patterns: &[&str], except: &[&str]) -> Rule {
        Rule {
            label: label.to_owned(),
            patterns: patterns.iter().map(|s| (*s).to_owned()).collect(),
            except: except.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn matches(&self, function: &str) -> bool {
        let names = [function, function.strip_prefix("__GI_").unwrap_or(function)];
        if names.iter().any(|n| self.except.iter().any(|e| e == n)) {
            return false;
        }
        names
            .iter()
            .any(|n| self.patterns.iter().any(|p| glob_matches(p, n)))
    }
}

/// The rules applied while loading (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppressions {
    /// The rules, in order: a block is counted under the first one that matches.
    pub rules: Vec<Rule>,
}

impl Default for Suppressions {
    /// The built-in rules.
    fn default() -> Self {
        Suppressions::builtin()
    }
}

/// A suppression file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuppressionError {
    /// The file could not be read.
    #[error("cannot read the suppression file {path}: {error}; check the path")]
    Io {
        /// The file.
        path: String,
        /// The error.
        error: std::io::Error,
    },
    /// A line is not a pattern.
    #[error(
        "{path}:{line}: {reason}; write one function-name pattern per line (`*` matches any \
         characters, `#` starts a comment)"
    )]
    Syntax {
        /// The file.
        path: String,
        /// Line number, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Suppressions {
    /// No rules: every block live at the end counts as leaked (`--no-default-suppressions`).
    pub fn none() -> Suppressions {
        Suppressions { rules: Vec::new() }
    }

    /// The built-in rules for blocks the C and C++ runtimes own (docs/metrics.md lists them).
    pub fn builtin() -> Suppressions {
        // The loader's entry points run libraries' constructors (dlopen → _dl_open →
        // _dl_catch_exception → _dl_init → the constructor): what those allocate belongs to the
        // library, so they never make a block the loader's.
        const LOADER_ENTRIES: [&str; 7] = [
            "_dl_init",
            "_dl_start_user",
            "_dl_catch_exception",
            "_dl_catch_error",
            "_dl_open",
            "_dl_call_libc_early_init",
            "_dl_fini",
        ];
        Suppressions {
            rules: vec![
                Rule::new(
                    "per-thread DTV",
                    &[
                        "allocate_dtv",
                        "_dl_allocate_tls*",
                        "_dl_resize_dtv",
                        "_dl_update_slotinfo",
                    ],
                    &[],
                ),
                Rule::new("glibc loader", &["_dl_*"], &LOADER_ENTRIES),
                Rule::new("locale", &["_nl_*", "setlocale", "__setlocale"], &[]),
                Rule::new(
                    "libstdc++ emergency pool",
                    &[
                        "(anonymous namespace)::pool::pool*",
                        "_GLOBAL__sub_I_eh_alloc.cc",
                    ],
                    &[],
                ),
            ],
        }
    }

    /// Parses a suppression file's text (`path` names it in errors): one pattern per line,
    /// surrounding blank space ignored, `#` to the end of the line a comment, blank lines
    /// skipped.
    pub fn parse(text: &str, path: &str) -> Result<Rule, SuppressionError> {
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line.chars().all(|c| c == '*') {
                return Err(SuppressionError::Syntax {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: format!("`{line}` would match every function and hide every leak"),
                });
            }
            if line.chars().any(char::is_control) {
                return Err(SuppressionError::Syntax {
                    path: path.to_owned(),
                    line: i + 1,
                    reason: "a control character in the pattern".to_owned(),
                });
            }
            patterns.push(line.to_owned());
        }
        Ok(Rule {
            label: USER_RULE.to_owned(),
            patterns,
            except: Vec::new(),
        })
    }

    /// Adds the rule of the suppression file at `path` (see [`Suppressions::parse`]).
    pub fn add_file(&mut self, path: &Path) -> Result<(), SuppressionError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SuppressionError::Io {
            path: name.clone(),
            error,
        })?;
        let rule = Suppressions::parse(&text, &name)?;
        self.rules.push(rule);
        Ok(())
    }
}

/// The first rule (by index) matching a frame of a stack, remembered for every return address
/// and tree node it meets: a rule matches a stack when it matches one of its frames, so the
/// first rule of a stack is the least of its frames' first rules, and a node's is the least of
/// its parent's and its own address's. Deep programs leak from tens of thousands of stacks
/// that share their outer frames.
struct RuleFinder<'s> {
    rules: &'s Suppressions,
    /// Per return address ([`crate::model::IpId`]) and per tree node ([`StackId`]): [`UNKNOWN`],
    /// [`NO_RULE`] or the rule's index.
    by_ip: Vec<u32>,
    by_node: Vec<u32>,
    path: Vec<StackId>,
}

const UNKNOWN: u32 = u32::MAX;
const NO_RULE: u32 = u32::MAX - 1;

impl<'s> RuleFinder<'s> {
    fn new(p: &Profile, rules: &'s Suppressions) -> RuleFinder<'s> {
        RuleFinder {
            rules,
            by_ip: vec![UNKNOWN; p.ips.len()],
            by_node: vec![UNKNOWN; p.stacks.len()],
            path: Vec::new(),
        }
    }

    /// The first rule matching a frame of `stack`, by index.
    fn rule_of(&mut self, p: &Profile, stack: Option<StackId>) -> Option<usize> {
        if self.rules.rules.is_empty() {
            return None;
        }
        // Up to the root or the first node already known, then down again.
        let mut above = NO_RULE;
        let mut at = stack;
        while let Some(n) = at {
            let known = self.by_node[n.0 as usize];
            if known != UNKNOWN {
                above = known;
                break;
            }
            self.path.push(n);
            at = p.stacks[n.0 as usize].parent;
        }
        while let Some(n) = self.path.pop() {
            let own = self.ip_rule(p, p.stacks[n.0 as usize].ip);
            above = above.min(own);
            self.by_node[n.0 as usize] = above;
        }
        (above != NO_RULE).then_some(above as usize)
    }

    /// The first rule matching one of the frames of return address `ip`.
    fn ip_rule(&mut self, p: &Profile, ip: crate::model::IpId) -> u32 {
        let i = ip.0 as usize;
        if self.by_ip[i] == UNKNOWN {
            let names = p.ip(ip).frames.iter().map(|&f| p.str(p.frame(f).function));
            self.by_ip[i] = names
                .filter_map(|n| self.rules.rules.iter().position(|r| r.matches(n)))
                .min()
                .map_or(NO_RULE, |r| r as u32);
        }
        self.by_ip[i]
    }
}

/// Moves the blocks still live at the end whose stack matches a rule from leaked to
/// runtime-owned: in each stack's numbers, the totals, the time buckets, and
/// [`Profile::runtime_owned`] (one entry per rule that matched, in rule order).
pub fn apply(p: &mut Profile, s: &Suppressions) {
    let mut by_rule: HashMap<usize, RuntimeOwned> = HashMap::new();
    let mut moved: Vec<bool> = vec![false; p.stack_stats.len()];
    let mut finder = RuleFinder::new(p, s);
    for (i, was_moved) in moved.iter_mut().enumerate() {
        let st = &p.stack_stats[i];
        if st.counts.leaked_allocations == 0 && st.counts.leaked_bytes == 0 {
            continue;
        }
        let Some(rule) = finder.rule_of(p, st.stack) else {
            continue;
        };
        let st = &mut p.stack_stats[i];
        let (bytes, blocks) = (st.counts.leaked_bytes, st.counts.leaked_allocations);
        st.runtime_owned_bytes = bytes;
        st.runtime_owned_allocations = blocks;
        st.counts.leaked_bytes = 0;
        st.counts.leaked_allocations = 0;
        let t = &mut p.totals;
        t.counts.leaked_bytes = t.counts.leaked_bytes.saturating_sub(bytes);
        t.counts.leaked_allocations = t.counts.leaked_allocations.saturating_sub(blocks);
        t.runtime_owned_bytes = t.runtime_owned_bytes.saturating_add(bytes);
        t.runtime_owned_allocations = t.runtime_owned_allocations.saturating_add(blocks);
        let e = by_rule.entry(rule).or_insert_with(|| RuntimeOwned {
            rule: s.rules[rule].label.clone(),
            ..RuntimeOwned::default()
        });
        e.bytes = e.bytes.saturating_add(bytes);
        e.blocks = e.blocks.saturating_add(blocks);
        *was_moved = true;
    }
    if let Some(tb) = p.time_buckets.as_mut() {
        for cell in tb.buckets.iter_mut().flat_map(|b| b.cells.iter_mut()) {
            if moved.get(cell.stack as usize).copied().unwrap_or(false) {
                cell.leaked_allocations = 0;
                cell.leaked_bytes = 0;
            }
        }
    }
    let mut rules: Vec<(usize, RuntimeOwned)> = by_rule.into_iter().collect();
    rules.sort_by_key(|r| r.0);
    p.runtime_owned = rules.into_iter().map(|r| r.1).collect();
}

/// `*` matches any run of characters (none included); every other character matches itself.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    // On bytes, without copying either string: UTF-8 sequences match only whole (a literal after
    // a `*` starts with a character's first byte, which no byte inside a character equals), so
    // this is the match over characters.
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    // Iterative matching with backtracking to the last `*` (linear in practice).
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ni));
            pi += 1;
        } else if pi < p.len() && p[pi] == n[ni] {
            pi += 1;
            ni += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_matches("_dl_*", "_dl_new_object"));
        assert!(glob_matches("_dl_*", "_dl_"));
        assert!(!glob_matches("_dl_*", "x_dl_new_object"));
        assert!(glob_matches("*cache*", "my_cache_init"));
        assert!(glob_matches("a*b*c", "a__b__c"));
        assert!(!glob_matches("a*b*c", "a__b__cd"));
        assert!(glob_matches("exact", "exact"));
        assert!(!glob_matches("exact", "exactly"));
        // Characters beyond ASCII match whole, with or without a `*` around them.
        assert!(glob_matches("*é*", "café_init"));
        assert!(glob_matches("caf*_init", "café_init"));
        assert!(!glob_matches("*é", "cafe"));
        assert!(glob_matches("ünï*", "ünïcode"));
    }

    #[test]
    fn builtin_rules_name_runtime_frames_and_spare_constructors() {
        let s = Suppressions::builtin();
        let first = |n: &str| {
            s.rules
                .iter()
                .find(|r| r.matches(n))
                .map(|r| r.label.as_str())
        };
        assert_eq!(first("allocate_dtv"), Some("per-thread DTV"));
        assert_eq!(first("_dl_allocate_tls"), Some("per-thread DTV"));
        assert_eq!(first("_dl_new_object"), Some("glibc loader"));
        assert_eq!(
            first("_dl_init"),
            None,
            "a constructor's allocations are its own"
        );
        assert_eq!(first("__GI_setlocale"), Some("locale"));
        assert_eq!(first("_nl_intern_locale_data"), Some("locale"));
        assert_eq!(
            first("(anonymous namespace)::pool::pool()"),
            Some("libstdc++ emergency pool")
        );
        assert_eq!(first("main"), None);
        assert_eq!(first("__GI___strdup"), None);
    }

    #[test]
    fn files_parse_with_comments_and_refuse_match_alls() {
        let r =
            Suppressions::parse("# mine\n  my_cache_init  \n\nlib*::intern # pool\n", "f").unwrap();
        assert_eq!(r.patterns, vec!["my_cache_init", "lib*::intern"]);
        assert_eq!(r.label, USER_RULE);
        let e = Suppressions::parse("ok\n**\n", "sup.txt").unwrap_err();
        assert!(e.to_string().starts_with("sup.txt:2: "), "{e}");
    }
}
