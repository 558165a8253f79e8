//! The memo: the cells of one batch column whose observed inputs are equal
//! share one Cedar evaluation.
//!
//! Why: a users page asks the same action about 50 members, and most of
//! them look alike to the action's policies (same role, same status, not
//! the actor, owning nothing). What the policies can observe is read from
//! the policies themselves — their JSON form, Cedar's own AST — never from
//! a hand-written list, so a new policy reading a new attribute widens the
//! key by itself.
//!
//! What the key holds, per action:
//! * every *term* the policies read: an attribute path from `principal`,
//!   `action`, `resource` or `context` (`resource.account.admins`,
//!   `context.role_name`), as its value in this cell (or "cannot be read");
//! * for every `a == b`, `a != b`, `a in b` and `t has x` whose operands
//!   are terms or literals, its outcome in this cell.
//!
//! An entity that a term yields is kept in the key only by its type and
//! existence when every use of that term is one of the comparisons above,
//! an `is` test or a further attribute path (itself a term): those are
//! then all that can be observed of it. Any other use (a set or record
//! literal, a method call, a branch of an `if`) keeps the entity itself in
//! the key. Within one batch the entities are fixed, so two cells with
//! equal keys evaluate every policy of the action alike: the same policies
//! hold. The reasons are rendered for each cell from its own facts; an
//! evaluation that errors is never shared (Cedar's messages name
//! entities).

use std::collections::BTreeMap;
use std::rc::Rc;

use cedar_policy::{Entities, EntityTypeName, EntityUid, EvalResult, Policy};
use serde_json::Value as Json;

use crate::world::Attrs;

/// Where a term starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Var {
    Principal,
    Action,
    Resource,
    Context,
}

/// `var.attr.attr…`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Path {
    var: Var,
    attrs: Vec<String>,
}

/// One side of a comparison the key records.
#[derive(Debug, Clone)]
enum Side {
    /// A term, by index.
    Term(usize),
    /// An entity literal of a policy.
    Uid(EntityUid),
}

/// A comparison whose outcome the key records.
#[derive(Debug, Clone)]
enum Observation {
    /// `a == b` (and `a != b`).
    Eq(Side, Side),
    /// `a in b`.
    In(Side, Side),
    /// `t has attr`.
    Has(usize, String),
}

/// What an operand of an expression is.
enum Operand {
    Term(usize),
    Uid(EntityUid),
    /// A literal that is not an entity.
    Value,
    /// Anything else: its own terms were recorded while visiting it.
    Other,
}

/// What one action's policies can observe of a cell.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    /// Terms, with whether the entity a term yields is observed as itself.
    terms: Vec<(Path, bool)>,
    observations: Vec<Observation>,
    /// Every entity a policy names literally.
    literals: Vec<EntityUid>,
}

/// One input of a key, comparable.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Input {
    /// The term cannot be read (missing entity or attribute, not a record).
    Unreadable,
    /// An entity observed only through comparisons: its type, whether it exists.
    Entity(EntityTypeName, bool),
    /// A value as it is.
    Value(Rc<EvalResult>),
    /// A comparison's outcome; `None` where its operands are not entities
    /// (their values, in the key, decide it then).
    Outcome(Option<bool>),
    /// Left out of the key (the test-only switch [`crate::Memo::WithoutInput`]).
    Dropped,
}

/// The cell a key is computed for.
pub(crate) struct Cell<'a> {
    pub entities: &'a Entities,
    /// The world's attribute values, converted once ([`Attrs`]).
    pub attrs: &'a Attrs,
    pub principal: &'a EntityUid,
    pub action: &'a EntityUid,
    pub resource: &'a EntityUid,
    pub context: &'a [(&'static str, EvalResult)],
}

