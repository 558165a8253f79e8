//! The SCIM 2.0 filter grammar (RFC 7644 §3.4.2.2), parsed into a [`Filter`].
//!
//! ```text
//! FILTER    = attrExp / logExp / valuePath / *1"not" "(" FILTER ")"
//! valuePath = attrPath "[" valFilter "]"
//! attrExp   = (attrPath SP "pr") / (attrPath SP compareOp SP compValue)
//! logExp    = FILTER SP ("and" / "or") SP FILTER
//! compValue = false / null / true / number / string      ; JSON literals
//! compareOp = "eq" / "ne" / "co" / "sw" / "ew" / "gt" / "lt" / "ge" / "le"
//! attrPath  = [URI ":"] ATTRNAME *1subAttr
//! ```
//!
//! Attribute names, operators and the words `and`, `or`, `not`, `true`,
//! `false` and `null` are case-insensitive; `not` takes a parenthesized
//! filter; precedence is `not` over `and` over `or`; parentheses group.
//! Strings are JSON strings, escapes included (`\"`, `\\`, `\u00e9`, surrogate
//! pairs); numbers are JSON numbers, kept as written. A value path
//! (`emails[type eq "work"]`) cannot hold another one.
//!
//! Why a crate of its own: the host's SCIM endpoint parses what any
//! identity provider sends, so the parser is fuzzed (`cargo xtask fuzz`,
//! target `scim_filter`), and a parser without dependencies builds in
//! seconds under a sanitizer. Every input gives a [`Filter`] or a
//! [`FilterError`] with the character position and a message fit for a
//! SCIM `invalidFilter` error's `detail`; nothing panics, and nesting is
//! bounded ([`MAX_DEPTH`]) so no input exhausts the stack.
//!
//! ```
//! use gatehouse_scim_filter::{parse, CompValue, CompareOp, Filter};
//!
//! let f = parse(r#"userName eq "bjensen@example.com""#).unwrap();
//! let Filter::Compare { path, op, value } = &f else { unreachable!() };
//! assert!(path.is("urn:ietf:params:scim:schemas:core:2.0:User", "userName"));
//! assert_eq!((*op, value), (CompareOp::Eq, &CompValue::String("bjensen@example.com".into())));
//!
//! let e = parse(r#"userName eq bjensen"#).unwrap_err();
//! assert_eq!(e.position, 13);
//! assert_eq!(e.to_string(), "at character 13: expected a value (a string in double quotes, a number, true, false or null) after `eq`, found `bjensen`");
//! ```

use std::fmt;

/// How deep parentheses, `not (…)` and value paths may nest. Real filters
/// nest two or three levels; the bound keeps the parser's recursion, and
/// anything that walks the tree, far from the end of any stack.
pub const MAX_DEPTH: usize = 32;

/// A parsed filter. `and` and `or` chains are flat (`a and b and c` is one
/// [`Filter::And`] of three), so only parentheses, `not` and value paths
/// nest, at most [`MAX_DEPTH`] deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// `attrPath op value`.
    Compare {
        /// The attribute compared.
        path: AttrPath,
        /// How.
        op: CompareOp,
        /// With what.
        value: CompValue,
    },
    /// `attrPath pr`: the attribute has a value.
    Present(AttrPath),
    /// Every one holds (two or more).
    And(Vec<Filter>),
    /// Any one holds (two or more).
    Or(Vec<Filter>),
    /// `not (filter)`.
    Not(Box<Filter>),
    /// `attrPath[filter]`: some value of the multi-valued attribute matches
    /// the filter, whose paths name its sub-attributes.
    ValuePath {
        /// The multi-valued attribute.
        path: AttrPath,
        /// What one of its values must match.
        filter: Box<Filter>,
    },
}

/// `[URI ":"] ATTRNAME ["." subAttr]`, as written (names are compared
/// case-insensitively: see [`AttrPath::is`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The schema URN prefix, e.g. `urn:ietf:params:scim:schemas:core:2.0:User`.
    pub uri: Option<String>,
    /// The attribute name, e.g. `userName` or `emails`.
    pub name: String,
    /// The sub-attribute, e.g. `givenName` in `name.givenName`.
    pub sub_attr: Option<String>,
}

