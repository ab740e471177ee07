//! Check: resolves names and types in the AST and builds the [`model::Model`].
//!
//! Every error the file has is reported in one run; each names the rule (or
//! test, or default) it is in and carries a help line where one helps.

mod error;
pub(crate) mod model;

use crate::decision::{Action, AlertTarget, Disposition};
use crate::diagnostics::{
    did_you_mean_within, list_values, Code, Diagnostic, Span, SUGGEST_BUDGET,
};
use crate::facts::{
    canonical_ip, FactId, FactInfo, FactTable, FactType, FactValue, Facts, BUILTIN_COUNT,
};
use crate::glob::Glob;
use crate::limits::Limits;
use crate::syntax::ast;
use error::{CheckErrorKind, Context};
use ipnet::IpNet;
use model::*;
use std::borrow::Cow;
// Ordered maps only: iteration order (e.g. which of two equally close
// names a hint picks) must not depend on a random hash seed.
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

/// Checks a parsed file. The model is `None` when there are errors.
pub(crate) fn check(
    src: &str,
    file: &ast::File,
    limits: &Limits,
    lines: &crate::diagnostics::LineIndex,
) -> (Option<Model>, Vec<Diagnostic>) {
    let mut c = Checker {
        src,
        limits,
        diags: Vec::new(),
        facts: std::rc::Rc::new(FactTable::builtins()),
        fact_decls: Vec::new(),
        fact_used: Vec::new(),
        lists: BTreeMap::new(),
        enum_index: Vec::new(),
        list_decls: Vec::new(),
        list_cache: BTreeMap::new(),
        list_info: Vec::new(),
        context: Context::File,
        lines,
        suggest_budget: SUGGEST_BUDGET,
        regex_left: regex_total(limits, src),
    };
    let model = c.run(file);
    let mut diags = c.diags;
    // A list used by several rules reports a bad element once.
    let mut seen = BTreeSet::new();
    // (The first report wins: declarations are checked before the rules using them.)
    diags.retain(|d| seen.insert((d.code, d.span.start, d.span.end)));
    diags.sort_by_key(|d| (d.span.start, d.code));
    let ok = !diags.iter().any(Diagnostic::is_error);
    (model.filter(|_| ok), diags)
}

struct Checker<'a> {
    src: &'a str,
    limits: &'a Limits,
    diags: Vec<Diagnostic>,
    /// Shared so that a condition can hold its fact's type while the
    /// checker reports errors (a clone per use would copy an enum's values
    /// at every use).
    facts: std::rc::Rc<FactTable>,
    fact_decls: Vec<Span>,
    /// Whether each custom fact is used by a rule condition.
    fact_used: Vec<bool>,
    /// List name → index into `list_info` and its declaration.
    lists: BTreeMap<&'a str, (usize, &'a ast::ListDecl<'a>)>,
    /// Per custom enum fact (index = id - builtins; `None` for other types):
    /// value name → index, so a literal is found in O(log n), not by a scan
    /// of every value.
    enum_index: Vec<Option<BTreeMap<String, u16>>>,
    /// Declarations of the lists, by index.
    list_decls: Vec<&'a ast::ListDecl<'a>>,
    /// A named list checked for one fact: `(list, fact, matches)` → its
    /// condition (`None`: it had errors, already reported).
    list_cache: BTreeMap<(usize, u16, bool), Option<ExprKind>>,
    list_info: Vec<ListInfo>,
    /// The rule, default or test being checked, appended to messages.
    context: Context<'a>,
    /// Line starts of `src` (the caller's: built once per parse).
    lines: &'a crate::diagnostics::LineIndex,
    /// What is left of the "did you mean" work budget (shared by all errors).
    suggest_budget: usize,
    /// What is left of the total compiled-regex budget.
    regex_left: usize,
}

fn describe_value(v: &ast::Value) -> &'static str {
    match v {
        ast::Value::Str(_) => "a string",
        ast::Value::Regex(..) => "a regex",
        ast::Value::Ip(t, _) if t.contains('/') => "a CIDR",
        ast::Value::Ip(..) => "an IP address",
        ast::Value::Int(..) => "an integer",
        ast::Value::Float(..) => "a number",
        ast::Value::Bool(..) => "a bool",
        ast::Value::Word(_) => "a bare word",
        ast::Value::List(..) => "a list",
    }
}

impl<'a> Checker<'a> {
    /// Reports `kind` at `span`, in the current context.
    fn report(&mut self, span: Span, kind: CheckErrorKind) {
        let mut d = Diagnostic::new(
            kind.code(),
            self.src,
            span,
            format!("{}{}", kind.message(), self.context),
        );
        d.help = kind.help();
        self.diags.push(d);
    }

