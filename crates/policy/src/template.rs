//! Reason messages with placeholders: `{resource.user.name} owns
//! {resource.owned_summary}`. The words live in the policies' annotations;
//! the engine only follows the attribute path through the request's entities.

/// Where a placeholder path starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// The request's principal.
    Principal,
    /// The request's resource.
    Resource,
    /// The request's context.
    Context,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text as written.
    Text(String),
    /// `{root.attr.attr…}`.
    Path(Root, Vec<String>),
}

/// A parsed `@reason` or `@unmet` annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// The pieces, in order.
    pub segments: Vec<Segment>,
}

impl Template {
    /// Parses `text`; `{` opens a placeholder that `}` closes.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                segments.push(Segment::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("`{{` without `}}` in \"{text}\""))?;
            let path = &after[..close];
            let mut parts = path.split('.');
            let root = match parts.next() {
                Some("principal") => Root::Principal,
                Some("resource") => Root::Resource,
                Some("context") => Root::Context,
                _ => {
                    return Err(format!(
                        "placeholder `{{{path}}}` must start with principal, resource or context"
                    ));
                }
            };
            let attrs: Vec<String> = parts.map(str::to_owned).collect();
            if attrs.iter().any(|a| a.is_empty()) {
                return Err(format!("placeholder `{{{path}}}` has an empty attribute"));
            }
            segments.push(Segment::Path(root, attrs));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            segments.push(Segment::Text(rest.to_owned()));
        }
        Ok(Template { segments })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_paths() {
        let t = Template::parse("{resource.user.name} owns {resource.owned_summary}.")
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(
            t.segments,
            vec![
                Segment::Path(Root::Resource, vec!["user".into(), "name".into()]),
                Segment::Text(" owns ".into()),
                Segment::Path(Root::Resource, vec!["owned_summary".into()]),
                Segment::Text(".".into()),
            ]
        );
    }

    #[test]
    fn rejects_unknown_roots_and_open_braces() {
        assert!(Template::parse("{actor.name}").is_err());
        assert!(Template::parse("a {resource.name").is_err());
        assert!(Template::parse("{resource..name}").is_err());
    }
}