impl Plan {
    /// What the policies can observe, or `None` when a policy's form is not
    /// understood (then the action's cells are evaluated one by one).
    pub(crate) fn derive<'p>(policies: impl IntoIterator<Item = &'p Policy>) -> Option<Plan> {
        let mut plan = Plan::default();
        for policy in policies {
            let json = policy.to_json().ok()?;
            plan.scope(json.get("principal")?, Var::Principal)?;
            plan.scope(json.get("resource")?, Var::Resource)?;
            // The action is the slice's own: constant across its cells.
            for condition in json.get("conditions")?.as_array()? {
                let body = condition.get("body")?;
                plan.visit_raw(body)?;
            }
        }
        Some(plan)
    }

    /// The entities the policies name literally (roots of a lazy world).
    pub(crate) fn literals(&self) -> &[EntityUid] {
        &self.literals
    }

    /// How many inputs a key has.
    pub(crate) fn len(&self) -> usize {
        self.terms.len() + self.observations.len()
    }

    fn term(&mut self, path: Path) -> usize {
        if let Some(i) = self.terms.iter().position(|(p, _)| *p == path) {
            return i;
        }
        self.terms.push((path, false));
        self.terms.len() - 1
    }

    fn keep_identity(&mut self, operand: &Operand) {
        if let Operand::Term(i) = operand {
            self.terms[*i].1 = true;
        }
    }

    fn side(operand: &Operand) -> Option<Side> {
        match operand {
            Operand::Term(i) => Some(Side::Term(*i)),
            Operand::Uid(uid) => Some(Side::Uid(uid.clone())),
            Operand::Value | Operand::Other => None,
        }
    }

    /// `principal` / `resource` scope constraints.
    fn scope(&mut self, scope: &Json, var: Var) -> Option<()> {
        let op = scope.get("op")?.as_str()?;
        let this = Operand::Term(self.term(Path {
            var,
            attrs: Vec::new(),
        }));
        let literals = &mut self.literals;
        let mut entity = |v: Option<&Json>| -> Option<EntityUid> {
            let uid = EntityUid::from_json(v?.get("entity")?.clone()).ok()?;
            literals.push(uid.clone());
            Some(uid)
        };
        match op {
            "All" => {}
            "==" => {
                let uid = entity(Some(scope))?;
                self.compare(this, Operand::Uid(uid), false);
            }
            "in" => {
                let uid = entity(Some(scope))?;
                self.compare(this, Operand::Uid(uid), true);
            }
            "is" => {
                if let Some(inner) = scope.get("in") {
                    let uid = entity(Some(inner))?;
                    self.compare(this, Operand::Uid(uid), true);
                }
            }
            _ => return None,
        }
        Some(())
    }

    /// Records `a == b` or `a in b`.
    fn compare(&mut self, a: Operand, b: Operand, is_in: bool) {
        match (Self::side(&a), Self::side(&b)) {
            (Some(x), Some(y)) => self.observations.push(if is_in {
                Observation::In(x, y)
            } else {
                Observation::Eq(x, y)
            }),
            // A term against a non-entity literal: its value decides.
            (Some(_), None) if matches!(b, Operand::Value) => {}
            (None, Some(_)) if matches!(a, Operand::Value) => {}
            _ => {
                self.keep_identity(&a);
                self.keep_identity(&b);
            }
        }
    }

    /// Visits an expression whose value is used in a way the key does not
    /// model: its terms are kept as themselves.
    fn visit_raw(&mut self, e: &Json) -> Option<()> {
        let operand = self.visit(e)?;
        self.keep_identity(&operand);
        Some(())
    }

    /// Visits an expression, recording its terms and comparisons.
    fn visit(&mut self, e: &Json) -> Option<Operand> {
        let obj = e.as_object()?;
        let (op, arg) = obj.iter().next()?;
        if obj.len() != 1 {
            return None;
        }
        let child = |name: &str| arg.get(name);
        if op == "Value" {
            collect_literals(arg, &mut self.literals)?;
        }
        Some(match op.as_str() {
            "Value" => match arg.get("__entity") {
                Some(_) => match EntityUid::from_json(arg.clone()) {
                    Ok(uid) => Operand::Uid(uid),
                    Err(_) => return None,
                },
                // A set or record literal may hold entities: not modelled.
                None if arg.is_array() || arg.is_object() => Operand::Other,
                None => Operand::Value,
            },
            "Var" => {
                let var = match arg.as_str()? {
                    "principal" => Var::Principal,
                    "action" => Var::Action,
                    "resource" => Var::Resource,
                    "context" => Var::Context,
                    _ => return None,
                };
                Operand::Term(self.term(Path {
                    var,
                    attrs: Vec::new(),
                }))
            }
            "." => {
                let attr = child("attr")?.as_str()?.to_owned();
                match self.path_of(child("left")?) {
                    Some(mut path) => {
                        path.attrs.push(attr);
                        Operand::Term(self.term(path))
                    }
                    None => {
                        self.visit_raw(child("left")?)?;
                        Operand::Other
                    }
                }
            }
            "==" | "!=" | "in" => {
                let a = self.visit(child("left")?)?;
                let b = self.visit(child("right")?)?;
                self.compare(a, b, op == "in");
                Operand::Other
            }
            "has" => {
                let left = self.visit(child("left")?)?;
                match (child("attr")?.as_str(), &left) {
                    (Some(attr), Operand::Term(i)) => {
                        self.observations
                            .push(Observation::Has(*i, attr.to_owned()));
                    }
                    _ => self.keep_identity(&left),
                }
                Operand::Other
            }
            "is" => {
                // The type is part of an entity's input; `in` is a comparison.
                let left = self.visit(child("left")?)?;
                if let Some(inner) = child("in") {
                    let right = self.visit(inner)?;
                    self.compare(left, right, true);
                }
                Operand::Other
            }
            "Slot" | "Unknown" => return None,
            _ => {
                // Every other operator, extension call, set or record: its
                // operands are used as values.
                for_each_expr(arg, &mut |sub| self.visit_raw(sub))?;
                Operand::Other
            }
        })
    }

    /// The path an expression is, without recording it.
    fn path_of(&self, e: &Json) -> Option<Path> {
        let obj = e.as_object()?;
        if let Some(var) = obj.get("Var") {
            let var = match var.as_str()? {
                "principal" => Var::Principal,
                "action" => Var::Action,
                "resource" => Var::Resource,
                "context" => Var::Context,
                _ => return None,
            };
            return Some(Path {
                var,
                attrs: Vec::new(),
            });
        }
        let get = obj.get(".")?;
        let mut path = self.path_of(get.get("left")?)?;
        path.attrs.push(get.get("attr")?.as_str()?.to_owned());
        Some(path)
    }

    /// The key of a cell: equal keys, equal evaluations (within one batch).
    /// `drop` leaves one input out (the soundness test's switch).
    pub(crate) fn key(&self, cell: &Cell<'_>, drop: Option<usize>) -> Vec<Input> {
        let values: Vec<Option<Rc<EvalResult>>> =
            self.terms.iter().map(|(p, _)| read(cell, p)).collect();
        let mut key = Vec::with_capacity(self.len());
        for ((_, identity), value) in self.terms.iter().zip(&values) {
            key.push(match value {
                None => Input::Unreadable,
                Some(v) => match &**v {
                    EvalResult::EntityUid(uid) if !identity => {
                        Input::Entity(uid.type_name().clone(), cell.entities.get(uid).is_some())
                    }
                    _ => Input::Value(Rc::clone(v)),
                },
            });
        }
        let side = |s: &Side| -> Option<EntityUid> {
            match s {
                Side::Term(i) => match values.get(*i)?.as_deref() {
                    Some(EvalResult::EntityUid(uid)) => Some(uid.clone()),
                    _ => None,
                },
                Side::Uid(uid) => Some(uid.clone()),
            }
        };
        for obs in &self.observations {
            key.push(Input::Outcome(match obs {
                Observation::Eq(a, b) => side(a).zip(side(b)).map(|(a, b)| a == b),
                Observation::In(a, b) => match (side(a), b) {
                    (Some(a), b) => in_outcome(cell.entities, &a, b, &values),
                    (None, _) => None,
                },
                Observation::Has(t, attr) => match values.get(*t).and_then(Option::as_deref) {
                    Some(EvalResult::EntityUid(uid)) => Some(
                        cell.entities
                            .get(uid)
                            .is_some_and(|e| e.attr(attr).is_some()),
                    ),
                    Some(EvalResult::Record(r)) => Some(r.get(attr).is_some()),
                    _ => None,
                },
            }));
        }
        if let Some(slot) = drop.and_then(|d| key.get_mut(d)) {
            *slot = Input::Dropped;
        }
        key
    }
}

