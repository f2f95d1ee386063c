//! Static worst-case cost of one CEL expression, computed the way cel-go's
//! `checker.Cost` does with the Kubernetes library estimator and a size estimator that reads
//! the schema's bounds (k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel).
//!
//! cel-go works on a type-checked AST; kube-sim parses with the `cel` crate (same macro
//! expansions) and infers the few types the estimate depends on (string, list, map,
//! object) from the schema and from function results.

use super::decl::{DeclKind, DeclType};
use kube_cel::cel::common::ast::{Expr, IdedExpr, LiteralValue};
use std::collections::HashMap;

const SELECT_AND_IDENT_COST: u64 = 1;
const CONST_COST: u64 = 0;
const LIST_CREATE_BASE_COST: u64 = 10;
const MAP_CREATE_BASE_COST: u64 = 30;
const STRUCT_CREATE_BASE_COST: u64 = 40;
const STRING_TRAVERSAL_COST_FACTOR: f64 = 0.1;
const REGEX_STRING_LENGTH_COST_FACTOR: f64 = 0.25;

/// A `[min, max]` range, used for both sizes and costs as in cel-go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Lower bound.
    pub min: u64,
    /// Upper bound (`u64::MAX` when unknown).
    pub max: u64,
}

impl Range {
    const UNKNOWN: Range = Range {
        min: 0,
        max: u64::MAX,
    };

    fn fixed(v: u64) -> Range {
        Range { min: v, max: v }
    }

    fn add(self, o: Range) -> Range {
        Range {
            min: self.min.saturating_add(o.min),
            max: self.max.saturating_add(o.max),
        }
    }

    fn multiply(self, o: Range) -> Range {
        Range {
            min: self.min.saturating_mul(o.min),
            max: self.max.saturating_mul(o.max),
        }
    }

    fn factor(self, f: f64) -> Range {
        Range {
            min: multiply_by_cost_factor(self.min, f),
            max: multiply_by_cost_factor(self.max, f),
        }
    }

    fn union(self, o: Range) -> Range {
        Range {
            min: self.min.min(o.min),
            max: self.max.max(o.max),
        }
    }
}

fn multiply_by_cost_factor(x: u64, y: f64) -> u64 {
    let xf = x as f64;
    if xf > 0.0 && y > 0.0 && xf > u64::MAX as f64 / y {
        return u64::MAX;
    }
    let ceil = (xf * y).ceil();
    if ceil >= 18_446_744_073_709_551_616.0 {
        u64::MAX
    } else {
        ceil as u64
    }
}

/// The inferred CEL type of an expression, as far as the estimate needs it.
#[derive(Debug, Clone, PartialEq)]
enum Ty {
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    List(Box<Ty>),
    Map(Box<Ty>),
    Object,
    Dyn,
}

impl Ty {
    fn of(decl: &DeclType) -> Ty {
        match &decl.kind {
            DeclKind::Object(_) => Ty::Object,
            DeclKind::List(e) => Ty::List(Box::new(Ty::of(e))),
            DeclKind::Map(e) => Ty::Map(Box::new(Ty::of(e))),
            DeclKind::String => Ty::String,
            DeclKind::Bytes => Ty::Bytes,
            DeclKind::Int => Ty::Int,
            DeclKind::Double => Ty::Double,
            DeclKind::Bool => Ty::Bool,
            DeclKind::Dyn => Ty::Dyn,
            DeclKind::Timestamp => Ty::Timestamp,
            DeclKind::Duration => Ty::Duration,
        }
    }

    fn is_scalar(&self) -> bool {
        matches!(
            self,
            Ty::Bool | Ty::Double | Ty::Duration | Ty::Int | Ty::Timestamp | Ty::Uint
        )
    }

    fn is_text(&self) -> bool {
        matches!(self, Ty::String | Ty::Bytes)
    }