    fn run(&mut self, file: &'a ast::File) -> Option<Model> {
        let mut name = None;
        let mut mode = None;
        let mut admins = Vec::new();
        let mut default: Option<DefaultModel> = None;
        let mut file_allows = Vec::new();
        let mut pending_allows: Vec<Code> = Vec::new();

        // Declarations first, so that order in the file does not matter.
        for item in &file.items {
            match item {
                ast::Item::Fact(f) => self.declare_fact(f),
                ast::Item::List(l) => self.declare_list(l),
                _ => {}
            }
        }
        let rule_count = file
            .items
            .iter()
            .filter(|i| matches!(i, ast::Item::Rule(_)))
            .count();
        if rule_count > self.limits.max_rules {
            let span = file
                .items
                .iter()
                .filter_map(|i| match i {
                    ast::Item::Rule(r) => Some(r.keyword),
                    _ => None,
                })
                .nth(self.limits.max_rules)
                .unwrap_or_default();
            let limit = self.limits.max_rules;
            self.report(
                span,
                CheckErrorKind::TooManyRules {
                    count: rule_count,
                    limit,
                },
            );
        }
        let test_count = file
            .items
            .iter()
            .filter(|i| matches!(i, ast::Item::Test(_)))
            .count();
        if test_count > self.limits.max_tests {
            let limit = self.limits.max_tests;
            self.report(
                Span::default(),
                CheckErrorKind::TooManyTests {
                    count: test_count,
                    limit,
                },
            );
        }

        let rule_names = self.rule_names(file, rule_count);
        let mut rules: Vec<RuleModel> = Vec::with_capacity(rule_count);
        let mut tests_ast = Vec::new();
        let mut items = file.items.iter().peekable();
        while let Some(item) = items.next() {
            match item {
                ast::Item::Policy(s, span) => {
                    if name.is_some() {
                        self.report(*span, CheckErrorKind::PolicyTwice);
                    }
                    name = Some(s.value.to_string());
                }
                ast::Item::Mode(m, span) => {
                    let value = match m.text {
                        "before_queue" => Some(Mode::BeforeQueue),
                        "after_queue" => Some(Mode::AfterQueue),
                        _ => {
                            let hint = did_you_mean_within(
                                m.text,
                                ["before_queue", "after_queue"],
                                &mut self.suggest_budget,
                            );
                            let name = m.text.to_string();
                            self.report(
                                m.span,
                                CheckErrorKind::UnknownMode {
                                    name,
                                    hint: hint.map(str::to_owned),
                                },
                            );
                            None
                        }
                    };
                    if mode.is_some() {
                        self.report(*span, CheckErrorKind::ModeTwice);
                    }
                    mode = value.or(mode);
                }
                ast::Item::Admin(s, _) => admins.push(s.value.to_string()),
                ast::Item::Allow(names, _) => {
                    let codes = self.allow_codes(names);
                    let covers_next = matches!(
                        items.peek(),
                        Some(ast::Item::Rule(_) | ast::Item::Default(..) | ast::Item::Allow(..))
                    );
                    if covers_next {
                        pending_allows.extend(codes);
                    } else {
                        file_allows.extend(codes);
                    }
                    continue;
                }
                ast::Item::Rule(r) => {
                    self.context = Context::Rule(&r.name.value);
                    let when = r.when.as_ref().and_then(|c| self.expr(c, 0));
                    let actions = self.actions(&r.actions, r.keyword);
                    rules.push(RuleModel {
                        name: r.name.value.to_string(),
                        keyword: r.keyword,
                        when: when.or(r.when.as_ref().map(|c| Expr {
                            kind: ExprKind::Const(false),
                            span: c.span(),
                        })),
                        actions,
                        allows: std::mem::take(&mut pending_allows),
                    });
                    self.context = Context::File;
                }
                ast::Item::Default(actions, span) => {
                    self.context = Context::Default;
                    let keyword = Span::new(span.start, span.start + "default".len());
                    if default.is_some() {
                        self.report(keyword, CheckErrorKind::DefaultTwice);
                    }
                    let actions = self.actions(actions, keyword);
                    default = Some(DefaultModel {
                        actions,
                        keyword: Some(keyword),
                        allows: std::mem::take(&mut pending_allows),
                    });
                    self.context = Context::File;
                }
                ast::Item::Test(t) => tests_ast.push(t),
                ast::Item::Fact(_) | ast::Item::List(_) => {}
            }
            // Allows directly before something other than a rule/default cover the file.
            file_allows.append(&mut pending_allows);
        }
        file_allows.append(&mut pending_allows);

        let mut tests = Vec::new();
        for t in tests_ast {
            self.context = Context::Test(&t.name.value);
            tests.push(self.test(t, &rule_names));
            self.context = Context::File;
        }
        Some(Model {
            name,
            mode: mode.unwrap_or_default(),
            admins,
            facts: FactTable::clone(&self.facts),
            fact_decls: self.fact_decls.clone(),
            fact_used: self.fact_used.clone(),
            lists: self.list_info.clone(),
            rules,
            default: default.unwrap_or(DefaultModel {
                actions: vec![Action::Pass { reply: None }],
                keyword: None,
                allows: Vec::new(),
            }),
            tests,
            file_allows,
            regex_budget: self.regex_left,
        })
    }

    /// The rules' names, sorted, each with its first rule's name span;
    /// reports every later rule of a name already used. (One sort rather
    /// than a map probed per rule: the same comparisons, half as many.)
    fn rule_names(&mut self, file: &'a ast::File, rule_count: usize) -> RuleNames<'a> {
        // Each name with its first 8 bytes as a big-endian number: names
        // in byte order have non-decreasing numbers, so the sort compares
        // integers and only names sharing their first 8 bytes as strings.
        let mut keyed: Vec<(u64, &'a str, Span)> = Vec::with_capacity(rule_count);
        for item in &file.items {
            if let ast::Item::Rule(r) = item {
                let b = r.name.value.as_bytes();
                let mut head = [0u8; 8];
                for (h, x) in head.iter_mut().zip(b) {
                    *h = *x;
                }
                keyed.push((u64::from_be_bytes(head), &r.name.value, r.name.span));
            }
        }
        // By name, then position: the first of each run is the first use.
        keyed.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.cmp(b.1))
                .then(a.2.start.cmp(&b.2.start))
        });
        let mut names: Vec<(&'a str, Span)> = keyed.iter().map(|&(_, n, s)| (n, s)).collect();
        let mut first: Option<(&str, Span)> = None;
        for &(name, span) in &names {
            match first {
                Some((f, at)) if f == name => {
                    let line = self.lines.line(at.start);
                    let err = CheckErrorKind::DuplicateRule {
                        name: name.to_owned(),
                        first_line: line,
                    };
                    self.report(span, err);
                }
                _ => first = Some((name, span)),
            }
        }
        names.dedup_by(|b, a| a.0 == b.0);
        RuleNames(names)
    }

