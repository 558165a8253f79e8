//! The SCIM User resource (RFC 7643 §4.1, with the enterprise extension of
//! §4.3): which attributes are stored, their canonical names (SCIM names
//! are case-insensitive), turning a request body into a [`ScimRecord`] and
//! a stored record back into the resource, and `attributes` /
//! `excludedAttributes` (RFC 7644 §3.4.2.5).

use serde_json::{Map, Value, json};

use super::{ENTERPRISE_SCHEMA, ScimError, USER_SCHEMA};
use crate::change::ScimRecord;

/// How an attribute is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A string.
    Simple,
    /// One object with the given sub-attributes.
    Complex(&'static [&'static str]),
    /// A list of objects with the given sub-attributes.
    Multi(&'static [&'static str]),
}

const NAME_SUBS: &[&str] = &[
    "formatted",
    "familyName",
    "givenName",
    "middleName",
    "honorificPrefix",
    "honorificSuffix",
];
const PLURAL_SUBS: &[&str] = &["value", "display", "type", "primary"];
const ADDRESS_SUBS: &[&str] = &[
    "formatted",
    "streetAddress",
    "locality",
    "region",
    "postalCode",
    "country",
    "type",
    "primary",
];
const MANAGER_SUBS: &[&str] = &["value", "$ref", "displayName"];

/// The core User attributes a client may write and this host stores,
/// besides `userName`, `externalId` and `active` (which have columns).
pub(crate) const CORE: &[(&str, Kind)] = &[
    ("name", Kind::Complex(NAME_SUBS)),
    ("displayName", Kind::Simple),
    ("nickName", Kind::Simple),
    ("profileUrl", Kind::Simple),
    ("title", Kind::Simple),
    ("userType", Kind::Simple),
    ("preferredLanguage", Kind::Simple),
    ("locale", Kind::Simple),
    ("timezone", Kind::Simple),
    ("emails", Kind::Multi(PLURAL_SUBS)),
    ("phoneNumbers", Kind::Multi(PLURAL_SUBS)),
    ("ims", Kind::Multi(PLURAL_SUBS)),
    ("photos", Kind::Multi(PLURAL_SUBS)),
    ("addresses", Kind::Multi(ADDRESS_SUBS)),
    ("entitlements", Kind::Multi(PLURAL_SUBS)),
    ("roles", Kind::Multi(PLURAL_SUBS)),
    ("x509Certificates", Kind::Multi(PLURAL_SUBS)),
];

/// The enterprise extension's attributes (stored under its URN).
pub(crate) const ENTERPRISE: &[(&str, Kind)] = &[
    ("employeeNumber", Kind::Simple),
    ("costCenter", Kind::Simple),
    ("organization", Kind::Simple),
    ("division", Kind::Simple),
    ("department", Kind::Simple),
    ("manager", Kind::Complex(MANAGER_SUBS)),
];

/// Attributes with columns, answered always or by default.
const COLUMNS: &[&str] = &["id", "userName", "externalId", "active", "meta", "schemas"];

/// The canonical spelling of a core attribute name (stored or a column).
pub(crate) fn canon(name: &str) -> Option<&'static str> {
    COLUMNS
        .iter()
        .copied()
        .chain(CORE.iter().map(|(n, _)| *n))
        .chain(["groups", "password"])
        .find(|n| n.eq_ignore_ascii_case(name))
}

/// The kind of a stored attribute (core, or the enterprise extension's).
pub(crate) fn kind(name: &str, enterprise: bool) -> Option<(&'static str, Kind)> {
    let table = if enterprise { ENTERPRISE } else { CORE };
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .copied()
}

