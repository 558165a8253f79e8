//! SCIM filters evaluated on User resources (RFC 7644 §3.4.2.2): every
//! operator, `and`/`or`/`not`, grouping and value paths, on every
//! attribute of the resource. The grammar is `gatehouse-scim-filter`'s; a
//! filter naming an attribute the User schema lacks, or ordering booleans,
//! is an `invalidFilter` error before anything is read.

use gatehouse_scim_filter::{AttrPath, CompValue, CompareOp, Filter};
use serde_json::Value;

use super::resource::{self, Kind};
use super::{ENTERPRISE_SCHEMA, ScimError, USER_SCHEMA};

/// How an attribute compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    /// Strings compared without case.
    Text,
    /// Strings compared exactly (`id`, `externalId`, `meta.location`).
    Exact,
    /// Booleans: `eq`, `ne`, `pr` only.
    Boolean,
    /// Dates (`meta.created`, `meta.lastModified`), compared as instants.
    Date,
}

/// Parses a filter and checks every path in it against the User schema.
pub(crate) fn parse(text: &str) -> Result<Filter, ScimError> {
    let f = gatehouse_scim_filter::parse(text).map_err(|e| {
        ScimError::invalid_filter(format!("the filter `{text}` does not parse: {e}"))
    })?;
    check(&f, None)?;
    Ok(f)
}

/// Checks the paths of `f` (inside the value path of `within`, if any).
fn check(f: &Filter, within: Option<&AttrPath>) -> Result<(), ScimError> {
    match f {
        Filter::Compare { path, op, value } => {
            let t = type_of(path, within)?;
            let ordering = matches!(
                op,
                CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
            );
            let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
            let name = match &path.sub_attr {
                Some(s) => format!("{}.{s}", path.name),
                None => path.name.clone(),
            };
            if t == Type::Boolean
                && (ordering || substring || !matches!(value, CompValue::Bool(_) | CompValue::Null))
            {
                return Err(ScimError::invalid_filter(format!(
                    "`{name}` is boolean: compare it with eq or ne to true or false"
                )));
            }
            if t != Type::Boolean && !matches!(value, CompValue::String(_) | CompValue::Null) {
                return Err(ScimError::invalid_filter(format!(
                    "`{name}` compares strings: quote the value"
                )));
            }
            if substring && !matches!(value, CompValue::String(_)) {
                return Err(ScimError::invalid_filter(format!(
                    "`{}` compares strings: quote the value",
                    op.as_str()
                )));
            }
            Ok(())
        }
        Filter::Present(path) => type_of(path, within).map(|_| ()),
        Filter::And(fs) | Filter::Or(fs) => fs.iter().try_for_each(|f| check(f, within)),
        Filter::Not(f) => check(f, within),
        Filter::ValuePath { path, filter } => {
            if within.is_some() {
                return Err(ScimError::invalid_filter("value paths do not nest"));
            }
            if path.sub_attr.is_some() {
                return Err(ScimError::invalid_filter(format!(
                    "`{}.{}[…]`: a value path names a multi-valued attribute",
                    path.name,
                    path.sub_attr.as_deref().unwrap_or_default()
                )));
            }
            match locate(path)? {
                Located::Stored(_, Kind::Multi(_)) => check(filter, Some(path)),
                _ => Err(ScimError::invalid_filter(format!(
                    "`{}` is not multi-valued: it has no values to select",
                    path.name
                ))),
            }
        }
    }
}

/// Where an attribute path points.
enum Located {
    /// A stored attribute (core, or the extension's when the bool is true).
    Stored(bool, Kind),
    /// A column or `meta` attribute, with its type.
    Column(Type),
}