impl AttrPath {
    /// True when this path names the attribute `name` (no sub-attribute)
    /// of the resource whose core schema is `schema`: written bare or with
    /// that schema's URN, case-insensitively.
    pub fn is(&self, schema: &str, name: &str) -> bool {
        self.sub_attr.is_none()
            && self.name.eq_ignore_ascii_case(name)
            && self
                .uri
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(schema))
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `eq`: equal.
    Eq,
    /// `ne`: not equal.
    Ne,
    /// `co`: contains.
    Co,
    /// `sw`: starts with.
    Sw,
    /// `ew`: ends with.
    Ew,
    /// `gt`: greater than.
    Gt,
    /// `ge`: greater than or equal.
    Ge,
    /// `lt`: less than.
    Lt,
    /// `le`: less than or equal.
    Le,
}

impl CompareOp {
    /// Every operator, in the RFC's order.
    pub const ALL: [CompareOp; 9] = [
        CompareOp::Eq,
        CompareOp::Ne,
        CompareOp::Co,
        CompareOp::Sw,
        CompareOp::Ew,
        CompareOp::Gt,
        CompareOp::Lt,
        CompareOp::Ge,
        CompareOp::Le,
    ];

    /// The operator's word, lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn from_word(word: &str) -> Option<CompareOp> {
        CompareOp::ALL
            .into_iter()
            .find(|op| word.eq_ignore_ascii_case(op.as_str()))
    }
}

/// A comparison's value: a JSON literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A JSON number, exactly as written (`-1.5e3`).
    Number(String),
    /// A JSON string, its escapes decoded.
    String(String),
}

/// Why a filter does not parse: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset of the problem in the filter (its length: at the end).
    pub offset: usize,
    /// The same place in characters, counted from 1.
    pub position: usize,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at character {}: {}", self.position, self.message)
    }
}

impl std::error::Error for FilterError {}

/// Parses a SCIM filter.
pub fn parse(filter: &str) -> Result<Filter, FilterError> {
    let tokens = lex(filter)?;
    let mut parser = Parser {
        src: filter,
        tokens,
        next: 0,
    };
    if parser.tokens.is_empty() {
        return Err(parser.error(filter.len(), "the filter is empty".into()));
    }
    let parsed = parser.or(0, false, None)?;
    match parser.peek() {
        None => Ok(parsed),
        Some(t) => Err(parser.error(
            t.at,
            match &t.tok {
                Tok::RParen => "`)` closes no `(`".into(),
                Tok::RBracket => "`]` closes no `[`".into(),
                other => format!(
                    "expected `and`, `or` or the end of the filter, found {}",
                    other.shown()
                ),
            },
        )),
    }
}

// ------------------------------------------------------------------- lexer

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A JSON string, decoded.
    Str(String),
    /// A run of name, number and URN characters: an attribute path, an
    /// operator, a keyword or a number.
    Word(&'a str),
}

impl Tok<'_> {
    fn shown(&self) -> String {
        match self {
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Str(_) => "a string".into(),
            Tok::Word(w) => format!("`{w}`"),
        }
    }
}

#[derive(Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    /// Byte offset of its first character.
    at: usize,
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '$' | '+')
}

fn position(src: &str, offset: usize) -> usize {
    src.get(..offset).map_or(offset, |s| s.chars().count()) + 1
}

fn lex_error(src: &str, offset: usize, message: String) -> FilterError {
    FilterError {
        offset,
        position: position(src, offset),
        message,
    }
}

