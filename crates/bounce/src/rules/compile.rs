//! Turns rule files into a [`RuleClassifier`]: validation with errors that name file and rule,
//! provider resolution, ordering into groups, and one regex set for every text pattern.

use super::format::{CodePattern, EnhancedPattern, OneOrMany, RuleDef, RuleFile};
use super::{Group, Rule, RuleClassifier, RuleError, RuleProblem};
use crate::{BounceClass, CodeClassifier};
use regex::bytes::{RegexBuilder, RegexSetBuilder};
use std::collections::{HashMap, HashSet};

/// Reply texts are mostly ASCII, and Unicode-aware `\b`/`(?i)` would push the regex engine off its
/// fast path (its lazy DFA gives up on Unicode word boundaries), so patterns are byte-oriented with
/// ASCII case folding; `(?u:…)` opts back into Unicode inside a pattern.
fn configure_set(b: &mut RegexSetBuilder) -> &mut RegexSetBuilder {
    b.unicode(false)
        .size_limit(64 << 20)
        // The lazy DFA's cache: at 32 MiB it thrashed on bounce explanations (a few KiB of
        // varied text against ~140 patterns) and fell back to the PikeVM, 1.5 ms per recipient;
        // at 64 MiB classification is a few µs. It grows only as far as the texts need.
        .dfa_size_limit(64 << 20)
}

fn check_regex(pattern: &str) -> Result<(), RuleProblem> {
    RegexBuilder::new(pattern)
        .unicode(false)
        .build()
        .map(drop)
        .map_err(|e| RuleProblem::BadRegex {
            pattern: pattern.to_string(),
            source: Box::new(e),
        })
}

/// A rule before ordering: where it came from and how it sorts.
struct Pending {
    layer: u8,
    provider: Option<usize>,
    seq: usize,
    rule: Rule,
    pattern: Option<String>,
}

/// Providers collected over all files; the first definition of a suffix wins, so operator files
/// (read first) can move a suffix to another provider.
#[derive(Default)]
struct Providers {
    names: Vec<String>,
    suffixes: HashMap<String, usize>,
}

impl Providers {
    fn add(&mut self, file: &str, def: &super::format::ProviderDef) -> Result<(), RuleError> {
        let err = |problem| RuleError::Provider {
            file: file.to_string(),
            provider: def.name.clone(),
            problem,
        };
        let name = def.name.trim();
        if name.is_empty() {
            return Err(err(RuleProblem::EmptyName));
        }
        let idx = match self.names.iter().position(|n| n == name) {
            Some(i) => i,
            None => {
                self.names.push(name.to_string());
                self.names.len() - 1
            }
        };
        for s in def.hosts.iter().chain(&def.domains) {
            let suffix = s.trim().trim_matches('.').to_ascii_lowercase();
            let valid = !suffix.is_empty()
                && suffix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !valid {
                return Err(err(RuleProblem::BadSuffix(s.clone())));
            }
            self.suffixes.entry(suffix).or_insert(idx);
        }
        Ok(())
    }
}

fn parse_all<'a>(files: &[(&'a str, &str)]) -> Result<Vec<(&'a str, RuleFile)>, RuleError> {
    files
        .iter()
        .map(|&(n, t)| parse_file(n, t).map(|f| (n, f)))
        .collect()
}

fn parse_file(name: &str, text: &str) -> Result<RuleFile, RuleError> {
    toml::from_str(text).map_err(|e| RuleError::Toml {
        file: name.to_string(),
        source: Box::new(e),
    })
}

fn patterns<T>(
    field: Option<&OneOrMany>,
    parse: fn(&str) -> Option<T>,
    bad: fn(String) -> RuleProblem,
) -> Result<Vec<T>, RuleProblem> {
    let items = field.map(OneOrMany::items).unwrap_or_default();
    items
        .iter()
        .map(|s| parse(s).ok_or_else(|| bad(s.clone())))
        .collect()
}