/// `a in b`, as Cedar decides it for an entity `a`: `b` is `a` or one of its
/// ancestors, or (a set) holds one of those.
fn in_outcome(
    entities: &Entities,
    a: &EntityUid,
    b: &Side,
    values: &[Option<Rc<EvalResult>>],
) -> Option<bool> {
    let within = |b: &EntityUid| a == b || entities.is_ancestor_of(b, a);
    match b {
        Side::Uid(uid) => Some(within(uid)),
        Side::Term(i) => match values.get(*i)?.as_deref()? {
            EvalResult::EntityUid(uid) => Some(within(uid)),
            EvalResult::Set(set) => {
                let mut any = false;
                for v in set.iter() {
                    let EvalResult::EntityUid(uid) = v else {
                        return None;
                    };
                    any |= within(uid);
                }
                Some(any)
            }
            _ => None,
        },
    }
}

/// A term's value in a cell; `None` when it cannot be read.
fn read(cell: &Cell<'_>, path: &Path) -> Option<Rc<EvalResult>> {
    let (mut current, rest) = match path.var {
        Var::Principal | Var::Action | Var::Resource => {
            let uid = match path.var {
                Var::Principal => cell.principal,
                Var::Action => cell.action,
                _ => cell.resource,
            };
            match path.attrs.split_first() {
                None => return Some(Rc::new(EvalResult::EntityUid(uid.clone()))),
                Some((first, rest)) => (cell.attrs.get(cell.entities, uid, first)?, rest),
            }
        }
        Var::Context => {
            let (first, rest) = match path.attrs.split_first() {
                Some(split) => split,
                None => {
                    let record: BTreeMap<String, EvalResult> = cell
                        .context
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect();
                    return Some(Rc::new(EvalResult::String(format!("{record:?}"))));
                }
            };
            let (_, v) = cell.context.iter().find(|(k, _)| k == first)?;
            (Rc::new(v.clone()), rest)
        }
    };
    for attr in rest {
        current = match &*current {
            EvalResult::EntityUid(uid) => cell.attrs.get(cell.entities, uid, attr)?,
            EvalResult::Record(r) => Rc::new(r.get(attr)?.clone()),
            _ => return None,
        };
    }
    Some(current)
}

/// Every `{"__entity": …}` inside a literal value.
fn collect_literals(value: &Json, out: &mut Vec<EntityUid>) -> Option<()> {
    match value {
        Json::Object(map) if map.contains_key("__entity") => {
            out.push(EntityUid::from_json(value.clone()).ok()?);
        }
        Json::Object(map) => {
            for v in map.values() {
                collect_literals(v, out)?;
            }
        }
        Json::Array(items) => {
            for v in items {
                collect_literals(v, out)?;
            }
        }
        _ => {}
    }
    Some(())
}

/// Calls `f` on every expression directly inside `arg` (an operator's
/// argument object, an extension call's argument list, a set's elements or
/// a record's values).
fn for_each_expr(arg: &Json, f: &mut dyn FnMut(&Json) -> Option<()>) -> Option<()> {
    match arg {
        Json::Array(items) => {
            for item in items {
                f(item)?;
            }
        }
        Json::Object(map) => {
            for (name, value) in map {
                match name.as_str() {
                    // `like`'s pattern is not an expression.
                    "pattern" => {}
                    _ => f(value)?,
                }
            }
        }
        _ => return None,
    }
    Some(())
}