/// The canonical spelling of a sub-attribute.
pub(crate) fn canon_sub(subs: &[&'static str], name: &str) -> Option<&'static str> {
    subs.iter().copied().find(|s| s.eq_ignore_ascii_case(name))
}

/// Whether `name` is the enterprise extension's URN.
pub(crate) fn is_enterprise(name: &str) -> bool {
    name.eq_ignore_ascii_case(ENTERPRISE_SCHEMA)
}

/// A string-or-boolean sub-attribute value, checked.
fn sub_value(attr: &str, sub: &str, v: &Value) -> Result<Value, ScimError> {
    match (sub, v) {
        ("primary", Value::Bool(_)) => Ok(v.clone()),
        ("primary", Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
        ("primary", Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
        ("primary", _) => Err(ScimError::invalid_value(format!(
            "{attr}.primary must be true or false"
        ))),
        (_, Value::String(_)) => Ok(v.clone()),
        _ => Err(ScimError::invalid_value(format!(
            "{attr}.{sub} must be a string"
        ))),
    }
}

/// One object of a complex attribute with canonical sub-attribute names;
/// unknown sub-attributes are dropped, nulls too.
fn complex_value(attr: &str, subs: &[&'static str], v: &Value) -> Result<Value, ScimError> {
    let Value::Object(o) = v else {
        return Err(ScimError::invalid_value(format!(
            "{attr} must be an object"
        )));
    };
    let mut out = Map::new();
    for (k, v) in o {
        if let Some(sub) = canon_sub(subs, k)
            && !v.is_null()
        {
            out.insert(sub.to_owned(), sub_value(attr, sub, v)?);
        }
    }
    Ok(Value::Object(out))
}

/// An attribute's value in canonical shape, `None` for null or empty.
pub(crate) fn value_of(attr: &str, kind: Kind, v: &Value) -> Result<Option<Value>, ScimError> {
    if v.is_null() {
        return Ok(None);
    }
    Ok(match kind {
        Kind::Simple => match v {
            Value::String(s) if s.is_empty() => None,
            Value::String(_) => Some(v.clone()),
            _ => {
                return Err(ScimError::invalid_value(format!("{attr} must be a string")));
            }
        },
        Kind::Complex(subs) => Some(complex_value(attr, subs, v)?)
            .filter(|o| o.as_object().is_some_and(|o| !o.is_empty())),
        Kind::Multi(subs) => {
            let items = match v {
                Value::Array(items) => items.clone(),
                // One value where a list is expected: the list of it.
                Value::Object(_) => vec![v.clone()],
                _ => {
                    return Err(ScimError::invalid_value(format!(
                        "{attr} must be a list of objects"
                    )));
                }
            };
            let items = items
                .iter()
                .map(|i| complex_value(attr, subs, i))
                .collect::<Result<Vec<_>, _>>()?;
            if items
                .iter()
                .filter(|i| i["primary"] == Value::Bool(true))
                .count()
                > 1
            {
                return Err(ScimError::invalid_value(format!(
                    "at most one of {attr} may be primary"
                )));
            }
            Some(Value::Array(items)).filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
        }
    })
}

/// A whole User as a client writes it (POST, PUT, or the document a PATCH
/// produced): the record and `active`. Read-only and unknown attributes
/// are ignored (RFC 7644 §3.3, §3.5.1); `password` is never stored.
pub(crate) fn record_of(body: &Value) -> Result<(ScimRecord, Option<bool>), ScimError> {
    let Value::Object(o) = body else {
        return Err(ScimError::invalid_syntax("a User is a JSON object"));
    };
    let mut user_name = None;
    let mut external_id = None;
    let mut active = None;
    let mut attributes = Map::new();
    for (k, v) in o {
        if is_enterprise(k) {
            let Value::Object(ext) = v else {
                if v.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_value(format!(
                    "{ENTERPRISE_SCHEMA} must be an object"
                )));
            };
            let mut out = Map::new();
            for (ek, ev) in ext {
                if let Some((name, kind)) = kind(ek, true)
                    && let Some(v) = value_of(name, kind, ev)?
                {
                    out.insert(name.to_owned(), v);
                }
            }
            if !out.is_empty() {
                attributes.insert(ENTERPRISE_SCHEMA.to_owned(), Value::Object(out));
            }
            continue;
        }
        match canon(k) {
            Some("userName") => match v {
                Value::String(s) if !s.trim().is_empty() => user_name = Some(s.trim().to_owned()),
                _ => {
                    return Err(ScimError::invalid_value(
                        "userName must be a non-empty string",
                    ));
                }
            },
            Some("externalId") => match v {
                Value::String(s) if !s.is_empty() => external_id = Some(s.clone()),
                Value::String(_) | Value::Null => external_id = None,
                _ => return Err(ScimError::invalid_value("externalId must be a string")),
            },
            Some("active") => active = Some(boolean("active", v)?),
            Some(name) => {
                if let Some((name, kind)) = kind(name, false)
                    && let Some(v) = value_of(name, kind, v)?
                {
                    attributes.insert(name.to_owned(), v);
                }
            }
            None => {}
        }
    }
    let user_name = user_name.ok_or_else(|| ScimError::invalid_value("userName is required"))?;
    if user_name.chars().count() > 256 {
        return Err(ScimError::invalid_value(
            "userName is longer than 256 characters",
        ));
    }
    Ok((
        ScimRecord {
            user_name,
            external_id,
            attributes,
            based_on: None,
        },
        active,
    ))
}

/// `true`/`false`, also as the strings some identity providers send.
pub(crate) fn boolean(attr: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        _ => Err(ScimError::invalid_value(format!(
            "{attr} must be true or false"
        ))),
    }
}

/// The address that names the person: the primary email, else the first,
/// else `userName` when it is an address.
pub(crate) fn address(record: &ScimRecord) -> Option<String> {
    let emails = record.attributes.get("emails").and_then(Value::as_array);
    let email = emails
        .and_then(|e| {
            e.iter()
                .find(|e| e["primary"] == Value::Bool(true))
                .or(e.first())
        })
        .and_then(|e| e["value"].as_str())
        .map(str::to_owned)
        .or_else(|| Some(record.user_name.clone()));
    email
        .map(|e| e.trim().to_owned())
        .filter(|e| looks_like_address(e))
}

fn looks_like_address(e: &str) -> bool {
    match e.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !e.chars().any(|c| c.is_whitespace() || c.is_control())
                && e.len() <= 254
        }
        None => false,
    }
}

/// The name a new person starts with: displayName, name.formatted, given
/// and family names, else the address.
pub(crate) fn display_name(record: &ScimRecord, address: &str) -> String {
    let a = &record.attributes;
    let given_family = a.get("name").map(|n| {
        [n["givenName"].as_str(), n["familyName"].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ")
    });
    a.get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            a.get("name")
                .and_then(|n| n["formatted"].as_str())
                .map(str::to_owned)
        })
        .or(given_family)
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| address.to_owned())
}