    fn allow_codes(&mut self, names: &[ast::Name]) -> Vec<Code> {
        let mut codes = Vec::new();
        for n in names {
            match Code::from_name(n.text) {
                Some(code) => codes.push(code),
                None => {
                    let hint = did_you_mean_within(
                        n.text,
                        Code::ALL.iter().map(|c| c.as_str()),
                        &mut self.suggest_budget,
                    );
                    let mut d = Diagnostic::new(
                        Code::UnknownLint,
                        self.src,
                        n.span,
                        format!("unknown lint `{}` in `allow`", n.text),
                    );
                    d.help = Some(match hint {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => {
                            "`policy check --format json` lists the codes of the warnings it gives"
                                .into()
                        }
                    });
                    self.diags.push(d);
                }
            }
        }
        codes
    }

    fn declare_fact(&mut self, f: &ast::FactDecl<'_>) {
        let name = f.name.text;
        if crate::facts::BUILTIN_FACTS.contains(&name) {
            let name = name.to_owned();
            self.report(f.name.span, CheckErrorKind::BuiltinFactRedeclared { name });
            return;
        }
        if let Some(id) = self.facts.lookup(name) {
            let first = self.fact_decls[id.index() - BUILTIN_COUNT];
            let line = self.lines.line(first.start);
            let name = name.to_owned();
            self.report(
                f.name.span,
                CheckErrorKind::FactTwice {
                    name,
                    first_line: line,
                },
            );
            return;
        }
        if self.facts.len() - BUILTIN_COUNT
            >= self
                .limits
                .max_custom_facts
                .min(crate::limits::MAX_FACT_SLOTS - BUILTIN_COUNT)
        {
            let limit = self.limits.max_custom_facts;
            self.report(f.span, CheckErrorKind::TooManyFacts { limit });
            return;
        }
        let mut enum_index = None;
        let ty = match &f.ty {
            ast::TypeExpr::Simple(t) => match t.text {
                "bool" => FactType::Bool,
                "int" => FactType::Int,
                "number" => FactType::Number,
                "string" => FactType::String,
                "ip" => FactType::Ip,
                other => {
                    let hint = did_you_mean_within(
                        other,
                        ["bool", "int", "number", "string", "ip", "enum"],
                        &mut self.suggest_budget,
                    );
                    let name = other.to_string();
                    self.report(
                        t.span,
                        CheckErrorKind::UnknownType {
                            name,
                            hint: hint.map(str::to_owned),
                        },
                    );
                    return;
                }
            },
            ast::TypeExpr::Set(elem, _) => {
                if elem.text != "string" {
                    let elem_name = elem.text.to_string();
                    self.report(
                        elem.span,
                        CheckErrorKind::SetOfNonString { elem: elem_name },
                    );
                    return;
                }
                FactType::StringSet
            }
            ast::TypeExpr::Enum(values, tspan) => {
                let max = self.limits.max_list_items.min(usize::from(u16::MAX));
                if values.len() > max {
                    let count = values.len();
                    self.report(
                        *tspan,
                        CheckErrorKind::TooManyEnumValues { count, limit: max },
                    );
                    return;
                }
                let mut names: Vec<String> = Vec::new();
                let mut index: BTreeMap<String, u16> = BTreeMap::new();
                for v in values {
                    if index.contains_key(v.text) {
                        let value = v.text.to_string();
                        self.report(v.span, CheckErrorKind::EnumValueTwice { value });
                    } else {
                        // Below `max`, which fits in a u16.
                        index.insert(v.text.to_string(), names.len() as u16);
                        names.push(v.text.to_string());
                    }
                }
                enum_index = Some(index);
                FactType::Enum(names)
            }
        };
        std::rc::Rc::make_mut(&mut self.facts).facts.push(FactInfo {
            name: name.to_owned(),
            ty,
        });
        self.fact_decls.push(f.name.span);
        self.fact_used.push(false);
        self.enum_index.push(enum_index);
    }

    fn declare_list(&mut self, l: &'a ast::ListDecl<'a>) {
        let name = l.name.text;
        if let Some((_, first)) = self.lists.get(name) {
            let line = self.lines.line(first.span.start);
            let name = name.to_owned();
            self.report(
                l.name.span,
                CheckErrorKind::ListTwice {
                    name,
                    first_line: line,
                },
            );
            return;
        }
        // One kind of literal per list.
        if let Some(first) = l.values.first() {
            let kind = std::mem::discriminant(&normalize_kind(first));
            for v in &l.values[1..] {
                if std::mem::discriminant(&normalize_kind(v)) != kind {
                    let err = CheckErrorKind::MixedList {
                        name: name.to_owned(),
                        first: describe_value(first),
                        other: describe_value(v),
                    };
                    self.report(v.span(), err);
                    break;
                }
            }
        }
        for v in &l.values {
            if let ast::Value::Ip(text, span) = v {
                let _ = self.parse_net(text, *span);
            }
        }
        self.lists.insert(name, (self.list_info.len(), l));
        self.list_decls.push(l);
        self.list_info.push(ListInfo {
            name: name.to_owned(),
            span: l.name.span,
            used: false,
        });
    }

    fn lookup_fact(&mut self, name: &ast::Name) -> Option<(FactId, Ty)> {
        match self.facts.lookup(name.text) {
            Some(id) => Some((id, Ty(std::rc::Rc::clone(&self.facts), id))),
            None => {
                let help = if self.lists.contains_key(name.text) {
                    format!("`{}` is a list; write `FACT in {}`", name.text, name.text)
                } else {
                    match did_you_mean_within(
                        name.text,
                        self.facts.names(),
                        &mut self.suggest_budget,
                    ) {
                        Some(h) => format!("did you mean `{h}`?"),
                        None => format!(
                            "declare it with `fact {}: TYPE` if the filter supplies it",
                            name.text
                        ),
                    }
                };
                let kind = CheckErrorKind::UnknownFact {
                    name: name.text.to_string(),
                    help,
                };
                self.report(name.span, kind);
                None
            }
        }
    }

    fn mark_used(&mut self, id: FactId) {
        if let Some(u) = id
            .index()
            .checked_sub(BUILTIN_COUNT)
            .and_then(|i| self.fact_used.get_mut(i))
        {
            *u = true;
        }
    }