fn locate(path: &AttrPath) -> Result<Located, ScimError> {
    let unknown =
        || ScimError::invalid_filter(format!("the User schema has no attribute `{}`", path.name));
    let enterprise = match path.uri.as_deref() {
        None => false,
        Some(u) if u.eq_ignore_ascii_case(USER_SCHEMA) => false,
        Some(u) if u.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) => true,
        Some(u) => {
            return Err(ScimError::invalid_filter(format!(
                "the schema `{u}` is not one of this service provider's (see /scim/v2/Schemas)"
            )));
        }
    };
    if let Some((_, kind)) = resource::kind(&path.name, enterprise) {
        return Ok(Located::Stored(enterprise, kind));
    }
    if enterprise {
        return Err(unknown());
    }
    Ok(Located::Column(match resource::canon(&path.name) {
        Some("id" | "externalId") => Type::Exact,
        Some("userName") => Type::Text,
        Some("active") => Type::Boolean,
        Some("meta") => match path.sub_attr.as_deref() {
            Some(s)
                if s.eq_ignore_ascii_case("created") || s.eq_ignore_ascii_case("lastModified") =>
            {
                Type::Date
            }
            Some(s) if s.eq_ignore_ascii_case("location") || s.eq_ignore_ascii_case("version") => {
                Type::Exact
            }
            Some(s) if s.eq_ignore_ascii_case("resourceType") => Type::Text,
            _ => {
                return Err(ScimError::invalid_filter(
                    "filter on meta.created, meta.lastModified, meta.location, meta.version or meta.resourceType",
                ));
            }
        },
        _ => return Err(unknown()),
    }))
}

/// The type of a path (relative to the value path `within`, if any).
fn type_of(path: &AttrPath, within: Option<&AttrPath>) -> Result<Type, ScimError> {
    if let Some(outer) = within {
        // Inside `emails[…]`, names are the sub-attributes.
        let (_, kind) = match locate(outer)? {
            Located::Stored(e, k) => (e, k),
            Located::Column(_) => return Err(ScimError::invalid_filter("bad value path")),
        };
        let Kind::Multi(subs) = kind else {
            return Err(ScimError::invalid_filter("bad value path"));
        };
        let sub = resource::canon_sub(subs, &path.name).ok_or_else(|| {
            ScimError::invalid_filter(format!(
                "`{}` has no sub-attribute `{}`",
                outer.name, path.name
            ))
        })?;
        return Ok(if sub == "primary" {
            Type::Boolean
        } else {
            Type::Text
        });
    }
    match locate(path)? {
        Located::Column(t) => Ok(t),
        Located::Stored(_, kind) => match (kind, path.sub_attr.as_deref()) {
            (Kind::Simple, None) => Ok(Type::Text),
            (Kind::Simple, Some(s)) => Err(ScimError::invalid_filter(format!(
                "`{}` has no sub-attribute `{s}`",
                path.name
            ))),
            (Kind::Complex(subs) | Kind::Multi(subs), sub) => {
                let sub = sub.unwrap_or("value");
                match resource::canon_sub(subs, sub) {
                    Some("primary") => Ok(Type::Boolean),
                    Some(_) => Ok(Type::Text),
                    None => Err(ScimError::invalid_filter(format!(
                        "`{}` has no sub-attribute `{sub}`",
                        path.name
                    ))),
                }
            }
        },
    }
}

/// Whether the resource `r` (as rendered) matches `f`.
pub(crate) fn matches(f: &Filter, r: &Value) -> bool {
    match f {
        Filter::Compare { path, op, value } => {
            let t = type_of(path, None).unwrap_or(Type::Text);
            compare(&values(r, path), *op, value, t)
        }
        Filter::Present(path) => values(r, path).iter().any(present),
        Filter::And(fs) => fs.iter().all(|f| matches(f, r)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, r)),
        Filter::Not(f) => !matches(f, r),
        Filter::ValuePath { path, filter } => lookup(r, path).is_some_and(|v| match v {
            Value::Array(items) => items.iter().any(|i| element_matches(filter, i, path)),
            _ => false,
        }),
    }
}