fn lex(src: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        let tok = match c {
            c if c.is_ascii_whitespace() => {
                chars.next();
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '"' => {
                chars.next();
                out.push(Token {
                    tok: Tok::Str(string(src, at, &mut chars)?),
                    at,
                });
                continue;
            }
            c if is_word_char(c) => {
                let mut end = at;
                while let Some(&(i, c)) = chars.peek() {
                    if !is_word_char(c) {
                        break;
                    }
                    end = i + c.len_utf8();
                    chars.next();
                }
                out.push(Token {
                    tok: Tok::Word(&src[at..end]),
                    at,
                });
                continue;
            }
            other => {
                return Err(lex_error(
                    src,
                    at,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        chars.next();
        out.push(Token { tok, at });
    }
    Ok(out)
}

/// The rest of a JSON string whose opening quote, at `start`, was read.
fn string(
    src: &str,
    start: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<String, FilterError> {
    let mut out = String::new();
    loop {
        let Some((at, c)) = chars.next() else {
            return Err(lex_error(
                src,
                start,
                "this string has no closing `\"`".into(),
            ));
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let Some((_, e)) = chars.next() else {
                    return Err(lex_error(
                        src,
                        start,
                        "this string has no closing `\"`".into(),
                    ));
                };
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    '/' => out.push('/'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => out.push(unicode_escape(src, at, chars)?),
                    other => {
                        return Err(lex_error(
                            src,
                            at,
                            format!(
                                "`\\{other}` is not a JSON escape: use \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX"
                            ),
                        ));
                    }
                }
            }
            c if u32::from(c) < 0x20 => {
                return Err(lex_error(
                    src,
                    at,
                    format!(
                        "a control character in a string must be escaped (\\u{:04x})",
                        u32::from(c)
                    ),
                ));
            }
            c => out.push(c),
        }
    }
}

fn hex4(
    src: &str,
    at: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<u32, FilterError> {
    let mut value = 0;
    for _ in 0..4 {
        let digit = chars.next().and_then(|(_, c)| c.to_digit(16));
        let Some(digit) = digit else {
            return Err(lex_error(
                src,
                at,
                "`\\u` takes four hexadecimal digits".into(),
            ));
        };
        value = value * 16 + digit;
    }
    Ok(value)
}

/// A `\uXXXX` escape (its backslash at `at`), a surrogate pair included.
fn unicode_escape(
    src: &str,
    at: usize,
    chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
) -> Result<char, FilterError> {
    let lone = || {
        lex_error(
            src,
            at,
            "a lone UTF-16 surrogate: `\\uD800`–`\\uDBFF` must be followed by `\\uDC00`–`\\uDFFF`"
                .into(),
        )
    };
    let high = hex4(src, at, chars)?;
    let code = match high {
        0xD800..=0xDBFF => {
            if chars.next().map(|(_, c)| c) != Some('\\')
                || chars.next().map(|(_, c)| c) != Some('u')
            {
                return Err(lone());
            }
            let low = hex4(src, at, chars)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(lone());
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        }
        0xDC00..=0xDFFF => return Err(lone()),
        other => other,
    };
    char::from_u32(code).ok_or_else(lone)
}

// ------------------------------------------------------------------ parser

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token<'a>>,
    next: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&Token<'a>> {
        self.tokens.get(self.next)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token<'a>> {
        self.tokens.get(self.next + ahead)
    }

    fn error(&self, offset: usize, message: String) -> FilterError {
        lex_error(self.src, offset, message)
    }

    /// The error for a missing token, at the next token or at the end.
    fn expected(&self, what: &str, after: &str) -> FilterError {
        match self.peek() {
            Some(t) => self.error(
                t.at,
                format!("expected {what} after {after}, found {}", t.tok.shown()),
            ),
            None => self.error(
                self.src.len(),
                format!("expected {what} after {after}, found the end of the filter"),
            ),
        }
    }

    /// Consumes the next token when it is the keyword `kw`.
    fn keyword(&mut self, kw: &str) -> bool {
        let found = matches!(self.peek(), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw));
        if found {
            self.next += 1;
        }
        found
    }

    fn deeper(&self, depth: usize, at: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(
                at,
                format!(
                    "the filter nests deeper than {MAX_DEPTH} levels of parentheses and value paths"
                ),
            ));
        }
        Ok(depth + 1)
    }

    /// `and-expression ("or" and-expression)*`; `after` names what comes
    /// before it, for errors (`None`: the start of the filter).
    fn or(
        &mut self,
        depth: usize,
        in_value: bool,
        after: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let mut items = vec![self.and(depth, in_value, after)?];
        while self.keyword("or") {
            items.push(self.and(depth, in_value, Some("`or`"))?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Filter::Or(items)
        })
    }

    /// `unary ("and" unary)*`.
    fn and(
        &mut self,
        depth: usize,
        in_value: bool,
        after: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let mut items = vec![self.unary(depth, in_value, after)?];
        while self.keyword("and") {
            items.push(self.unary(depth, in_value, Some("`and`"))?);
        }
        Ok(if items.len() == 1 {
            items.swap_remove(0)
        } else {
            Filter::And(items)
        })
    }

    /// `"not" "(" filter ")"`, `"(" filter ")"` or an attribute expression.
    fn unary(
        &mut self,
        depth: usize,
        in_value: bool,
        after: Option<&str>,
    ) -> Result<Filter, FilterError> {
        let what = "a filter (an attribute path, `not (` or `(`)";
        let Some(token) = self.peek() else {
            return Err(self.expected(what, after.unwrap_or("the start")));
        };
        let at = token.at;
        match &token.tok {
            Tok::LParen => {
                self.next += 1;
                let inner = self.or(self.deeper(depth, at)?, in_value, Some("`(`"))?;
                self.close(Tok::RParen, at)?;
                Ok(inner)
            }
            Tok::Word(w)
                if w.eq_ignore_ascii_case("not")
                    && matches!(
                        self.peek_at(1),
                        Some(Token {
                            tok: Tok::LParen,
                            ..
                        })
                    ) =>
            {
                self.next += 2;
                let inner = self.or(self.deeper(depth, at)?, in_value, Some("`not (`"))?;
                self.close(Tok::RParen, at)?;
                Ok(Filter::Not(Box::new(inner)))
            }
            Tok::Word(w) => {
                let word = *w;
                self.next += 1;
                self.attribute_expression(word, at, depth, in_value)
            }
            other => {
                let message = match after {
                    Some(after) => {
                        format!("expected {what} after {after}, found {}", other.shown())
                    }
                    None => format!("expected {what}, found {}", other.shown()),
                };
                Err(self.error(at, message))
            }
        }
    }

    /// Consumes `close`, which ends what was opened at `opened`.
    fn close(&mut self, close: Tok<'_>, opened: usize) -> Result<(), FilterError> {
        if self.peek().map(|t| &t.tok) == Some(&close) {
            self.next += 1;
            return Ok(());
        }
        let shown = close.shown();
        let opened_at = position(self.src, opened);
        Err(match self.peek() {
            Some(t) => self.error(
                t.at,
                format!(
                    "expected `and`, `or` or {shown} to close what opens at character {opened_at}, found {}",
                    t.tok.shown()
                ),
            ),
            None => self.error(
                self.src.len(),
                format!("{shown} missing: what opens at character {opened_at} is not closed"),
            ),
        })
    }

    /// What follows an attribute path: `[filter]`, `pr` or `op value`.
    fn attribute_expression(
        &mut self,
        word: &'a str,
        at: usize,
        depth: usize,
        in_value: bool,
    ) -> Result<Filter, FilterError> {
        let path = self.path(word, at)?;
        let Some(next) = self.peek() else {
            return Err(self.expected(
                "an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr)",
                &format!("`{word}`"),
            ));
        };
        let next_at = next.at;
        match &next.tok {
            Tok::LBracket if in_value => Err(self.error(
                next_at,
                "a value path cannot hold another value path".into(),
            )),
            Tok::LBracket => {
                self.next += 1;
                let inner = self.or(self.deeper(depth, next_at)?, true, Some("`[`"))?;
                self.close(Tok::RBracket, next_at)?;
                Ok(Filter::ValuePath {
                    path,
                    filter: Box::new(inner),
                })
            }
            Tok::Word(op) if op.eq_ignore_ascii_case("pr") => {
                self.next += 1;
                Ok(Filter::Present(path))
            }
            Tok::Word(op) => {
                let Some(op) = CompareOp::from_word(op) else {
                    let message = if word.eq_ignore_ascii_case("not") {
                        "`not` takes a filter in parentheses: not (…)".to_owned()
                    } else {
                        format!(
                            "`{op}` is not an operator: expected eq, ne, co, sw, ew, gt, ge, lt, le or pr after `{word}`"
                        )
                    };
                    return Err(self.error(next_at, message));
                };
                self.next += 1;
                let value = self.value(op)?;
                Ok(Filter::Compare { path, op, value })
            }
            other => {
                let message = if word.eq_ignore_ascii_case("not") && *other == Tok::LBracket {
                    "`not` takes a filter in parentheses: not (…)".to_owned()
                } else {
                    format!(
                        "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after `{word}`, found {}",
                        other.shown()
                    )
                };
                Err(self.error(next_at, message))
            }
        }
    }

    /// A comparison's value.
    fn value(&mut self, op: CompareOp) -> Result<CompValue, FilterError> {
        let what = "a value (a string in double quotes, a number, true, false or null)";
        let after = format!("`{}`", op.as_str());
        let value = match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => CompValue::String(s.clone()),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => CompValue::Bool(true),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => CompValue::Bool(false),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("null") => CompValue::Null,
            Some(Tok::Word(w)) if is_json_number(w) => CompValue::Number((*w).to_owned()),
            _ => return Err(self.expected(what, &after)),
        };
        self.next += 1;
        Ok(value)
    }

    /// `[URI ":"] ATTRNAME ["." subAttr]`.
    fn path(&self, word: &str, at: usize) -> Result<AttrPath, FilterError> {
        let (uri, rest, rest_at) = if word
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        {
            let colon = word.rfind(':').unwrap_or(3);
            let uri = &word[..colon];
            if let Some(bad) = uri
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '-' | '_')))
            {
                return Err(self.error(
                    at + bad.0,
                    format!("{:?} cannot appear in a schema URN", bad.1),
                ));
            }
            (Some(uri.to_owned()), &word[colon + 1..], at + colon + 1)
        } else {
            if let Some(colon) = word.find(':') {
                return Err(self.error(
                    at + colon,
                    format!(
                        "`:` in the attribute path `{word}`: only a schema URN (`urn:…:`) may come before the attribute name"
                    ),
                ));
            }
            (None, word, at)
        };
        let mut parts = rest.splitn(3, '.');
        let name = parts.next().unwrap_or_default();
        self.name(name, rest_at, word)?;
        let sub_attr = match parts.next() {
            None => None,
            Some(sub) => {
                self.name(sub, rest_at + name.len() + 1, word)?;
                Some(sub.to_owned())
            }
        };
        if parts.next().is_some() {
            let extra = rest_at + name.len() + 1 + sub_attr.as_ref().map_or(0, String::len);
            return Err(self.error(
                extra,
                format!("`{word}`: an attribute path has at most one sub-attribute"),
            ));
        }
        Ok(AttrPath {
            uri,
            name: name.to_owned(),
            sub_attr,
        })
    }

    /// `ATTRNAME = ALPHA *(ALPHA / DIGIT / "-" / "_")`, or `$ref`.
    fn name(&self, name: &str, at: usize, word: &str) -> Result<(), FilterError> {
        if name.eq_ignore_ascii_case("$ref") {
            return Ok(());
        }
        let mut chars = name.char_indices();
        match chars.next() {
            None => Err(self.error(
                at,
                format!("`{word}` is not an attribute path: an attribute name is missing"),
            )),
            Some((_, c)) if !c.is_ascii_alphabetic() => Err(self.error(
                at,
                format!(
                    "`{word}` is not an attribute path: an attribute name starts with a letter"
                ),
            )),
            Some(_) => {
                match chars.find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))) {
                    Some((i, c)) => Err(self.error(
                        at + i,
                        format!("{c:?} cannot appear in the attribute name in `{word}`"),
                    )),
                    None => Ok(()),
                }
            }
        }
    }
}