    fn expr(&mut self, c: &ast::Cond, depth: usize) -> Option<Expr> {
        let span = c.span();
        if depth > self.limits.max_nesting {
            let limit = self.limits.max_nesting;
            self.report(span, CheckErrorKind::NestingTooDeep { limit });
            return None;
        }
        let kind = match c {
            ast::Cond::Or(parts, _) | ast::Cond::And(parts, _) => {
                let mut out = Vec::with_capacity(parts.len());
                let mut ok = true;
                for p in parts {
                    match self.expr(p, depth + 1) {
                        Some(e) => out.push(e),
                        None => ok = false,
                    }
                }
                if !ok {
                    return None;
                }
                if matches!(c, ast::Cond::Or(..)) {
                    ExprKind::Or(out)
                } else {
                    ExprKind::And(out)
                }
            }
            ast::Cond::Not(inner, _) => ExprKind::Not(Box::new(self.expr(inner, depth + 1)?)),
            ast::Cond::Quant(q, qspan, inner, _) => {
                return self.quantified(*q, *qspan, inner, span, depth)
            }
            ast::Cond::Paren(inner, _) => {
                return self
                    .expr(inner, depth + 1)
                    .map(|e| Expr { kind: e.kind, span })
            }
            ast::Cond::Bool(b, _) => ExprKind::Const(*b),
            ast::Cond::Known(name, _) => {
                let (id, _) = self.lookup_fact(name)?;
                self.mark_used(id);
                ExprKind::Known(id)
            }
            ast::Cond::Fact(name) => {
                let (id, ty) = self.lookup_fact(name)?;
                self.mark_used(id);
                if ty != FactType::Bool {
                    let help = match &*ty {
                        FactType::Enum(v) => format!(
                            "compare it: `{} == {}`",
                            name.text,
                            v.first().map_or("VALUE", |s| s.as_str())
                        ),
                        _ => format!("compare it with a value, or test `known {}`", name.text),
                    };
                    let err = CheckErrorKind::NotABool {
                        fact: name.text.to_string(),
                        ty: type_text(&ty),
                        help,
                    };
                    self.report(name.span, err);
                    return None;
                }
                ExprKind::IsTrue(id)
            }
            ast::Cond::Compare(name, op, value, _) => {
                let (id, ty) = self.lookup_fact(name)?;
                self.mark_used(id);
                let op = match op {
                    ast::CmpOp::Eq => Op::Eq,
                    ast::CmpOp::Ne => Op::Ne,
                    ast::CmpOp::Lt => Op::Lt,
                    ast::CmpOp::Le => Op::Le,
                    ast::CmpOp::Gt => Op::Gt,
                    ast::CmpOp::Ge => Op::Ge,
                };
                if !matches!(op, Op::Eq | Op::Ne)
                    && !matches!(*ty, FactType::Int | FactType::Number)
                {
                    let err = CheckErrorKind::OrderOnNonNumber {
                        op: op_str(op),
                        fact: name.text.to_string(),
                        ty: type_text(&ty),
                    };
                    self.report(span, err);
                    return None;
                }
                if let (FactType::Ip, ast::Value::Ip(text, vspan)) = (&*ty, value) {
                    if text.contains('/') {
                        let err = CheckErrorKind::CompareNetwork {
                            op: op_str(op),
                            net: text.to_string(),
                            fact: name.text.to_string(),
                        };
                        self.report(*vspan, err);
                        return None;
                    }
                }
                let lit = self.literal(name.text, &ty, value)?;
                ExprKind::Compare(id, op, lit)
            }
            ast::Cond::In(name, operand, _) => {
                let (id, ty) = self.lookup_fact(name)?;
                self.mark_used(id);
                let values: &[ast::Value] = match operand {
                    ast::Operand::List(values, _) => values,
                    ast::Operand::ListRef(list) => {
                        // A named list is checked and compiled once per fact
                        // it is used with, however often it is used.
                        let key = (self.list_index(list)?, id.0, false);
                        let kind = match self.list_cache.get(&key) {
                            Some(hit) => hit.clone(),
                            None => {
                                let values = self.list_decl(key.0);
                                let kind = self.in_values(name, &ty, values);
                                self.list_cache.insert(key, kind.clone());
                                kind
                            }
                        };
                        return kind.map(|kind| Expr { kind, span });
                    }
                    ast::Operand::Value(v @ ast::Value::Ip(..)) if ty == FactType::Ip => {
                        std::slice::from_ref(v)
                    }
                    ast::Operand::Value(v) => {
                        let err = CheckErrorKind::InNotList {
                            fact: name.text.to_string(),
                            value: describe_value(v),
                        };
                        self.report(v.span(), err);
                        return None;
                    }
                };
                self.in_values(name, &ty, values)?
            }
            ast::Cond::Matches(name, operand, _) => {
                let (id, ty) = self.lookup_fact(name)?;
                self.mark_used(id);
                if !matches!(*ty, FactType::String | FactType::StringSet) {
                    let help = match &*ty {
                        FactType::Enum(_) => format!("compare enum values exactly: `{} == VALUE` or `{} in [...]`", name.text, name.text),
                        FactType::Ip => format!("test networks with `{} in 10.0.0.0/8`", name.text),
                        _ => "`matches` works on string facts such as `virus`, `sender` and `recipient`".into(),
                    };
                    let err = CheckErrorKind::MatchesNonString {
                        fact: name.text.to_string(),
                        ty: type_text(&ty),
                        help,
                    };
                    self.report(span, err);
                    return None;
                }
                match operand {
                    ast::Operand::Value(ast::Value::Regex(re, rspan)) => {
                        ExprKind::Regex(id, Arc::new(self.regex(re, *rspan)?))
                    }
                    ast::Operand::Value(ast::Value::Str(s)) => {
                        ExprKind::Globs(id, Arc::from([self.glob(&s.value, s.span)?]))
                    }
                    ast::Operand::Value(v) => {
                        let value = describe_value(v);
                        self.report(v.span(), CheckErrorKind::MatchesOperand { value });
                        return None;
                    }
                    ast::Operand::List(values, _) => {
                        ExprKind::Globs(id, self.globs(values)?.into())
                    }
                    ast::Operand::ListRef(list) => {
                        let key = (self.list_index(list)?, id.0, true);
                        let kind = match self.list_cache.get(&key) {
                            Some(hit) => hit.clone(),
                            None => {
                                let values = self.list_decl(key.0);
                                let kind =
                                    self.globs(values).map(|g| ExprKind::Globs(id, g.into()));
                                self.list_cache.insert(key, kind.clone());
                                kind
                            }
                        };
                        return kind.map(|kind| Expr { kind, span });
                    }
                }
            }
        };
        Some(Expr { kind, span })
    }

