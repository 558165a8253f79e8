//! SCIM PATCH (RFC 7644 §3.5.2): `add`, `replace` and `remove`, with a
//! path (`title`, `name.givenName`, `emails[type eq "work"].value`, the
//! extension's `urn:…:enterprise:2.0:User:department`) or without one (a
//! value object whose keys may themselves be paths, as some identity
//! providers send), applied to the member's document in order; the result
//! is then checked like a PUT body.

use gatehouse_scim_filter::{AttrPath, CompValue, CompareOp, Filter};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::resource::{self, Kind};
use super::{ENTERPRISE_SCHEMA, ScimError, USER_SCHEMA, query};

/// The PATCH request body (`urn:ietf:params:scim:api:messages:2.0:PatchOp`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PatchBody {
    /// Must name the PatchOp message schema.
    #[serde(default)]
    pub schemas: Vec<String>,
    /// The operations, applied in order.
    #[serde(rename = "Operations", alias = "operations")]
    pub operations: Vec<PatchOp>,
}

/// One operation.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PatchOp {
    /// `add`, `replace` or `remove` (any case).
    pub op: String,
    /// Where; absent means the whole resource (not for `remove`).
    #[serde(default)]
    pub path: Option<String>,
    /// What (absent for `remove`).
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// A parsed path: the attribute (inside the extension or not), an optional
/// value filter and an optional sub-attribute.
#[derive(Debug)]
struct Path {
    enterprise: bool,
    /// Canonical name; empty for the extension object itself.
    attr: String,
    kind: Option<Kind>,
    filter: Option<Filter>,
    sub: Option<String>,
}

const MSG_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// Applies the operations to `doc` (from [`resource::Stored::document`]).
pub(crate) fn apply(doc: &mut Value, body: &PatchBody) -> Result<(), ScimError> {
    if !body
        .schemas
        .iter()
        .any(|s| s.eq_ignore_ascii_case(MSG_SCHEMA))
    {
        return Err(ScimError::invalid_syntax(format!(
            "a PATCH body names the schema {MSG_SCHEMA}"
        )));
    }
    if body.operations.is_empty() {
        return Err(ScimError::invalid_syntax("Operations is empty"));
    }
    for o in &body.operations {
        let op = match o.op.to_ascii_lowercase().as_str() {
            "add" => Op::Add,
            "replace" => Op::Replace,
            "remove" => Op::Remove,
            other => {
                return Err(ScimError::invalid_syntax(format!(
                    "unknown PATCH op `{other}`: use add, replace or remove"
                )));
            }
        };
        let value = o.value.clone().unwrap_or(Value::Null);
        match o.path.as_deref().map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                let path = parse_path(p)?;
                if op != Op::Remove && o.value.is_none() {
                    return Err(ScimError::invalid_value(format!(
                        "`{}` at `{p}` needs a value",
                        o.op
                    )));
                }
                at(doc, op, &path, value)?;
            }
            None => {
                if op == Op::Remove {
                    return Err(ScimError::no_target("remove needs a path"));
                }
                let Value::Object(fields) = value else {
                    return Err(ScimError::invalid_value(
                        "without a path, the value is an object of attributes",
                    ));
                };
                for (k, v) in fields {
                    if resource::is_enterprise(&k) {
                        let Value::Object(ext) = v else {
                            return Err(ScimError::invalid_value(format!(
                                "{ENTERPRISE_SCHEMA} must be an object"
                            )));
                        };
                        for (ek, ev) in ext {
                            at(
                                doc,
                                op,
                                &parse_path(&format!("{ENTERPRISE_SCHEMA}:{ek}"))?,
                                ev,
                            )?;
                        }
                        continue;
                    }
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    at(doc, op, &parse_path(&k)?, v)?;
                }
            }
        }
    }
    Ok(())
}