    fn elem(&self) -> Ty {
        match self {
            Ty::List(e) | Ty::Map(e) => (**e).clone(),
            _ => Ty::Dyn,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    List,
    Map,
}

#[derive(Debug, Clone, Copy)]
struct EntrySize {
    container: Container,
    key: Range,
    val: Range,
}

impl EntrySize {
    fn union(self, o: EntrySize) -> EntrySize {
        EntrySize {
            container: self.container,
            key: self.key.union(o.key),
            val: self.val.union(o.val),
        }
    }
}

#[derive(Debug, Clone)]
struct LocalVar {
    path: Vec<String>,
    size: Option<Range>,
    entry: Option<EntrySize>,
    ty: Ty,
}

/// What the estimator knows about an argument: its path in the schema, type and size.
struct Node {
    path: Vec<String>,
    ty: Ty,
    size: Option<Range>,
    literal_int: Option<i64>,
}

/// Estimates one expression against the schema node it is declared on.
pub struct Coster<'a> {
    root: &'a DeclType,
    paths: HashMap<u64, Vec<String>>,
    sizes: HashMap<u64, Range>,
    entries: HashMap<u64, EntrySize>,
    types: HashMap<u64, Ty>,
    locals: HashMap<String, Vec<LocalVar>>,
}

fn is_accumulator(name: &str) -> bool {
    name == "@result" || name == "__result__"
}

impl<'a> Coster<'a> {
    /// An estimator for rules on `root` (bound to `self` and `oldSelf`).
    pub fn new(root: &'a DeclType) -> Self {
        Coster {
            root,
            paths: HashMap::new(),
            sizes: HashMap::new(),
            entries: HashMap::new(),
            types: HashMap::new(),
            locals: HashMap::new(),
        }
    }

    /// The worst-case (and best-case) cost of the expression.
    pub fn cost(&mut self, e: &IdedExpr) -> Range {
        match &e.expr {
            Expr::Literal(lit) => {
                self.types.insert(e.id, literal_ty(lit));
                Range::fixed(CONST_COST)
            }
            Expr::Ident(name) => self.cost_ident(e.id, name),
            Expr::Select(sel) => {
                let operand_cost = self.cost(&sel.operand);
                if sel.test {
                    // Kubernetes keeps `has()` free (PresenceTestHasCost(false)).
                    self.types.insert(e.id, Ty::Bool);
                    return operand_cost;
                }
                let operand_ty = self.ty(&sel.operand);
                let mut sum = operand_cost;
                if matches!(operand_ty, Ty::Object | Ty::Map(_)) {
                    sum = sum.add(Range::fixed(SELECT_AND_IDENT_COST));
                }
                let mut path = self.path_of(&sel.operand);
                path.push(sel.field.clone());
                let ty = match self.resolve(&path) {
                    Some(d) => Ty::of(d),
                    None => operand_ty.elem(),
                };
                self.types.insert(e.id, ty);
                self.paths.insert(e.id, path);
                sum
            }
            Expr::Call(_) => self.cost_call(e),
            Expr::List(list) => {
                let mut sum = Range::fixed(0);
                let mut item = Range {
                    min: u64::MAX,
                    max: 0,
                };
                if list.elements.is_empty() {
                    item.min = 0;
                }
                let mut elem_ty = Ty::Dyn;
                for (i, el) in list.elements.iter().enumerate() {
                    sum = sum.add(self.cost(el));
                    item = item.union(self.size_or_unknown(el));
                    if i == 0 {
                        elem_ty = self.ty(el);
                    }
                }
                self.entries.insert(
                    e.id,
                    EntrySize {
                        container: Container::List,
                        key: Range::fixed(1),
                        val: item,
                    },
                );
                self.types.insert(e.id, Ty::List(Box::new(elem_ty)));
                sum.add(Range::fixed(LIST_CREATE_BASE_COST))
            }
            Expr::Map(map) => {
                let mut sum = Range::fixed(0);
                let empty = Range {
                    min: if map.entries.is_empty() { 0 } else { u64::MAX },
                    max: 0,
                };
                let (mut key, mut val) = (empty, empty);
                for entry in &map.entries {
                    if let kube_cel::cel::common::ast::EntryExpr::MapEntry(m) = &entry.expr {
                        sum = sum.add(self.cost(&m.key)).add(self.cost(&m.value));
                        key = key.union(self.size_or_unknown(&m.key));
                        val = val.union(self.size_or_unknown(&m.value));
                    }
                }
                self.entries.insert(
                    e.id,
                    EntrySize {
                        container: Container::Map,
                        key,
                        val,
                    },
                );
                self.types.insert(e.id, Ty::Map(Box::new(Ty::Dyn)));
                sum.add(Range::fixed(MAP_CREATE_BASE_COST))
            }
            Expr::Struct(st) => {
                let mut sum = Range::fixed(0);
                for entry in &st.entries {
                    if let kube_cel::cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                        sum = sum.add(self.cost(&f.value));
                    }
                }
                self.types.insert(e.id, Ty::Object);
                sum.add(Range::fixed(STRUCT_CREATE_BASE_COST))
            }
            Expr::Comprehension(comp) => {
                if is_bind(comp) {
                    self.cost_bind(e.id, comp)
                } else {
                    self.cost_comprehension(e.id, comp)
                }
            }
            Expr::Unspecified => Range::fixed(0),
        }
    }