    /// `any C` / `all C`: `C` must test a set fact with `==`, `in` or `matches`.
    fn quantified(
        &mut self,
        q: ast::Quant,
        qspan: Span,
        inner: &ast::Cond,
        span: Span,
        depth: usize,
    ) -> Option<Expr> {
        let word = q.as_str();
        let (name, ne) = match inner {
            ast::Cond::Compare(n, op, ..) => (Some(n), *op == ast::CmpOp::Ne),
            ast::Cond::In(n, ..) | ast::Cond::Matches(n, ..) => (Some(n), false),
            _ => (None, false),
        };
        let Some(name) = name else {
            self.report(qspan, CheckErrorKind::QuantWithoutTest { word });
            return None;
        };
        let mut ok = true;
        if let Some(id) = self.facts.lookup(name.text) {
            let facts = std::rc::Rc::clone(&self.facts);
            let ty = &facts.get(id).ty;
            if *ty != FactType::StringSet {
                let err = CheckErrorKind::QuantNonSet {
                    word,
                    all: matches!(q, ast::Quant::All),
                    fact: name.text.to_string(),
                    ty: describe_type(ty),
                };
                self.report(qspan, err);
                ok = false;
            } else if ne {
                let value = match inner {
                    ast::Cond::Compare(_, _, v, _) => crate::fmt::value_text(v),
                    _ => String::new(),
                };
                let err = CheckErrorKind::QuantNe {
                    word,
                    fact: name.text.to_string(),
                    value,
                };
                self.report(qspan, err);
                ok = false;
            }
        }
        let e = self.expr(inner, depth + 1)?;
        if !ok {
            return None;
        }
        let kind = match q {
            ast::Quant::Any => e.kind,
            ast::Quant::All => ExprKind::All(Box::new(e.kind)),
        };
        Some(Expr { kind, span })
    }

    /// The index of a declared list (marked used), or an error.
    fn list_index(&mut self, list: &ast::Name) -> Option<usize> {
        match self.lists.get(&list.text) {
            Some((i, _)) => {
                let i = *i;
                if let Some(info) = self.list_info.get_mut(i) {
                    info.used = true;
                }
                Some(i)
            }
            None => {
                let hint = did_you_mean_within(
                    list.text,
                    self.lists.keys().copied(),
                    &mut self.suggest_budget,
                );
                let err = CheckErrorKind::UndefinedList {
                    name: list.text.to_string(),
                    hint: hint.map(str::to_owned),
                };
                self.report(list.span, err);
                None
            }
        }
    }

