//! The rule-file classifier (SPEC §2.7): provider-specific rules, then generic rules, all data
//! (TOML files shipped with the binary, see `crates/bounce/rules/`), extended and overridden by
//! operator files without a rebuild.
//!
//! Order of evaluation, first match wins:
//! 1. operator rules for the provider of the host, then operator generic rules;
//! 2. built-in rules for the provider of the host, then built-in generic rules;
//! 3. [`CodeClassifier`] as the fallback (rule names `fallback:<its rule>`).
//!
//! An operator rule with the same name as a built-in rule replaces it. All text patterns are
//! compiled into one [`RegexSet`], so a classification scans the reply text once.
//!
//! Safety net: a rule that does not constrain the reply code never gives a hard class (category
//! hard, e.g. 10 Invalid Recipient) to a 4xx reply — a transient reply must not quarantine an
//! address because its wording resembles a permanent failure.

mod builtin;
mod compile;
mod format;
mod reply;

pub use reply::{ParsedReply, parse_reply};

use crate::{BounceClass, Category, Classification, Classifier, CodeClassifier, FailureInput};
use format::{CodePattern, EnhancedPattern};
use regex::bytes::RegexSet;
use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a rule file was refused. Every variant names the file; rule problems name the rule.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule file {file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("rule file {file}: invalid TOML: {source}")]
    Toml {
        file: String,
        source: Box<toml::de::Error>,
    },
    #[error("rule file {file}: rule {rule:?}: {problem}")]
    Rule {
        file: String,
        rule: String,
        problem: RuleProblem,
    },
    #[error("rule file {file}: provider {provider:?}: {problem}")]
    Provider {
        file: String,
        provider: String,
        problem: RuleProblem,
    },
    #[error("rule set too large to compile into one regex set: {0}")]
    Set(#[source] Box<regex::Error>),
}

/// What is wrong with one rule or provider.
#[derive(Debug, thiserror::Error)]
pub enum RuleProblem {
    #[error("bad regex {pattern:?}: {source}")]
    BadRegex {
        pattern: String,
        source: Box<regex::Error>,
    },
    #[error("unknown bounce class {0} (see the class table in SPEC §2.7)")]
    UnknownClass(u16),
    #[error("unknown provider {0:?} (define it with [[provider]])")]
    UnknownProvider(String),
    #[error("bad reply code pattern {0:?} (three characters, digits or x: \"550\", \"5xx\")")]
    BadCode(String),
    #[error("bad enhanced code pattern {0:?} (\"5.1.1\", \"5.7.*\", \"*.2.2\")")]
    BadEnhanced(String),
    #[error("no condition: a rule needs at least one of code, enhanced, text")]
    NoCondition,
    #[error("empty name")]
    EmptyName,
    #[error("duplicate name")]
    Duplicate,
    #[error("bad host or domain suffix {0:?}")]
    BadSuffix(String),
}

/// A compiled rule.
#[derive(Debug)]
struct Rule {
    name: String,
    class: BounceClass,
    codes: Vec<CodePattern>,
    enhanced: Vec<EnhancedPattern>,
    /// Index of the text pattern in the classifier's regex set.
    text: Option<usize>,
    /// Matches wording that states no reason (`catch_all = true`).
    catch_all: bool,
}

impl Rule {
    /// Everything but the text: cheap checks done before the regex set is consulted.
    fn precheck(&self, code: u16, enhanced: Option<(u8, u16, u16)>) -> bool {
        if !self.codes.is_empty() && !self.codes.iter().any(|c| c.matches(code)) {
            return false;
        }
        if self.codes.is_empty()
            && (400..500).contains(&code)
            && self.class.category() == Category::Hard
        {
            return false;
        }
        self.enhanced.is_empty()
            || enhanced.is_some_and(|e| self.enhanced.iter().any(|p| p.matches(e)))
    }
}