    fn cost_ident(&mut self, id: u64, name: &str) -> Range {
        if let Some(var) = self.peek(name).cloned() {
            self.paths.insert(id, var.path);
            self.types.insert(id, var.ty);
        } else {
            let ty = if name == "self" || name == "oldSelf" {
                Ty::of(self.root)
            } else {
                Ty::String
            };
            self.paths.insert(id, vec![name.to_string()]);
            self.types.insert(id, ty);
        }
        Range::fixed(SELECT_AND_IDENT_COST)
    }

    fn cost_comprehension(
        &mut self,
        id: u64,
        comp: &kube_cel::cel::common::ast::ComprehensionExpr,
    ) -> Range {
        let mut sum = self.cost(&comp.iter_range);
        sum = sum.add(self.cost(&comp.accu_init));
        self.push_local(&comp.accu_var, &comp.accu_init);
        let range_ty = self.ty(&comp.iter_range);
        let entry = self.entry_of(&comp.iter_range);
        let container = entry.map(|e| e.container).unwrap_or(match range_ty {
            Ty::List(_) => Container::List,
            _ => Container::Map,
        });
        let range_path = self.path_of(&comp.iter_range);
        let with_sub = |sub: &str| {
            let mut p = range_path.clone();
            p.push(sub.to_string());
            p
        };
        let elem_ty = range_ty.elem();
        match &comp.iter_var2 {
            Some(value_var) => {
                let (key_sub, val_sub, key_ty) = match container {
                    Container::List => ("@indices", "@items", Ty::Int),
                    Container::Map => ("@keys", "@values", Ty::String),
                };
                self.push_var(
                    &comp.iter_var,
                    LocalVar {
                        path: with_sub(key_sub),
                        size: entry.map(|e| e.key),
                        entry: None,
                        ty: key_ty,
                    },
                );
                self.push_var(
                    value_var,
                    LocalVar {
                        path: with_sub(val_sub),
                        size: entry.map(|e| e.val),
                        entry: None,
                        ty: elem_ty,
                    },
                );
            }
            None => {
                let (sub, size, ty) = match container {
                    Container::List => ("@items", entry.map(|e| e.val), elem_ty),
                    Container::Map => ("@keys", entry.map(|e| e.key), Ty::String),
                };
                self.push_var(
                    &comp.iter_var,
                    LocalVar {
                        path: with_sub(sub),
                        size,
                        entry: None,
                        ty,
                    },
                );
            }
        }
        let loop_cost = self.cost(&comp.loop_cond);
        let step_cost = self.cost(&comp.loop_step);
        self.pop(&comp.iter_var);
        if let Some(v) = &comp.iter_var2 {
            self.pop(v);
        }
        sum = sum.add(self.cost(&comp.result));
        self.pop(&comp.accu_var);
        let range_count = self.size_or_unknown(&comp.iter_range);
        sum = sum.add(range_count.multiply(step_cost.add(loop_cost)));
        let result_ty = self.ty(&comp.result);
        self.types.insert(id, result_ty);
        match &comp.accu_init.expr {
            Expr::Literal(_) => {
                if let Some(s) = self.compute_size(&comp.accu_init) {
                    self.sizes.insert(id, s);
                }
            }
            Expr::List(_) | Expr::Map(_) => {
                self.sizes.insert(id, range_count);
                if let Some(step_entry) = self.entry_of(&comp.loop_step) {
                    self.entries.insert(id, step_entry);
                }
            }
            _ => {}
        }
        sum
    }

    fn cost_bind(
        &mut self,
        id: u64,
        comp: &kube_cel::cel::common::ast::ComprehensionExpr,
    ) -> Range {
        let mut sum = self.cost(&comp.iter_range);
        sum = sum.add(self.cost(&comp.accu_init));
        self.push_local(&comp.accu_var, &comp.accu_init);
        sum = sum.add(self.cost(&comp.result));
        self.pop(&comp.accu_var);
        self.copy_sizes(id, &comp.result);
        let ty = self.ty(&comp.result);
        self.types.insert(id, ty);
        sum
    }