    /// The values of list `i` (see [`Checker::list_index`]).
    fn list_decl(&self, i: usize) -> &'a [ast::Value<'a>] {
        self.list_decls.get(i).map_or(&[], |d| d.values.as_slice())
    }

    /// `FACT in VALUES` once the values are known.
    fn in_values(&mut self, name: &ast::Name, ty: &Ty, values: &[ast::Value]) -> Option<ExprKind> {
        let id = ty.1;
        // One value (`in 10.0.0.0/8`, `in ["x"]`): one allocation, the
        // shared slice's (the loops below would build a `Vec` and copy it).
        match values {
            [ast::Value::Ip(text, vspan)] if *ty == FactType::Ip => {
                let net = self.parse_net(text, *vspan)?;
                return Some(ExprKind::InNets(id, Arc::from([net])));
            }
            [v] if *ty != FactType::Ip => {
                let lit = self.literal(name.text, ty, v)?;
                return Some(ExprKind::InSet(id, Arc::from([lit])));
            }
            _ => {}
        }
        if *ty == FactType::Ip {
            let mut nets = Vec::with_capacity(values.len());
            let mut ok = true;
            for v in values {
                match v {
                    ast::Value::Ip(text, vspan) => match self.parse_net(text, *vspan) {
                        Some(n) => nets.push(n),
                        None => ok = false,
                    },
                    other => {
                        let err = CheckErrorKind::IpListHolds {
                            fact: name.text.to_string(),
                            value: describe_value(other),
                        };
                        self.report(other.span(), err);
                        ok = false;
                    }
                }
            }
            if !ok {
                return None;
            }
            Some(ExprKind::InNets(id, nets.into()))
        } else {
            let mut lits = Vec::with_capacity(values.len());
            let mut ok = true;
            for v in values {
                match self.literal(name.text, ty, v) {
                    Some(l) => lits.push(l),
                    None => ok = false,
                }
            }
            if !ok {
                return None;
            }
            Some(ExprKind::InSet(id, lits.into()))
        }
    }

    fn globs(&mut self, values: &[ast::Value]) -> Option<Vec<Glob>> {
        let mut out = Vec::with_capacity(values.len());
        let mut ok = true;
        for v in values {
            match v {
                ast::Value::Str(s) => match self.glob(&s.value, s.span) {
                    Some(g) => out.push(g),
                    None => ok = false,
                },
                other => {
                    let value = describe_value(other);
                    self.report(other.span(), CheckErrorKind::GlobListHolds { value });
                    ok = false;
                }
            }
        }
        ok.then_some(out)
    }

    fn glob(&mut self, text: &str, span: Span) -> Option<Glob> {
        let g = Glob::new(text);
        if g.stars() > self.limits.max_glob_stars {
            let err = CheckErrorKind::GlobTooManyStars {
                count: g.stars(),
                limit: self.limits.max_glob_stars,
            };
            self.report(span, err);
            return None;
        }
        if g.longest_wild_part() > crate::glob::MAX_WILD_PART {
            let err = CheckErrorKind::GlobWildPart {
                len: g.longest_wild_part(),
                limit: crate::glob::MAX_WILD_PART,
            };
            self.report(span, err);
            return None;
        }
        if text.contains(['[', ']', '{', '}']) {
            // Literal in our globs, but they signal shell-glob habits; accept them.
        }
        Some(g)
    }

    fn regex(&mut self, pattern: &str, span: Span) -> Option<crate::re::Re> {
        use crate::re::{Re, ReError};
        if pattern.is_empty() {
            // `//` finds the empty string in every value: surely a slip.
            self.report(span, CheckErrorKind::EmptyRegex);
            return None;
        }
        let limit = self.limits.max_regex_bytes.min(self.regex_left);
        // With the budget spent, only the syntax is checked (no build).
        let built = if limit == 0 {
            Re::syntax_only(pattern, true).and(Err(ReError::TooBig))
        } else {
            Re::new(pattern, true, limit)
        };
        match built {
            Ok(re) => {
                self.regex_left = self.regex_left.saturating_sub(re.size());
                Some(re)
            }
            Err(ReError::TooBig) if limit < self.limits.max_regex_bytes => {
                // A regex that fails to fit still cost the work of trying.
                self.regex_left = 0;
                let limit = regex_total(self.limits, self.src);
                self.report(span, CheckErrorKind::RegexBudget { limit });
                None
            }
            Err(ReError::TooBig) => {
                self.regex_left = self.regex_left.saturating_sub(limit);
                let limit = self.limits.max_regex_bytes;
                self.report(span, CheckErrorKind::RegexTooBig { limit });
                None
            }
            Err(ReError::Syntax(text)) => {
                let detail = text
                    .lines()
                    .filter(|l| l.starts_with("error:"))
                    .map(|l| l.trim_start_matches("error: "))
                    .next()
                    .unwrap_or(&text)
                    .to_owned();
                let help = if pattern.contains("(?=")
                    || pattern.contains("(?!")
                    || pattern.contains("(?<")
                {
                    Some("look-around is not supported: regexes here run in linear time; split the test into two conditions".to_owned())
                } else if text.contains("backreference") {
                    Some(
                        "back-references are not supported: regexes here run in linear time"
                            .to_owned(),
                    )
                } else {
                    None
                };
                self.report(span, CheckErrorKind::RegexSyntax { detail, help });
                None
            }
        }
    }

    /// Parses an address or network; a single address becomes a host network.
    fn parse_net(&mut self, text: &str, span: Span) -> Option<IpNet> {
        if let Some((addr, _)) = text.split_once('/') {
            match text.parse::<IpNet>() {
                Ok(net) => {
                    if net.trunc() != net {
                        let err = CheckErrorKind::CidrHostBits {
                            text: text.to_owned(),
                            trunc: net.trunc().to_string(),
                        };
                        self.report(span, err);
                        return None;
                    }
                    Some(canonical_net(net))
                }
                Err(_) => {
                    let help = if addr.parse::<IpAddr>().is_ok() {
                        "the prefix length is at most 32 for IPv4 and 128 for IPv6"
                    } else {
                        "write an address and prefix length such as `10.0.0.0/8` or `2001:db8::/32`"
                    };
                    let text = text.to_owned();
                    self.report(span, CheckErrorKind::InvalidCidr { text, help });
                    None
                }
            }
        } else {
            self.parse_ip(text, span).map(IpNet::from)
        }
    }

    fn parse_ip(&mut self, text: &str, span: Span) -> Option<IpAddr> {
        match text.parse::<IpAddr>() {
            Ok(ip) => Some(canonical_ip(ip)),
            Err(_) => {
                let text = text.to_owned();
                self.report(span, CheckErrorKind::InvalidIp { text });
                None
            }
        }
    }

    /// Converts a value to a literal of the fact's type.
    fn literal(&mut self, fact: &str, ty: &Ty, v: &ast::Value) -> Option<Lit> {
        let id = ty.1;
        let ty: &FactType = ty;
        let mismatch = |this: &mut Self, help: Option<String>| {
            let err = CheckErrorKind::LiteralMismatch {
                fact: fact.to_owned(),
                ty: describe_type(ty),
                value: describe_value(v),
                help,
            };
            this.report(v.span(), err);
            None
        };
        match (ty, v) {
            (FactType::Bool, ast::Value::Bool(b, _)) => Some(Lit::Bool(*b)),
            (FactType::Int | FactType::Number, ast::Value::Int(i, _)) => Some(Lit::Int(*i)),
            (FactType::Int | FactType::Number, ast::Value::Float(f, _, _)) => Some(Lit::Float(*f)),
            (FactType::String | FactType::StringSet, ast::Value::Str(s)) => {
                Some(Lit::Str(s.value.to_string().into()))
            }
            (FactType::Ip, ast::Value::Ip(text, span)) => {
                if text.contains('/') {
                    let err = CheckErrorKind::NetworkNotAddress {
                        net: text.to_string(),
                        fact: fact.to_owned(),
                    };
                    self.report(*span, err);
                    return None;
                }
                self.parse_ip(text, *span).map(Lit::Ip)
            }
            (FactType::Enum(values), ast::Value::Word(w)) => {
                let found = match id
                    .index()
                    .checked_sub(BUILTIN_COUNT)
                    .and_then(|i| self.enum_index.get(i))
                {
                    Some(Some(index)) => index.get(w.text).map(|&i| usize::from(i)),
                    // The built-in enums have a handful of values.
                    _ => values.iter().position(|x| *x == w.text),
                };
                match found {
                    Some(i) => Some(Lit::Enum(i as u16)),
                    None => {
                        let hint = did_you_mean_within(
                            w.text,
                            values.iter().map(String::as_str),
                            &mut self.suggest_budget,
                        );
                        let help = match hint {
                            Some(h) => format!("did you mean `{h}`?"),
                            None => format!(
                                "the values of `{fact}` are {}",
                                list_values(values.iter().map(String::as_str), "`")
                            ),
                        };
                        let err = CheckErrorKind::UnknownEnumValue {
                            value: w.text.to_string(),
                            fact: fact.to_owned(),
                            help,
                        };
                        self.report(w.span, err);
                        None
                    }
                }
            }
            (FactType::Enum(values), ast::Value::Str(s)) => {
                let help = if values.iter().any(|v| *v == s.value) {
                    format!(
                        "enum values are bare words: drop the quotes and write `{}`",
                        s.value
                    )
                } else {
                    format!(
                        "enum values are bare words; the values of `{fact}` are {}",
                        list_values(values.iter().map(String::as_str), "")
                    )
                };
                mismatch(self, Some(help))
            }
            (FactType::String | FactType::StringSet, ast::Value::Word(w)) => {
                let help = if self.lists.contains_key(&w.text) {
                    format!(
                        "`{}` is a list: write `{fact} in {}` or `{fact} matches {}`",
                        w.text, w.text, w.text
                    )
                } else {
                    format!("strings are quoted: write \"{}\"", w.text)
                };
                mismatch(self, Some(help))
            }
            (FactType::String | FactType::StringSet, ast::Value::Regex(..)) => mismatch(
                self,
                Some(format!("a regex is tested with `{fact} matches /.../`")),
            ),
            (FactType::Ip, ast::Value::Word(w)) if self.lists.contains_key(&w.text) => mismatch(
                self,
                Some(format!(
                    "`{}` is a list: write `{fact} in {}`",
                    w.text, w.text
                )),
            ),
            (FactType::Bool, _) => mismatch(
                self,
                Some("compare it with `true` or `false`, or use the fact alone".into()),
            ),
            _ => mismatch(self, None),
        }
    }

    fn actions(&mut self, actions: &[ast::Action], at: Span) -> Vec<Action> {
        let mut out = Vec::with_capacity(actions.len());
        // How many dispositions, and the second one's span.
        let mut dispositions = 0usize;
        let mut second = Span::default();
        let mut quarantine: Option<Span> = None;
        for a in actions {
            match a {
                ast::Action::Disposition(kind, reply, span) => {
                    dispositions += 1;
                    if dispositions == 2 {
                        second = *span;
                    }
                    let d = match kind {
                        ast::DispositionKind::Pass => Disposition::Pass,
                        ast::DispositionKind::Discard => Disposition::Discard,
                        ast::DispositionKind::Bounce => Disposition::Bounce,
                        ast::DispositionKind::Reject => Disposition::Reject,
                        ast::DispositionKind::Tempfail => Disposition::Tempfail,
                    };
                    out.push(Action::from_disposition(
                        d,
                        reply.as_ref().map(|r| r.value.to_string()),
                    ));
                }
                ast::Action::Quarantine(bucket, span) => {
                    if quarantine.is_some() {
                        self.report(*span, CheckErrorKind::DuplicateQuarantine);
                    }
                    quarantine = Some(*span);
                    out.push(Action::Quarantine {
                        bucket: bucket
                            .as_ref()
                            .map_or_else(|| "default".to_owned(), |b| b.value.to_string()),
                    });
                }
                ast::Action::Alert(to, _) => out.push(Action::Alert {
                    to: match to {
                        ast::AlertTo::Admin => AlertTarget::Admin,
                        ast::AlertTo::Sender => AlertTarget::Sender,
                        ast::AlertTo::Recipient => AlertTarget::Recipient,
                        ast::AlertTo::Address(a) => AlertTarget::Address(a.value.to_string()),
                    },
                }),
                ast::Action::Tag(text, _) => out.push(Action::Tag {
                    text: text.value.to_string(),
                }),
            }
        }
        match dispositions {
            1 => {}
            0 => self.report(at, CheckErrorKind::NoDisposition),
            count => self.report(second, CheckErrorKind::ManyDispositions { count }),
        }
        out
    }

    /// `expect rule "NAME"` naming no rule: an error (the test could only
    /// ever fail), with the nearest rule name.
    fn unknown_rule(&mut self, name: &ast::StrLit, rules: &RuleNames<'_>) {
        let hint = did_you_mean_within(
            &name.value,
            rules.0.iter().map(|&(n, _)| n),
            &mut self.suggest_budget,
        );
        let help = match hint {
            Some(h) => format!("did you mean {h:?}?"),
            None if rules.0.is_empty() => {
                "the policy has no rules; `expect default` checks that none decides".to_owned()
            }
            None => "name a rule of this policy, or use `expect default`".to_owned(),
        };
        let err = CheckErrorKind::UnknownRule {
            name: name.value.to_string(),
            help,
        };
        self.report(name.span, err);
    }

    fn test(&mut self, t: &ast::Test, rules: &RuleNames<'_>) -> TestModel {
        let mut given = Facts::new();
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        for (name, value) in &t.given {
            if !seen.insert(name.text) {
                let fact = name.text.to_string();
                self.report(name.span, CheckErrorKind::GivenTwice { fact });
            }
            let Some((id, ty)) = self.lookup_fact(name) else {
                continue;
            };
            if let ast::Value::List(values, lspan) = value {
                if ty != FactType::StringSet {
                    let err = CheckErrorKind::ListForOneValue {
                        fact: name.text.to_string(),
                        ty: describe_type(&ty),
                    };
                    self.report(*lspan, err);
                    continue;
                }
                let mut names = Vec::with_capacity(values.len());
                for v in values {
                    if let Some(Lit::Str(s)) = self.literal(name.text, &ty, v) {
                        names.push(String::from(s));
                    }
                }
                given.set(name.text, FactValue::set(names));
                continue;
            }
            let Some(lit) = self.literal(name.text, &ty, value) else {
                continue;
            };
            let fv = match lit {
                Lit::Bool(b) => FactValue::Bool(b),
                Lit::Int(i) if ty == FactType::Number => FactValue::Number(i as f64),
                Lit::Int(i) => FactValue::Int(i),
                Lit::Float(f) if ty == FactType::Int => {
                    let err = CheckErrorKind::NotWhole {
                        fact: name.text.to_string(),
                        value: f,
                    };
                    self.report(value.span(), err);
                    continue;
                }
                Lit::Float(f) => FactValue::Number(f),
                Lit::Str(s) if ty == FactType::StringSet => FactValue::set([String::from(s)]),
                Lit::Str(s) => FactValue::Str(Cow::Owned(s.into())),
                Lit::Ip(ip) => FactValue::Ip(ip),
                Lit::Enum(i) => enum_fact_value(id, &ty, i),
            };
            given.set(name.text, fv);
        }
        let mut expects = Vec::new();
        for e in &t.expects {
            expects.push(match e {
                ast::Expect::Actions(actions, span) => {
                    ExpectModel::Actions(self.actions(actions, *span), *span)
                }
                ast::Expect::Rule(name, span) => {
                    if !rules.contains(&name.value) {
                        self.unknown_rule(name, rules);
                    }
                    ExpectModel::Rule(name.value.to_string(), *span)
                }
                ast::Expect::Default(span) => ExpectModel::Default(*span),
            });
        }
        TestModel {
            name: t.name.value.to_string(),
            span: t.span,
            given,
            expects,
        }
    }
}