fn parse_path(p: &str) -> Result<Path, ScimError> {
    let bad = |why: String| ScimError::invalid_path(format!("the path `{p}` {why}"));
    let (enterprise, rest) = match resource::strip_urn(p, ENTERPRISE_SCHEMA) {
        Some(r) => (true, r),
        None => (false, resource::strip_urn(p, USER_SCHEMA).unwrap_or(p)),
    };
    if enterprise && rest.is_empty() {
        return Ok(Path {
            enterprise,
            attr: String::new(),
            kind: None,
            filter: None,
            sub: None,
        });
    }
    // attr, attr.sub, attr[filter], attr[filter].sub
    let (head, filter, sub) = match rest.find('[') {
        Some(open) => {
            let close = rest
                .rfind(']')
                .ok_or_else(|| bad("has no closing `]`".into()))?;
            if close < open {
                return Err(bad("is not attr[filter]".into()));
            }
            let inner = &rest[open + 1..close];
            let filter = gatehouse_scim_filter::parse(inner)
                .map_err(|e| bad(format!("has a filter that does not parse: {e}")))?;
            let after = &rest[close + 1..];
            let sub = match after {
                "" => None,
                s => Some(
                    s.strip_prefix('.')
                        .ok_or_else(|| bad("has text after `]`".into()))?
                        .to_owned(),
                ),
            };
            (&rest[..open], Some(filter), sub)
        }
        None => match rest.split_once('.') {
            Some((a, s)) => (a, None, Some(s.to_owned())),
            None => (rest, None, None),
        },
    };
    if let Some((name, kind)) = resource::kind(head, enterprise) {
        let sub = match (&sub, kind) {
            (None, _) => None,
            (Some(s), Kind::Complex(subs) | Kind::Multi(subs)) => Some(
                resource::canon_sub(subs, s)
                    .ok_or_else(|| bad(format!("names no sub-attribute of {name}")))?
                    .to_owned(),
            ),
            (Some(_), Kind::Simple) => {
                return Err(bad(format!(
                    "names a sub-attribute of {name}, which has none"
                )));
            }
        };
        if filter.is_some() && !matches!(kind, Kind::Multi(_)) {
            return Err(bad(format!("filters {name}, which is not multi-valued")));
        }
        if let Some(f) = &filter {
            // Check the filter's names against the attribute's.
            let outer = AttrPath {
                uri: None,
                name: name.to_owned(),
                sub_attr: None,
            };
            query::parse(&format!("{}[{}]", outer.name, to_text(f))).map_err(|e| {
                bad(format!(
                    "has a filter that does not fit {name}: {}",
                    e.detail
                ))
            })?;
        }
        return Ok(Path {
            enterprise,
            attr: name.to_owned(),
            kind: Some(kind),
            filter,
            sub,
        });
    }
    if enterprise {
        return Err(bad("names no attribute of the enterprise extension".into()));
    }
    match resource::canon(head) {
        Some(name @ ("userName" | "externalId" | "active"))
            if filter.is_none() && sub.is_none() =>
        {
            Ok(Path {
                enterprise,
                attr: name.to_owned(),
                kind: None,
                filter: None,
                sub: None,
            })
        }
        Some(name @ ("id" | "meta" | "schemas" | "groups")) => {
            Err(ScimError::mutability(format!("{name} is read-only")))
        }
        Some("password") => Err(ScimError::mutability(
            "this service provider stores no passwords: people sign in by emailed links",
        )),
        _ => Err(bad("names no attribute of the User schema".into())),
    }
}

/// A filter written back as text (for checking its names once more).
fn to_text(f: &Filter) -> String {
    fn path(p: &AttrPath) -> String {
        let mut s = p.name.clone();
        if let Some(sub) = &p.sub_attr {
            s.push('.');
            s.push_str(sub);
        }
        s
    }
    fn value(v: &CompValue) -> String {
        match v {
            CompValue::Null => "null".into(),
            CompValue::Bool(b) => b.to_string(),
            CompValue::Number(n) => n.clone(),
            CompValue::String(s) => Value::String(s.clone()).to_string(),
        }
    }
    match f {
        Filter::Compare {
            path: p,
            op,
            value: v,
        } => format!("{} {} {}", path(p), op.as_str(), value(v)),
        Filter::Present(p) => format!("{} pr", path(p)),
        Filter::And(fs) => fs
            .iter()
            .map(|f| format!("({})", to_text(f)))
            .collect::<Vec<_>>()
            .join(" and "),
        Filter::Or(fs) => fs
            .iter()
            .map(|f| format!("({})", to_text(f)))
            .collect::<Vec<_>>()
            .join(" or "),
        Filter::Not(f) => format!("not ({})", to_text(f)),
        Filter::ValuePath { path: p, filter } => format!("{}[{}]", path(p), to_text(filter)),
    }
}

fn object(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(o) => o,
        _ => unreachable!("made an object just above"),
    }
}