    fn cost_call(&mut self, e: &IdedExpr) -> Range {
        let Expr::Call(call) = &e.expr else {
            return Range::fixed(0);
        };
        let function = call.func_name.as_str();
        if function == "dyn" && call.target.is_none() && call.args.len() == 1 {
            let arg_cost = self.cost(&call.args[0]);
            self.copy_sizes(e.id, &call.args[0]);
            let ty = self.ty(&call.args[0]);
            self.types.insert(e.id, ty);
            return Range::fixed(1).add(arg_cost);
        }
        let mut arg_costs = Vec::with_capacity(call.args.len());
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            arg_costs.push(self.cost(arg));
            args.push(self.node(arg));
        }
        let mut sum = Range::fixed(0);
        let target = match &call.target {
            Some(t) => {
                sum = sum.add(self.cost(t));
                Some(self.node(t))
            }
            None => None,
        };
        let (fn_cost, mut result_size) =
            self.function_cost(e.id, function, target.as_ref(), &args, &arg_costs, call);
        if function == "_[_]" && !call.args.is_empty() {
            let container = &call.args[0];
            result_size = self.entry_of(container).map(|en| en.val);
            let sub = match args[0].ty {
                Ty::List(_) => "@items",
                _ => "@values",
            };
            let mut path = self.path_of(container);
            path.push(sub.to_string());
            self.paths.insert(e.id, path);
        }
        let ty = result_ty(function, target.as_ref(), &args);
        self.types.insert(e.id, ty);
        if result_size.is_none() {
            result_size = self.compute_size_by_id(e.id, &e.expr);
        }
        if let Some(s) = result_size {
            self.sizes.insert(e.id, s);
        }
        sum.add(fn_cost)
    }

    #[allow(clippy::too_many_arguments)]
    fn function_cost(
        &mut self,
        id: u64,
        function: &str,
        target: Option<&Node>,
        args: &[Node],
        arg_costs: &[Range],
        call: &kube_cel::cel::common::ast::CallExpr,
    ) -> (Range, Option<Range>) {
        let arg_sum = arg_costs.iter().fold(Range::fixed(0), |acc, c| acc.add(*c));
        if let Some((cost, size)) = self.library_cost(function, target, args) {
            return (cost.add(arg_sum), size);
        }
        let size_of = |n: &Node| n.size.unwrap_or(Range::UNKNOWN);
        match function {
            "startsWith" | "endsWith" if args.len() == 1 => {
                return (
                    size_of(&args[0])
                        .factor(STRING_TRAVERSAL_COST_FACTOR)
                        .add(arg_sum),
                    None,
                );
            }
            "@in" if args.len() == 2 && matches!(args[1].ty, Ty::List(_)) => {
                return (size_of(&args[1]).factor(1.0).add(arg_sum), None);
            }
            "matches" if target.is_some() && args.len() == 1 => {
                let t = target.map(size_of).unwrap_or(Range::UNKNOWN);
                let str_cost = t.add(Range::fixed(1)).factor(STRING_TRAVERSAL_COST_FACTOR);
                let regex_cost = size_of(&args[0]).factor(REGEX_STRING_LENGTH_COST_FACTOR);
                return (str_cost.multiply(regex_cost).add(arg_sum), None);
            }
            "contains" if target.is_some() && args.len() == 1 => {
                let t = target.map(size_of).unwrap_or(Range::UNKNOWN);
                let str_cost = t.factor(STRING_TRAVERSAL_COST_FACTOR);
                let sub_cost = size_of(&args[0]).factor(STRING_TRAVERSAL_COST_FACTOR);
                return (str_cost.multiply(sub_cost).add(arg_sum), None);
            }
            "bytes" if args.len() == 1 && args[0].ty == Ty::String => {
                let sz = size_of(&args[0]);
                return (
                    sz.factor(STRING_TRAVERSAL_COST_FACTOR).add(arg_sum),
                    Some(Range {
                        min: sz.min,
                        max: sz.max.saturating_mul(4),
                    }),
                );
            }
            "string" if args.len() == 1 && args[0].ty == Ty::Bytes => {
                let sz = size_of(&args[0]);
                return (
                    sz.factor(STRING_TRAVERSAL_COST_FACTOR).add(arg_sum),
                    Some(Range {
                        min: sz.min / 4,
                        max: sz.max,
                    }),
                );
            }
            "_&&_" | "_||_" if arg_costs.len() == 2 => {
                let (lhs, rhs) = (arg_costs[0], arg_costs[1]);
                return (
                    Range {
                        min: lhs.min,
                        max: lhs.add(rhs).max,
                    },
                    None,
                );
            }
            "_?_:_" if args.len() == 3 => {
                let size = size_of(&args[1]).union(size_of(&args[2]));
                let (a, b) = (self.entry_of(&call.args[1]), self.entry_of(&call.args[2]));
                if let (Some(a), Some(b)) = (a, b) {
                    self.entries.insert(id, a.union(b));
                }
                return (
                    arg_costs[0].add(arg_costs[1].union(arg_costs[2])),
                    Some(size),
                );
            }
            "_+_"
                if args.len() == 2
                    && (args[0].ty.is_text() || matches!(args[0].ty, Ty::List(_))) =>
            {
                let size = size_of(&args[0]).add(size_of(&args[1]));
                let (a, b) = (self.entry_of(&call.args[0]), self.entry_of(&call.args[1]));
                if let (Some(a), Some(b)) = (a, b) {
                    self.entries.insert(id, a.union(b));
                }
                if matches!(args[0].ty, Ty::List(_)) {
                    return (Range::fixed(1).add(arg_sum), Some(size));
                }
                return (
                    size.factor(STRING_TRAVERSAL_COST_FACTOR).add(arg_sum),
                    Some(size),
                );
            }
            "_==_" | "_!=_" => return (equality_cost(args, size_of).add(arg_sum), None),
            "_<_" | "_>_" | "_<=_" | "_>=_" if args.len() == 2 && args[0].ty.is_text() => {
                return (equality_cost(args, size_of).add(arg_sum), None);
            }
            _ => {}
        }
        (Range::fixed(1).add(arg_sum), None)
    }

    /// Kubernetes' own library estimates (k8s.io/apiserver/pkg/cel/library/cost.go).
    fn library_cost(
        &self,
        function: &str,
        target: Option<&Node>,
        args: &[Node],
    ) -> Option<(Range, Option<Range>)> {
        let size_of = |n: &Node| {
            n.size
                .or_else(|| self.estimate_size(&n.path))
                .unwrap_or(Range::UNKNOWN)
        };
        match function {
            "isSorted" | "sum" | "max" | "min" | "indexOf" | "lastIndexOf" => {
                let t = target?;
                if let Ty::List(elem) = &t.ty {
                    let mut el_cost = Range::fixed(1);
                    if elem.is_text() {
                        let mut path = t.path.clone();
                        if !path.is_empty() {
                            path.push("@items".into());
                        }
                        let el_size = self.estimate_size(&path).unwrap_or(Range::UNKNOWN);
                        el_cost = el_cost.add(el_size.factor(STRING_TRAVERSAL_COST_FACTOR));
                    }
                    Some((size_of(t).multiply(el_cost), None))
                } else {
                    Some((size_of(t).factor(STRING_TRAVERSAL_COST_FACTOR), None))
                }
            }
            "url" if args.len() == 1 => {
                let sz = size_of(&args[0]);
                Some((sz.factor(STRING_TRAVERSAL_COST_FACTOR), Some(sz)))
            }
            "lowerAscii" | "upperAscii" | "substring" | "trim" => {
                let sz = size_of(target?);
                Some((sz.factor(STRING_TRAVERSAL_COST_FACTOR), Some(sz)))
            }
            "replace" if args.len() >= 2 => {
                let sz = size_of(target?);
                Some((sz.factor(2.0 * STRING_TRAVERSAL_COST_FACTOR), None))
            }
            "split" => {
                let sz = size_of(target?);
                let max = args
                    .get(1)
                    .and_then(|a| a.literal_int)
                    .map(|i| u64::try_from(i).unwrap_or(0))
                    .unwrap_or(sz.max);
                Some((
                    sz.factor(2.0 * STRING_TRAVERSAL_COST_FACTOR),
                    Some(Range { min: 0, max }),
                ))
            }
            "find" | "findAll" => {
                let sz = size_of(target?);
                let str_cost = sz.add(Range::fixed(1)).factor(STRING_TRAVERSAL_COST_FACTOR);
                let regex_cost = size_of(args.first()?).factor(REGEX_STRING_LENGTH_COST_FACTOR);
                Some((
                    str_cost.multiply(regex_cost),
                    Some(Range {
                        min: 0,
                        max: sz.max,
                    }),
                ))
            }
            "cidr" | "isIP" | "isCIDR" | "quantity" | "isQuantity" | "semver" | "isSemver"
                if !args.is_empty() =>
            {
                Some((size_of(&args[0]).factor(STRING_TRAVERSAL_COST_FACTOR), None))
            }
            _ => None,
        }
    }

    fn node(&mut self, e: &IdedExpr) -> Node {
        let mut path = self.path_of(e);
        if path.first().is_some_and(|p| is_accumulator(p)) {
            path.clear();
        }
        let literal_int = match &e.expr {
            Expr::Literal(LiteralValue::Int(i)) => Some(*i.inner()),
            _ => None,
        };
        Node {
            path,
            ty: self.ty(e),
            size: self.compute_size(e),
            literal_int,
        }
    }

    fn ty(&self, e: &IdedExpr) -> Ty {
        self.types.get(&e.id).cloned().unwrap_or(Ty::Dyn)
    }

    fn path_of(&self, e: &IdedExpr) -> Vec<String> {
        if let Expr::Ident(name) = &e.expr
            && let Some(v) = self.peek(name)
        {
            return v.path.clone();
        }
        self.paths.get(&e.id).cloned().unwrap_or_default()
    }

    fn entry_of(&self, e: &IdedExpr) -> Option<EntrySize> {
        if let Some(en) = self.entries.get(&e.id) {
            return Some(*en);
        }
        match &e.expr {
            Expr::Ident(name) => self.peek(name).and_then(|v| v.entry),
            _ => None,
        }
    }

    fn peek(&self, name: &str) -> Option<&LocalVar> {
        self.locals.get(name).and_then(|s| s.last())
    }

    fn push_var(&mut self, name: &str, var: LocalVar) {
        self.locals.entry(name.to_string()).or_default().push(var);
    }

    fn push_local(&mut self, name: &str, init: &IdedExpr) {
        let var = LocalVar {
            path: self.path_of(init),
            size: self.compute_size(init),
            entry: self.entry_of(init),
            ty: self.ty(init),
        };
        self.push_var(name, var);
    }

    fn pop(&mut self, name: &str) {
        if let Some(s) = self.locals.get_mut(name) {
            s.pop();
        }
    }

    fn copy_sizes(&mut self, dst: u64, src: &IdedExpr) {
        if let Some(s) = self.compute_size(src) {
            self.sizes.insert(dst, s);
        }
        if let Some(en) = self.entry_of(src) {
            self.entries.insert(dst, en);
        }
    }

    fn size_or_unknown(&mut self, e: &IdedExpr) -> Range {
        self.compute_size(e).unwrap_or(Range::UNKNOWN)
    }

    fn compute_size(&mut self, e: &IdedExpr) -> Option<Range> {
        self.compute_size_by_id(e.id, &e.expr)
    }

    fn compute_size_by_id(&mut self, id: u64, expr: &Expr) -> Option<Range> {
        if let Some(s) = self.sizes.get(&id) {
            return Some(*s);
        }
        if let Some(s) = literal_size(expr) {
            return Some(s);
        }
        let path = match expr {
            Expr::Ident(name) => match self.peek(name) {
                Some(v) => v.path.clone(),
                None => self.paths.get(&id).cloned().unwrap_or_default(),
            },
            _ => self.paths.get(&id).cloned().unwrap_or_default(),
        };
        if let Some(s) = self.estimate_size(&path) {
            self.sizes.insert(id, s);
            return Some(s);
        }
        if self.types.get(&id).is_some_and(Ty::is_scalar) {
            return Some(Range::fixed(1));
        }
        if let Expr::Ident(name) = expr
            && let Some(v) = self.peek(name)
        {
            return v.size;
        }
        None
    }

    /// The schema's bound for the value at `path` (the first element is the variable).
    fn estimate_size(&self, path: &[String]) -> Option<Range> {
        if path.is_empty() {
            return None;
        }
        let mut cur = self.root;
        for seg in &path[1..] {
            match seg.as_str() {
                "@items" | "@values" => cur = cur.elem()?,
                "@keys" => {
                    return match cur.kind {
                        DeclKind::Map(_) => Some(Range { min: 0, max: 0 }),
                        _ => None,
                    };
                }
                name => cur = cur.field(name)?,
            }
        }
        Some(Range {
            min: 0,
            max: cur.max_elements,
        })
    }

    fn resolve(&self, path: &[String]) -> Option<&'a DeclType> {
        let first = path.first()?;
        if first != "self" && first != "oldSelf" {
            return None;
        }
        let mut cur = self.root;
        for seg in &path[1..] {
            cur = match seg.as_str() {
                "@items" | "@values" => cur.elem()?,
                name => cur.field(name)?,
            };
        }
        Some(cur)
    }
}