/// A run of rules with the same provider (or none), in evaluation order.
#[derive(Debug)]
struct Group {
    provider: Option<usize>,
    rules: Range<usize>,
}

/// Classifies failures with rule files; see the module documentation for the evaluation order.
pub struct RuleClassifier {
    rules: Vec<Rule>,
    groups: Vec<Group>,
    set: RegexSet,
    providers: Vec<String>,
    /// Lower-case host/domain suffix → provider index.
    suffixes: HashMap<String, usize>,
    fallback: CodeClassifier,
}

impl RuleClassifier {
    /// The rules shipped with the binary.
    pub fn builtin() -> Result<Self, RuleError> {
        Self::with_extra::<&str, &str>(&[])
    }

    /// The built-in rules plus operator files `(name, TOML text)`, tried before the built-ins in
    /// the order given. The name only appears in errors.
    pub fn with_extra<N: AsRef<str>, T: AsRef<str>>(files: &[(N, T)]) -> Result<Self, RuleError> {
        let extra: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_ref(), t.as_ref()))
            .collect();
        compile::build(&extra, builtin::FILES)
    }

    /// The built-in rules plus operator files read from disk (`[bounce] rules_files`).
    pub fn from_paths<P: AsRef<Path>>(paths: &[P]) -> Result<Self, RuleError> {
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let p = p.as_ref();
            let text = std::fs::read_to_string(p).map_err(|source| RuleError::Io {
                file: p.to_path_buf(),
                source,
            })?;
            files.push((p.display().to_string(), text));
        }
        Self::with_extra(&files)
    }

    /// Number of rules (operator and built-in) after overrides.
    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Names of the known providers.
    pub fn providers(&self) -> impl Iterator<Item = &str> {
        self.providers.iter().map(String::as_str)
    }

    /// The provider whose host or domain suffixes match `host` (an MX host, a domain or an
    /// address), the longest suffix winning.
    pub fn provider_for(&self, host: &str) -> Option<&str> {
        self.provider_index(host)
            .and_then(|i| self.providers.get(i))
            .map(String::as_str)
    }

    fn provider_index(&self, host: &str) -> Option<usize> {
        let host = host
            .rsplit('@')
            .next()
            .unwrap_or(host)
            .trim_end_matches('.');
        let host: Cow<'_, str> = if host.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(host.to_ascii_lowercase())
        } else {
            Cow::Borrowed(host)
        };
        let mut rest: &str = &host;
        loop {
            if let Some(&p) = self.suffixes.get(rest) {
                return Some(p);
            }
            rest = rest.split_once('.')?.1;
        }
    }
}

impl std::fmt::Debug for RuleClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleClassifier")
            .field("rules", &self.rules.len())
            .field("groups", &self.groups.len())
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

impl Classifier for RuleClassifier {
    fn classify(&self, input: &FailureInput<'_>) -> Classification {
        let provider = input.host.and_then(|h| self.provider_index(h));
        // An enhanced code of another class than the reply code is noise (as in CodeClassifier).
        let enhanced = input
            .enhanced
            .filter(|e| u16::from(e.0) == input.code / 100 || input.code == 0);
        let mut hits = None;
        for group in &self.groups {
            if group.provider.is_some() && group.provider != provider {
                continue;
            }
            for rule in self.rules.get(group.rules.clone()).unwrap_or_default() {
                if !rule.precheck(input.code, enhanced) {
                    continue;
                }
                if let Some(i) = rule.text {
                    let hits = hits.get_or_insert_with(|| self.set.matches(input.text.as_bytes()));
                    if !hits.matched(i) {
                        continue;
                    }
                }
                return Classification {
                    class: rule.class,
                    rule: rule.name.clone(),
                    specific: !rule.catch_all,
                };
            }
        }
        let c = self.fallback.classify(input);
        Classification {
            class: c.class,
            rule: format!("fallback:{}", c.rule),
            specific: false,
        }
    }
}

#[cfg(test)]
mod tests;