/// Applies one operation at one path.
fn at(doc: &mut Value, op: Op, path: &Path, value: Value) -> Result<(), ScimError> {
    let root = object(doc);
    let scope: &mut Map<String, Value> = if path.enterprise {
        let ext = root
            .entry(ENTERPRISE_SCHEMA.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if path.attr.is_empty() {
            // The extension object itself.
            match op {
                Op::Remove => {
                    root.remove(ENTERPRISE_SCHEMA);
                }
                Op::Replace => *ext = value,
                Op::Add => merge(object(ext), value)?,
            }
            return Ok(());
        }
        object(ext)
    } else {
        root
    };
    let name = path.attr.clone();
    match path.kind {
        // userName, externalId, active and simple attributes.
        None | Some(Kind::Simple) => {
            if path.sub.is_some() {
                return Err(ScimError::invalid_path(format!(
                    "{name} has no sub-attributes"
                )));
            }
            match op {
                Op::Remove => {
                    if name == "userName" {
                        return Err(ScimError::mutability(
                            "userName is required: it can be replaced, not removed",
                        ));
                    }
                    if name == "active" {
                        return Err(ScimError::invalid_value(
                            "active cannot be removed: replace it with true or false",
                        ));
                    }
                    scope.remove(&name);
                }
                Op::Add | Op::Replace => {
                    scope.insert(name, value);
                }
            }
        }
        Some(Kind::Complex(_)) => match (&path.sub, op) {
            (None, Op::Remove) => {
                scope.remove(&name);
            }
            (None, Op::Replace) if !value.is_object() => {
                scope.insert(name, value);
            }
            // Replacing or adding a complex attribute sets the
            // sub-attributes given and keeps the others (§3.5.2.1, §3.5.2.3).
            (None, _) => {
                let target = scope
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                merge(object(target), value)?;
            }
            (Some(sub), Op::Remove) => {
                if let Some(Value::Object(o)) = scope.get_mut(&name) {
                    o.remove(sub);
                }
            }
            (Some(sub), _) => {
                let target = scope
                    .entry(name)
                    .or_insert_with(|| Value::Object(Map::new()));
                object(target).insert(sub.clone(), value);
            }
        },
        Some(Kind::Multi(_)) => multi(scope, op, path, &name, value)?,
    }
    Ok(())
}

/// Sets the keys of `value` (an object) in `target`.
fn merge(target: &mut Map<String, Value>, value: Value) -> Result<(), ScimError> {
    let Value::Object(v) = value else {
        return Err(ScimError::invalid_value(
            "a complex attribute's value is an object",
        ));
    };
    for (k, x) in v {
        target.insert(k, x);
    }
    Ok(())
}

fn multi(
    scope: &mut Map<String, Value>,
    op: Op,
    path: &Path,
    name: &str,
    value: Value,
) -> Result<(), ScimError> {
    let items = |v: Value| match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let Some(filter) = &path.filter else {
        return match (&path.sub, op) {
            (None, Op::Remove) => {
                scope.remove(name);
                Ok(())
            }
            (None, Op::Replace) => {
                scope.insert(name.to_owned(), Value::Array(items(value)));
                Ok(())
            }
            (None, Op::Add) => {
                let list = scope
                    .entry(name.to_owned())
                    .or_insert_with(|| Value::Array(Vec::new()));
                if !list.is_array() {
                    *list = Value::Array(Vec::new());
                }
                if let Value::Array(list) = list {
                    for item in items(value) {
                        if !list.contains(&item) {
                            list.push(item);
                        }
                    }
                }
                Ok(())
            }
            // `emails.value` without a filter: every value's sub-attribute.
            (Some(sub), op) => {
                if let Some(Value::Array(list)) = scope.get_mut(name) {
                    for item in list.iter_mut() {
                        let o = object(item);
                        if op == Op::Remove {
                            o.remove(sub);
                        } else {
                            o.insert(sub.clone(), value.clone());
                        }
                    }
                } else if op != Op::Remove {
                    scope.insert(
                        name.to_owned(),
                        Value::Array(vec![Value::Object(Map::from_iter([(sub.clone(), value)]))]),
                    );
                }
                Ok(())
            }
        };
    };
    let outer = AttrPath {
        uri: None,
        name: name.to_owned(),
        sub_attr: None,
    };
    let list = scope
        .entry(name.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let Value::Array(list) = list else {
        return Ok(());
    };
    let hits: Vec<usize> = list
        .iter()
        .enumerate()
        .filter(|(_, i)| query::element_matches(filter, i, &outer))
        .map(|(n, _)| n)
        .collect();
    if hits.is_empty() {
        // `emails[type eq "work"].value` with no work address yet: adding
        // or replacing it makes one (what identity providers expect).
        if op != Op::Remove
            && let Filter::Compare {
                path: fp,
                op: CompareOp::Eq,
                value: CompValue::String(s),
            } = filter
        {
            let mut item = Map::new();
            item.insert(fp.name.clone(), Value::String(s.clone()));
            match &path.sub {
                Some(sub) => {
                    item.insert(sub.clone(), value);
                }
                None => merge(&mut item, value)?,
            }
            list.push(Value::Object(item));
            return Ok(());
        }
        return Err(ScimError::no_target(format!(
            "no value of {name} matches the path's filter"
        )));
    }
    match (&path.sub, op) {
        (None, Op::Remove) => {
            let mut n = 0;
            list.retain(|_| {
                let keep = !hits.contains(&n);
                n += 1;
                keep
            });
            if list.is_empty() {
                scope.remove(name);
            }
        }
        (None, _) => {
            for n in hits {
                if let Some(item) = list.get_mut(n) {
                    if op == Op::Replace && !value.is_object() {
                        *item = value.clone();
                    } else {
                        merge(object(item), value.clone())?;
                    }
                }
            }
        }
        (Some(sub), op) => {
            for n in hits {
                if let Some(item) = list.get_mut(n) {
                    let o = object(item);
                    if op == Op::Remove {
                        o.remove(sub);
                    } else {
                        o.insert(sub.clone(), value.clone());
                    }
                }
            }
        }
    }
    Ok(())
}