fn equality_cost(args: &[Node], size_of: impl Fn(&Node) -> Range) -> Range {
    let (Some(l), Some(r)) = (args.first(), args.get(1)) else {
        return Range::fixed(1);
    };
    let smallest_max = size_of(l).max.min(size_of(r).max);
    Range {
        min: u64::from(smallest_max > 0),
        max: smallest_max,
    }
    .factor(STRING_TRAVERSAL_COST_FACTOR)
}

fn literal_ty(lit: &LiteralValue) -> Ty {
    match lit {
        LiteralValue::Boolean(_) => Ty::Bool,
        LiteralValue::Bytes(_) => Ty::Bytes,
        LiteralValue::Double(_) => Ty::Double,
        LiteralValue::Int(_) => Ty::Int,
        LiteralValue::Null => Ty::Null,
        LiteralValue::String(_) => Ty::String,
        LiteralValue::UInt(_) => Ty::Uint,
    }
}

fn literal_size(expr: &Expr) -> Option<Range> {
    let v = match expr {
        Expr::Literal(LiteralValue::String(s)) => s.inner().chars().count() as u64,
        Expr::Literal(LiteralValue::Bytes(b)) => b.inner().len() as u64,
        Expr::Literal(_) => 1,
        Expr::List(l) => l.elements.len() as u64,
        Expr::Map(m) => m.entries.len() as u64,
        _ => return None,
    };
    Some(Range::fixed(v))
}