/// `-? (0 / [1-9] DIGIT*) ("." DIGIT+)? ([eE] [+-]? DIGIT+)?`
fn is_json_number(word: &str) -> bool {
    let b = word.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    if b.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

// ----------------------------------------------------------------- display

/// The filter written back in the grammar (operators lower case, strings
/// JSON-escaped); it parses to an equal [`Filter`].
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let joined = |f: &mut fmt::Formatter<'_>, items: &[Filter], word: &str| {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                // A nested chain came from parentheses: keep them.
                match item {
                    Filter::And(_) | Filter::Or(_) => write!(f, "({item})")?,
                    _ => write!(f, "{item}")?,
                }
            }
            Ok(())
        };
        match self {
            Filter::Compare { path, op, value } => write!(f, "{path} {} {value}", op.as_str()),
            Filter::Present(path) => write!(f, "{path} pr"),
            Filter::And(items) => joined(f, items, "and"),
            Filter::Or(items) => joined(f, items, "or"),
            Filter::Not(inner) => write!(f, "not ({inner})"),
            Filter::ValuePath { path, filter } => write!(f, "{path}[{filter}]"),
        }
    }
}

impl fmt::Display for AttrPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(uri) = &self.uri {
            write!(f, "{uri}:")?;
        }
        f.write_str(&self.name)?;
        if let Some(sub) = &self.sub_attr {
            write!(f, ".{sub}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CompValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CompValue::Null => f.write_str("null"),
            CompValue::Bool(b) => write!(f, "{b}"),
            CompValue::Number(n) => f.write_str(n),
            CompValue::String(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        '\n' => f.write_str("\\n")?,
                        '\r' => f.write_str("\\r")?,
                        '\t' => f.write_str("\\t")?,
                        c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";

    fn path(name: &str) -> AttrPath {
        AttrPath {
            uri: None,
            name: name.into(),
            sub_attr: None,
        }
    }

    fn eq(name: &str, value: &str) -> Filter {
        Filter::Compare {
            path: path(name),
            op: CompareOp::Eq,
            value: CompValue::String(value.into()),
        }
    }

    /// Parses, and checks that the filter written back parses to the same.
    fn ok(text: &str) -> Filter {
        let f = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let again = parse(&f.to_string()).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert_eq!(again, f, "{text} -> {f}");
        f
    }

    fn err(text: &str) -> FilterError {
        match parse(text) {
            Ok(f) => panic!("{text} parsed: {f:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn every_example_of_rfc_7644_parses() {
        for text in [
            r#"userName eq "bjensen""#,
            r#"name.familyName co "O'Malley""#,
            r#"userName sw "J""#,
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "J""#,
            "title pr",
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified ge "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified lt "2011-05-13T04:42:34Z""#,
            r#"meta.lastModified le "2011-05-13T04:42:34Z""#,
            r#"title pr and userType eq "Employee""#,
            r#"title pr or userType eq "Intern""#,
            r#"schemas eq "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User""#,
            r#"userType eq "Employee" and (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType ne "Employee" and not (emails co "example.com" or emails.value co "example.org")"#,
            r#"userType eq "Employee" and (emails.type eq "work")"#,
            r#"userType eq "Employee" and emails[type eq "work" and value co "@example.com"]"#,
            r#"emails[type eq "work" and value co "@example.com"] or ims[type eq "xmpp" and value co "@foo.com"]"#,
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "701984""#,
            r#"members[$ref eq "https://example.com/v2/Users/2819c223"]"#,
        ] {
            ok(text);
        }
    }

    #[test]
    fn the_one_filter_identity_providers_send() {
        let f = ok(r#"userName eq "Zoe.Zed@acme.test""#);
        assert_eq!(f, eq("userName", "Zoe.Zed@acme.test"));
        let Filter::Compare { path, .. } = &f else {
            panic!("{f:?}")
        };
        assert!(path.is(USER, "username"));
        assert!(!path.is(USER, "emails"));
        let f = ok(&format!(r#"{USER}:USERNAME EQ "x""#));
        let Filter::Compare { path, op, .. } = &f else {
            panic!("{f:?}")
        };
        assert!(path.is(USER, "userName"));
        assert_eq!(*op, CompareOp::Eq);
        let other =
            ok(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:userName eq "x""#);
        let Filter::Compare { path, .. } = &other else {
            panic!("{other:?}")
        };
        assert!(!path.is(USER, "userName"));
        let sub = ok(r#"userName.x eq "x""#);
        let Filter::Compare { path, .. } = &sub else {
            panic!("{sub:?}")
        };
        assert!(!path.is(USER, "userName"));
    }

    #[test]
    fn not_binds_tighter_than_and_tighter_than_or() {
        let (a, b, c, d) = (eq("a", "1"), eq("b", "2"), eq("c", "3"), eq("d", "4"));
        assert_eq!(
            ok(r#"a eq "1" or b eq "2" and c eq "3""#),
            Filter::Or(vec![a.clone(), Filter::And(vec![b.clone(), c.clone()])])
        );
        assert_eq!(
            ok(r#"a eq "1" and b eq "2" or c eq "3" and d eq "4""#),
            Filter::Or(vec![
                Filter::And(vec![a.clone(), b.clone()]),
                Filter::And(vec![c.clone(), d.clone()])
            ])
        );
        assert_eq!(
            ok(r#"(a eq "1" or b eq "2") and c eq "3""#),
            Filter::And(vec![Filter::Or(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(
            ok(r#"not (a eq "1") and b eq "2""#),
            Filter::And(vec![Filter::Not(Box::new(a.clone())), b.clone()])
        );
        // Chains are flat; parentheses keep their grouping.
        assert_eq!(
            ok(r#"a eq "1" AND b eq "2" And c eq "3""#),
            Filter::And(vec![a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(
            ok(r#"(a eq "1" and b eq "2") and c eq "3""#),
            Filter::And(vec![Filter::And(vec![a.clone(), b.clone()]), c.clone()])
        );
        assert_eq!(ok(r#"((a eq "1"))"#), a);
    }

    #[test]
    fn values_are_json_literals() {
        let value = |text: &str| match ok(&format!("x eq {text}")) {
            Filter::Compare { value, .. } => value,
            other => panic!("{other:?}"),
        };
        assert_eq!(value("true"), CompValue::Bool(true));
        assert_eq!(value("False"), CompValue::Bool(false));
        assert_eq!(value("null"), CompValue::Null);
        for n in ["0", "-0", "42", "-1.5", "1e9", "2.5E-3", "6.02e+23"] {
            assert_eq!(value(n), CompValue::Number(n.into()));
        }
        assert_eq!(
            value(r#""a\"b\\c\/d\n\u00e9\ud83d\ude00""#),
            CompValue::String("a\"b\\c/d\né😀".into())
        );
        assert_eq!(value(r#""""#), CompValue::String(String::new()));
        assert_eq!(value(r#""é x""#), CompValue::String("é x".into()));
    }

    #[test]
    fn value_paths_and_urns() {
        let f = ok(r#"emails[type eq "work" and not (value ew "@example.org")]"#);
        let Filter::ValuePath { path, filter } = &f else {
            panic!("{f:?}")
        };
        assert_eq!(path.name, "emails");
        assert!(matches!(**filter, Filter::And(ref v) if v.len() == 2));
        let f = ok(r#"urn:ietf:params:scim:schemas:core:2.0:User:name.givenName pr"#);
        assert_eq!(
            f,
            Filter::Present(AttrPath {
                uri: Some(USER.into()),
                name: "name".into(),
                sub_attr: Some("givenName".into()),
            })
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases: [(&str, usize, &str); 24] = [
            ("", 1, "the filter is empty"),
            ("   ", 4, "the filter is empty"),
            (
                "userName",
                9,
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after `userName`, found the end",
            ),
            ("userName eq", 12, "expected a value"),
            (
                "userName eq x",
                13,
                "expected a value (a string in double quotes, a number, true, false or null) after `eq`, found `x`",
            ),
            (r#"userName is "x""#, 10, "`is` is not an operator"),
            (r#"userName eq "x"#, 13, "this string has no closing `\"`"),
            (r#"userName eq "x\q""#, 15, "`\\q` is not a JSON escape"),
            (r#"userName eq "\ud800""#, 14, "a lone UTF-16 surrogate"),
            (
                r#"userName eq "\u12""#,
                14,
                "`\\u` takes four hexadecimal digits",
            ),
            (
                "userName eq \"a\tb\"",
                15,
                "a control character in a string must be escaped",
            ),
            (
                r#"userName eq "x" and"#,
                20,
                "expected a filter (an attribute path, `not (` or `(`) after `and`, found the end",
            ),
            (r#"userName eq "x" or"#, 19, "after `or`, found the end"),
            (
                r#"userName eq "x" userName eq "y""#,
                17,
                "expected `and`, `or` or the end of the filter, found `userName`",
            ),
            (
                r#"(userName eq "x""#,
                17,
                "`)` missing: what opens at character 1 is not closed",
            ),
            (r#"userName eq "x")"#, 16, "`)` closes no `(`"),
            (
                r#"emails[type eq "work""#,
                22,
                "`]` missing: what opens at character 7 is not closed",
            ),
            (r#"emails[type eq "work"]]"#, 23, "`]` closes no `[`"),
            (
                r#"emails[a[b eq "x"]]"#,
                9,
                "a value path cannot hold another value path",
            ),
            (
                r#"not userName eq "x""#,
                5,
                "`not` takes a filter in parentheses",
            ),
            (r#"a.b.c eq "x""#, 4, "at most one sub-attribute"),
            (
                r#"1abc eq "x""#,
                1,
                "an attribute name starts with a letter",
            ),
            (r#"ab:c eq "x""#, 3, "only a schema URN"),
            (r#"userName eq "x" & b pr"#, 17, "unexpected character '&'"),
        ];
        for (text, position, fragment) in cases {
            let e = err(text);
            assert!(
                e.message.contains(fragment),
                "{text}: {e} does not say {fragment:?}"
            );
            assert_eq!(e.position, position, "{text}: {e}");
            assert!(
                e.to_string()
                    .starts_with(&format!("at character {position}: "))
            );
        }
        // Positions count characters, not bytes.
        let e = err(r#"é eq "x""#);
        assert_eq!((e.offset, e.position), (0, 1), "{e}");
        let e = err(r#"a eq "é" b"#);
        assert_eq!((e.offset, e.position), (10, 10), "{e}");
    }

    #[test]
    fn numbers_must_be_json_numbers() {
        for bad in [
            "01", "1.", ".5", "-", "1e", "1e+", "+1", "0x10", "1.2.3", "--1",
        ] {
            let e = err(&format!("x eq {bad}"));
            assert!(e.message.contains("expected a value"), "{bad}: {e}");
        }
    }

    #[test]
    fn nesting_is_bounded_and_long_chains_are_flat() {
        let nested = |n: usize| format!("{}a pr{}", "(".repeat(n), ")".repeat(n));
        ok(&nested(MAX_DEPTH));
        let e = err(&nested(MAX_DEPTH + 1));
        assert!(e.message.contains("nests deeper than 32"), "{e}");
        assert_eq!(e.position, MAX_DEPTH + 1);
        let nots = format!(
            "{}a pr{}",
            "not (".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(err(&nots).message.contains("nests deeper"));
        // A hundred thousand open parentheses: an error, not a stack overflow.
        assert!(err(&"(".repeat(100_000)).message.contains("nests deeper"));
        // A long chain is one node, however long.
        let chain = vec!["a pr"; 20_000].join(" and ");
        match ok(&chain) {
            Filter::And(items) => assert_eq!(items.len(), 20_000),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn words_are_keywords_only_where_the_grammar_puts_them() {
        // An attribute may be called `not`, `and`, `pr` or `eq`.
        assert_eq!(ok(r#"not eq "x""#), eq("not", "x"));
        assert_eq!(ok(r#"and eq "x""#), eq("and", "x"));
        assert_eq!(
            ok(r#"pr pr and eq eq "y""#),
            Filter::And(vec![Filter::Present(path("pr")), eq("eq", "y")])
        );
    }
}