fn compile_rule(
    def: &RuleDef,
    providers: &Providers,
) -> Result<(Rule, Option<usize>, Option<String>), RuleProblem> {
    if def.name.trim().is_empty() {
        return Err(RuleProblem::EmptyName);
    }
    let class = BounceClass(def.class);
    if !class.is_known() {
        return Err(RuleProblem::UnknownClass(def.class));
    }
    let provider = match &def.provider {
        Some(p) => Some(
            providers
                .names
                .iter()
                .position(|n| n == p.trim())
                .ok_or_else(|| RuleProblem::UnknownProvider(p.clone()))?,
        ),
        None => None,
    };
    let codes = patterns(def.code.as_ref(), CodePattern::parse, RuleProblem::BadCode)?;
    let enhanced = patterns(
        def.enhanced.as_ref(),
        EnhancedPattern::parse,
        RuleProblem::BadEnhanced,
    )?;
    if let Some(t) = &def.text {
        check_regex(t)?;
    }
    if codes.is_empty() && enhanced.is_empty() && def.text.is_none() {
        return Err(RuleProblem::NoCondition);
    }
    let rule = Rule {
        name: def.name.trim().to_string(),
        class,
        codes,
        enhanced,
        text: None,
        catch_all: def.catch_all,
    };
    Ok((rule, provider, def.text.clone()))
}

/// Compiles the rules of one layer (0 = operator, 1 = built-in), skipping `replaced` names.
fn compile_layer(
    layer: u8,
    files: &[(&str, RuleFile)],
    providers: &Providers,
    replaced: &HashSet<String>,
    out: &mut Vec<Pending>,
) -> Result<(), RuleError> {
    let mut seen = HashSet::new();
    for (file, parsed) in files {
        for def in &parsed.rule {
            let err = |problem| RuleError::Rule {
                file: (*file).to_string(),
                rule: def.name.clone(),
                problem,
            };
            let (rule, provider, pattern) = compile_rule(def, providers).map_err(err)?;
            if !seen.insert(rule.name.clone()) {
                return Err(err(RuleProblem::Duplicate));
            }
            if replaced.contains(&rule.name) {
                continue;
            }
            out.push(Pending {
                layer,
                provider,
                seq: out.len(),
                rule,
                pattern,
            });
        }
    }
    Ok(())
}

/// Builds the classifier from operator files (tried first) and the built-in files.
pub(super) fn build(
    extra: &[(&str, &str)],
    builtin: &[(&str, &str)],
) -> Result<RuleClassifier, RuleError> {
    let extra = parse_all(extra)?;
    let builtin = parse_all(builtin)?;

    let mut providers = Providers::default();
    for (file, parsed) in extra.iter().chain(&builtin) {
        for def in &parsed.provider {
            providers.add(file, def)?;
        }
    }

    let mut pending = Vec::new();
    compile_layer(0, &extra, &providers, &HashSet::new(), &mut pending)?;
    let replaced: HashSet<String> = pending.iter().map(|p| p.rule.name.clone()).collect();
    compile_layer(1, &builtin, &providers, &replaced, &mut pending)?;

    // Provider rules before generic ones within a layer; a host has at most one provider, so the
    // relative order of different providers' rules does not matter.
    pending.sort_by_key(|p| (p.layer, p.provider.is_none(), p.provider, p.seq));

    let mut rules = Vec::with_capacity(pending.len());
    let mut groups: Vec<Group> = Vec::new();
    let mut texts = Vec::new();
    let mut last_key = None;
    for p in pending {
        let key = (p.layer, p.provider);
        if last_key != Some(key) {
            groups.push(Group {
                provider: p.provider,
                rules: rules.len()..rules.len(),
            });
            last_key = Some(key);
        }
        let mut rule = p.rule;
        if let Some(t) = p.pattern {
            rule.text = Some(texts.len());
            texts.push(t);
        }
        rules.push(rule);
        if let Some(g) = groups.last_mut() {
            g.rules.end = rules.len();
        }
    }

    let set = configure_set(&mut RegexSetBuilder::new(&texts))
        .build()
        .map_err(|e| RuleError::Set(Box::new(e)))?;
    Ok(RuleClassifier {
        rules,
        groups,
        set,
        providers: providers.names,
        suffixes: providers.suffixes,
        fallback: CodeClassifier::new(),
    })
}