/// A stored member as the identity provider sees it.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    /// The user's id (the resource's `id`).
    pub id: String,
    /// The record.
    pub record: ScimRecord,
    /// Not suspended.
    pub active: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub last_modified: i64,
    /// The ETag's counter.
    pub version: i64,
}

impl Stored {
    /// The weak ETag: `W/"<version>"`.
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.version)
    }

    /// The User resource (RFC 7643 §4.1, §3.1 `meta`).
    pub fn to_json(&self, base: &str) -> Value {
        let mut o = Map::new();
        let mut schemas = vec![json!(USER_SCHEMA)];
        if self.record.attributes.contains_key(ENTERPRISE_SCHEMA) {
            schemas.push(json!(ENTERPRISE_SCHEMA));
        }
        o.insert("schemas".into(), Value::Array(schemas));
        o.insert("id".into(), json!(self.id));
        if let Some(x) = &self.record.external_id {
            o.insert("externalId".into(), json!(x));
        }
        o.insert("userName".into(), json!(self.record.user_name));
        for (k, v) in &self.record.attributes {
            o.insert(k.clone(), v.clone());
        }
        o.insert("active".into(), json!(self.active));
        o.insert(
            "meta".into(),
            json!({
                "resourceType": "User",
                "created": rfc3339(self.created),
                "lastModified": rfc3339(self.last_modified),
                "location": format!("{base}/scim/v2/Users/{}", self.id),
                "version": self.etag(),
            }),
        );
        Value::Object(o)
    }

    /// The document a PATCH edits: every writable attribute.
    pub fn document(&self) -> Value {
        let mut o = self.record.attributes.clone();
        o.insert("userName".into(), json!(self.record.user_name));
        if let Some(x) = &self.record.external_id {
            o.insert("externalId".into(), json!(x));
        }
        o.insert("active".into(), json!(self.active));
        Value::Object(o)
    }
}

/// `2026-12-07T19:00:00Z` for unix seconds.
pub(crate) fn rfc3339(at: i64) -> String {
    let mut s = crate::impact::utc(at);
    s.replace_range(10..11, "T");
    s.push('Z');
    s
}

/// Unix seconds of an RFC 3339 date-time (`2026-12-07T19:00:00Z`,
/// fractions and offsets allowed).
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = (s.get(..10)?, s.get(10..)?);
    let midnight = crate::impact::parse_since(date, 0).ok()?;
    let rest = rest.strip_prefix(['T', 't', ' '])?;
    let (hms, mut tail) = (rest.get(..8)?, rest.get(8..)?);
    let parts: Vec<i64> = hms
        .split(':')
        .map(|p| p.parse::<i64>().ok().filter(|_| p.len() == 2))
        .collect::<Option<_>>()?;
    let [h, m, sec] = parts[..] else { return None };
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    if let Some(frac) = tail.strip_prefix('.') {
        let digits = frac.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        tail = &frac[digits..];
    }
    let offset = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.get(..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (oh, om) = tail.get(1..)?.split_once(':')?;
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60)
        }
    };
    Some(midnight + h * 3600 + m * 60 + sec - offset)
}