/// Whether one value of a multi-valued attribute matches a value-path
/// filter (whose paths name sub-attributes).
pub(crate) fn element_matches(f: &Filter, item: &Value, outer: &AttrPath) -> bool {
    match f {
        Filter::Compare { path, op, value } => {
            let t = type_of(path, Some(outer)).unwrap_or(Type::Text);
            compare(&sub_values(item, &path.name), *op, value, t)
        }
        Filter::Present(path) => sub_values(item, &path.name).iter().any(present),
        Filter::And(fs) => fs.iter().all(|f| element_matches(f, item, outer)),
        Filter::Or(fs) => fs.iter().any(|f| element_matches(f, item, outer)),
        Filter::Not(f) => !element_matches(f, item, outer),
        Filter::ValuePath { .. } => false,
    }
}

fn sub_values(item: &Value, name: &str) -> Vec<Value> {
    item.as_object()
        .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| vec![v.clone()])
        .unwrap_or_default()
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

/// The top-level value a path names, if the resource has it.
fn lookup<'v>(r: &'v Value, path: &AttrPath) -> Option<&'v Value> {
    let o = r.as_object()?;
    let scope = match path.uri.as_deref() {
        Some(u) if u.eq_ignore_ascii_case(ENTERPRISE_SCHEMA) => {
            o.get(ENTERPRISE_SCHEMA)?.as_object()?
        }
        _ => o,
    };
    scope
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(&path.name))
        .map(|(_, v)| v)
}

/// Every scalar a path names: a multi-valued attribute gives one per value
/// (its `value` when no sub-attribute is named).
fn values(r: &Value, path: &AttrPath) -> Vec<Value> {
    let Some(v) = lookup(r, path) else {
        return Vec::new();
    };
    let sub = path.sub_attr.as_deref();
    match v {
        Value::Array(items) => items
            .iter()
            .flat_map(|i| sub_values(i, sub.unwrap_or("value")))
            .collect(),
        Value::Object(_) => match sub {
            Some(s) => sub_values(v, s),
            None => vec![v.clone()],
        },
        _ if sub.is_none() => vec![v.clone()],
        _ => Vec::new(),
    }
}

fn compare(found: &[Value], op: CompareOp, want: &CompValue, t: Type) -> bool {
    match op {
        // Not equal: no value equals (an absent attribute is not equal).
        CompareOp::Ne => !found.iter().any(|v| one(v, CompareOp::Eq, want, t)),
        CompareOp::Eq if matches!(want, CompValue::Null) => !found.iter().any(present),
        _ => found.iter().any(|v| one(v, op, want, t)),
    }
}

fn one(v: &Value, op: CompareOp, want: &CompValue, t: Type) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (v, want) {
        (Value::Bool(a), CompValue::Bool(b)) => Some(a.cmp(b)),
        (Value::String(a), CompValue::String(b)) => match t {
            Type::Date => match (resource::parse_rfc3339(a), resource::parse_rfc3339(b)) {
                (Some(x), Some(y)) => Some(x.cmp(&y)),
                _ => None,
            },
            Type::Exact => {
                return text_op(a, b, op);
            }
            _ => {
                return text_op(&a.to_lowercase(), &b.to_lowercase(), op);
            }
        },
        (Value::Number(a), CompValue::Number(b)) => match (a.as_f64(), b.parse::<f64>().ok()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => None,
        },
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        CompareOp::Eq => ord == Ordering::Equal,
        CompareOp::Ne => ord != Ordering::Equal,
        CompareOp::Gt => ord == Ordering::Greater,
        CompareOp::Ge => ord != Ordering::Less,
        CompareOp::Lt => ord == Ordering::Less,
        CompareOp::Le => ord != Ordering::Greater,
        CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
    }
}

fn text_op(a: &str, b: &str, op: CompareOp) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Co => a.contains(b),
        CompareOp::Sw => a.starts_with(b),
        CompareOp::Ew => a.ends_with(b),
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
    }
}