fn is_bind(comp: &kube_cel::cel::common::ast::ComprehensionExpr) -> bool {
    matches!(&comp.iter_range.expr, Expr::List(l) if l.elements.is_empty())
        && matches!(&comp.loop_cond.expr, Expr::Literal(LiteralValue::Boolean(b)) if !**b)
        && !is_accumulator(&comp.accu_var)
}

/// The result type of a call, for the few distinctions the estimate makes.
fn result_ty(function: &str, target: Option<&Node>, args: &[Node]) -> Ty {
    match function {
        "_==_"
        | "_!=_"
        | "_<_"
        | "_>_"
        | "_<=_"
        | "_>=_"
        | "@in"
        | "!_"
        | "_&&_"
        | "_||_"
        | "@not_strictly_false"
        | "matches"
        | "startsWith"
        | "endsWith"
        | "contains"
        | "isSorted"
        | "isQuantity"
        | "isURL"
        | "isIP"
        | "isCIDR"
        | "isSemver"
        | "exists"
        | "all" => Ty::Bool,
        "size" | "int" | "indexOf" | "lastIndexOf" => Ty::Int,
        "uint" => Ty::Uint,
        "double" => Ty::Double,
        "string" | "lowerAscii" | "upperAscii" | "trim" | "substring" | "replace" | "join"
        | "format" | "find" => Ty::String,
        "bytes" => Ty::Bytes,
        "split" | "findAll" => Ty::List(Box::new(Ty::String)),
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "_[_]" => args.first().map(|a| a.ty.elem()).unwrap_or(Ty::Dyn),
        "_?_:_" => args.get(1).map(|a| a.ty.clone()).unwrap_or(Ty::Dyn),
        "_+_" | "_-_" | "_*_" | "_/_" | "_%_" | "-_" => {
            args.first().map(|a| a.ty.clone()).unwrap_or(Ty::Dyn)
        }
        "sum" | "max" | "min" => target.map(|t| t.ty.elem()).unwrap_or(Ty::Dyn),
        _ => Ty::Dyn,
    }
}