/// The rules' names, sorted and distinct.
struct RuleNames<'a>(Vec<(&'a str, Span)>);

impl RuleNames<'_> {
    fn contains(&self, name: &str) -> bool {
        self.0.binary_search_by(|&(n, _)| n.cmp(name)).is_ok()
    }
}

fn op_str(op: Op) -> &'static str {
    match op {
        Op::Eq => "==",
        Op::Ne => "!=",
        Op::Lt => "<",
        Op::Le => "<=",
        Op::Gt => ">",
        Op::Ge => ">=",
    }
}

/// The `limit` error of a policy whose unshared leaves read fact `fact`
/// `passes` times per evaluation ([`Limits::max_scan_passes`]), at
/// the first leaf past the limit (`span`, in rule `rule`).
pub(crate) fn scan_passes_error(
    src: &str,
    span: Span,
    rule: &str,
    fact: &str,
    passes: usize,
    limit: usize,
) -> Diagnostic {
    let kind = CheckErrorKind::ScanPasses {
        fact: fact.to_owned(),
        passes,
        limit,
    };
    rule_diagnostic(src, span, rule, &kind)
}

/// A diagnostic of `kind` at `span`, naming the rule it is in, with help.
fn rule_diagnostic(src: &str, span: Span, rule: &str, kind: &CheckErrorKind) -> Diagnostic {
    let mut d = Diagnostic::new(
        kind.code(),
        src,
        span,
        format!("{}{}", kind.message(), Context::Rule(rule)),
    );
    d.help = kind.help();
    d
}