/// One attribute named in `attributes` or `excludedAttributes`: top-level
/// (core or the extension's) and an optional sub-attribute.
#[derive(Debug, Clone)]
struct Named {
    enterprise: bool,
    attr: String,
    sub: Option<String>,
}

fn named(list: &str) -> Vec<Named> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| {
            let (enterprise, rest) = match strip_urn(p, ENTERPRISE_SCHEMA) {
                Some(r) => (true, r),
                None => (false, strip_urn(p, USER_SCHEMA).unwrap_or(p)),
            };
            let (attr, sub) = match rest.split_once('.') {
                Some((a, s)) => (a.to_owned(), Some(s.to_owned())),
                None => (rest.to_owned(), None),
            };
            Named {
                enterprise,
                attr,
                sub,
            }
        })
        .collect()
}

/// `p` without `urn` and the `:` after it (case-insensitive); the URN
/// alone gives "".
pub(crate) fn strip_urn<'a>(p: &'a str, urn: &str) -> Option<&'a str> {
    let head = p.get(..urn.len())?;
    if !head.eq_ignore_ascii_case(urn) {
        return None;
    }
    let rest = &p[urn.len()..];
    if rest.is_empty() {
        Some("")
    } else {
        rest.strip_prefix(':')
    }
}

fn key_of(o: &Map<String, Value>, name: &str) -> Option<String> {
    o.keys().find(|k| k.eq_ignore_ascii_case(name)).cloned()
}

/// Applies `attributes` (only these, and `id` and `schemas`, which are
/// always returned) and `excludedAttributes` to a resource.
pub(crate) fn project(mut v: Value, attributes: Option<&str>, excluded: Option<&str>) -> Value {
    let Value::Object(full) = &mut v else {
        return v;
    };
    if let Some(list) = attributes.filter(|l| !l.trim().is_empty()) {
        let mut out = Map::new();
        for keep in ["schemas", "id"] {
            if let Some(x) = full.get(keep) {
                out.insert(keep.into(), x.clone());
            }
        }
        for n in named(list) {
            let (src, dst): (Option<&Map<String, Value>>, &mut Map<String, Value>) = if n.enterprise
            {
                let ext = full.get(ENTERPRISE_SCHEMA).and_then(Value::as_object);
                let dst = out
                    .entry(ENTERPRISE_SCHEMA.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(dst) = dst else { continue };
                (ext, dst)
            } else {
                (Some(&*full), &mut out)
            };
            let Some(src) = src else { continue };
            if n.attr.is_empty() {
                continue;
            }
            let Some(key) = key_of(src, &n.attr) else {
                continue;
            };
            let value = &src[&key];
            match &n.sub {
                None => {
                    dst.insert(key, value.clone());
                }
                Some(sub) => {
                    let pick = |o: &Value| -> Option<(String, Value)> {
                        let o = o.as_object()?;
                        let k = key_of(o, sub)?;
                        Some((k.clone(), o[&k].clone()))
                    };
                    match value {
                        Value::Object(_) => {
                            if let Some((k, x)) = pick(value) {
                                let e = dst.entry(key).or_insert_with(|| Value::Object(Map::new()));
                                if let Value::Object(e) = e {
                                    e.insert(k, x);
                                }
                            }
                        }
                        Value::Array(items) => {
                            let picked: Vec<Value> = items
                                .iter()
                                .filter_map(pick)
                                .map(|(k, x)| Value::Object(Map::from_iter([(k, x)])))
                                .collect();
                            if !picked.is_empty() {
                                dst.insert(key, Value::Array(picked));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        if out
            .get(ENTERPRISE_SCHEMA)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            out.remove(ENTERPRISE_SCHEMA);
        }
        *full = out;
    }
    if let Some(list) = excluded {
        for n in named(list) {
            let target = if n.enterprise {
                match full.get_mut(ENTERPRISE_SCHEMA) {
                    Some(Value::Object(o)) => o,
                    _ => continue,
                }
            } else {
                &mut *full
            };
            let Some(key) = key_of(target, &n.attr) else {
                continue;
            };
            if !n.enterprise && (key == "id" || key == "schemas") {
                continue;
            }
            match &n.sub {
                None => {
                    target.remove(&key);
                }
                Some(sub) => match target.get_mut(&key) {
                    Some(Value::Object(o)) => {
                        if let Some(k) = key_of(o, sub) {
                            o.remove(&k);
                        }
                    }
                    Some(Value::Array(items)) => {
                        for i in items {
                            if let Value::Object(o) = i
                                && let Some(k) = key_of(o, sub)
                            {
                                o.remove(&k);
                            }
                        }
                    }
                    _ => {}
                },
            }
        }
    }
    v
}