/// The error for a policy whose worst evaluation takes more than
/// `max_eval_steps` steps, at the rule (its `rule` keyword) that passes it.
pub(crate) fn eval_steps_error(
    src: &str,
    span: Span,
    rule: &str,
    steps: u64,
    limit: u64,
) -> Diagnostic {
    rule_diagnostic(src, span, rule, &CheckErrorKind::EvalSteps { steps, limit })
}

/// The compiled-regex budget of a policy of this source.
pub(crate) fn regex_total(limits: &Limits, src: &str) -> usize {
    limits.max_regex_total_bytes.max(
        src.len()
            .saturating_mul(crate::limits::REGEX_BYTES_PER_SOURCE_BYTE),
    )
}

/// A fact's type, read through the checker's shared fact table.
struct Ty(std::rc::Rc<FactTable>, FactId);

impl PartialEq<FactType> for Ty {
    fn eq(&self, other: &FactType) -> bool {
        **self == *other
    }
}

impl std::ops::Deref for Ty {
    type Target = FactType;
    fn deref(&self) -> &FactType {
        &self.0.get(self.1).ty
    }
}

/// How a type is written, an enum's values cut after a few (see [`list_values`]).
fn type_text(ty: &FactType) -> String {
    match ty {
        FactType::Enum(v) => format!("enum({})", list_values(v.iter().map(String::as_str), "")),
        other => other.describe(),
    }
}

fn describe_type(ty: &FactType) -> String {
    match ty {
        FactType::Bool => "a bool".into(),
        FactType::Int => "an int".into(),
        FactType::Number => "a number".into(),
        FactType::String => "a string".into(),
        FactType::Ip => "an ip".into(),
        FactType::Enum(_) => "an enum".into(),
        FactType::StringSet => "a set of strings".into(),
    }
}

/// Int and float literals are one kind for list homogeneity; IPs and CIDRs too.
fn normalize_kind<'s>(v: &ast::Value<'s>) -> ast::Value<'s> {
    match v {
        ast::Value::Float(_, _, s) => ast::Value::Int(0, *s),
        other => other.clone(),
    }
}

/// An enum literal as the value a test gives.
pub(crate) fn enum_fact_value(id: FactId, ty: &FactType, index: u16) -> FactValue<'static> {
    use crate::facts::{Direction, Scanner};
    let value = match id {
        FactId::DIRECTION => Direction::ALL
            .get(usize::from(index))
            .map(|d| FactValue::Direction(*d)),
        FactId::SCANNER => Scanner::ALL
            .get(usize::from(index))
            .map(|s| FactValue::Scanner(*s)),
        _ => match ty {
            FactType::Enum(values) => values
                .get(usize::from(index))
                .map(|v| FactValue::Str(Cow::Owned(v.clone()))),
            _ => None,
        },
    };
    // The index comes from a checked literal of this very type, so it is in range.
    value.unwrap_or(FactValue::Bool(false))
}

/// A network inside `::ffff:0:0/96` as its IPv4 network.
fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.addr().to_ipv4_mapped() {
                if let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net
}
