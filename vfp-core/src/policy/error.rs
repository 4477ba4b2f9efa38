//! Load errors that always say where: `FILE:LINE:COL: field `PATH`: what`.
//!
//! Semantic errors know their field path (the loader builds it while it
//! walks layers, groups and rules) and carry the byte span of the offending
//! value from `toml::Spanned`. Errors raised by serde / the TOML parser only
//! come with a byte span, so the field path is recovered from the document
//! itself: [`path_at`] re-parses the text with `toml_edit`, which keeps
//! spans, and finds the deepest key whose key or value covers the span.

use std::fmt;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// Why a policy could not be loaded, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// File path (or the origin given to `load_str`).
    pub origin: String,
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub col: usize,
    /// Dotted field path, e.g. `layers[1].groups[0].rules[3].src`;
    /// `(file)` for errors about the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.origin, self.line, self.col, self.field, self.message
        )
    }
}

/// What errors are reported against: the file's name and text.
pub(crate) struct Source<'a> {
    pub origin: &'a str,
    pub text: &'a str,
}

impl Source<'_> {
    /// An error at byte `span` of the text, for field `field`.
    pub fn err(&self, span: Range<usize>, field: &str, message: impl Into<String>) -> PolicyError {
        let (line, col) = line_col(self.text, span.start);
        PolicyError {
            origin: self.origin.to_string(),
            line,
            col,
            field: if field.is_empty() {
                "(file)".to_string()
            } else {
                field.to_string()
            },
            message: message.into(),
        }
    }

    /// Converts a `toml` deserialisation error (syntax, type, unknown or
    /// missing field) into a located [`PolicyError`].
    pub fn toml_error(&self, e: &toml::de::Error) -> PolicyError {
        let span = e.span().unwrap_or(0..0);
        // The parser's message may span several lines; the first line of it
        // is the one a user needs next to the location.
        let message = e.message().trim().replace('\n', ": ");
        let mut field = path_at(self.text, span.clone());
        if let Some(missing) = message
            .strip_prefix("missing field `")
            .and_then(|m| m.strip_suffix('`'))
        {
            field = join(&field, missing);
        }
        self.err(span, &field, message)
    }
}

/// 1-based line and column (in characters) of byte offset `at`.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The field path (`layers[0].groups[1].rules[2].src`) of the deepest key
/// whose key or value covers `span`; for text that does not parse, the path
/// of the table being written at that point plus the key on that line.
pub fn path_at(text: &str, span: Range<usize>) -> String {
    if let Ok(doc) = ImDocument::parse(text) {
        let mut best = (0usize, String::new());
        walk_table(doc.as_table(), &span, String::new(), 0, &mut best);
        return best.1;
    }
    // Syntax error: the text before the offending line usually parses; the
    // last table opened there is where the error sits.
    let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let mut path = String::new();
    if let Ok(doc) = ImDocument::parse(&text[..line_start]) {
        let mut last = (0usize, String::new());
        last_table(doc.as_table(), String::new(), &mut last);
        path = last.1;
    }
    let line = text[line_start..].lines().next().unwrap_or("");
    if let Some((k, _)) = line.split_once('=') {
        let k = k.trim();
        if !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
            path = join(&path, k);
        }
    }
    path
}

fn covers(r: Option<Range<usize>>, span: &Range<usize>) -> bool {
    r.is_some_and(|r| r.start <= span.start && span.start < r.end.max(r.start + 1))
}

fn walk_table(t: &Table, span: &Range<usize>, path: String, depth: usize, best: &mut (usize, String)) {
    if depth > 0 && covers(t.span(), span) && depth >= best.0 {
        *best = (depth, path.clone());
    }
    for (k, item) in t.iter() {
        let child = join(&path, k);
        let key_span = t.get_key_value(k).and_then(|(key, _)| key.span());
        if covers(key_span, span) && depth + 1 >= best.0 {
            *best = (depth + 1, child.clone());
        }
        walk_item(item, span, child, depth + 1, best);
    }
}

fn walk_item(item: &Item, span: &Range<usize>, path: String, depth: usize, best: &mut (usize, String)) {
    match item {
        Item::Table(t) => walk_table(t, span, path, depth, best),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                walk_table(t, span, format!("{path}[{i}]"), depth + 1, best);
            }
        }
        Item::Value(v) => walk_value(v, span, path, depth, best),
        Item::None => {}
    }
}

fn walk_value(v: &Value, span: &Range<usize>, path: String, depth: usize, best: &mut (usize, String)) {
    if covers(v.span(), span) && depth >= best.0 {
        *best = (depth, path.clone());
    }
    match v {
        Value::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                walk_value(e, span, format!("{path}[{i}]"), depth + 1, best);
            }
        }
        Value::InlineTable(t) => {
            for (k, e) in t.iter() {
                let child = join(&path, k);
                let key_span = t.get_key_value(k).and_then(|(key, _)| key.span());
                if covers(key_span, span) && depth + 1 >= best.0 {
                    *best = (depth + 1, child.clone());
                }
                walk_value(e, span, child, depth + 1, best);
            }
        }
        _ => {}
    }
}

/// The path of the table whose header comes last in the text.
fn last_table(t: &Table, path: String, last: &mut (usize, String)) {
    if let Some(r) = t.span() {
        if r.start >= last.0 && !path.is_empty() {
            *last = (r.start, path.clone());
        }
    }
    for (k, item) in t.iter() {
        let child = join(&path, k);
        match item {
            Item::Table(t) => last_table(t, child, last),
            Item::ArrayOfTables(a) => {
                for (i, t) in a.iter().enumerate() {
                    last_table(t, format!("{child}[{i}]"), last);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[[layers]]\nname = 'a'\n[[layers.groups]]\n\
                       [[layers.groups.rules]]\nid = 1\nsrc = ['x', 'y']\n\
                       set_mac = { dst = 'zz' }\n";

    fn at(needle: &str) -> Range<usize> {
        let i = DOC.find(needle).unwrap();
        i..i + needle.len()
    }

    #[test]
    fn paths_are_found_from_spans() {
        assert_eq!(path_at(DOC, at("'y'")), "layers[0].groups[0].rules[0].src[1]");
        assert_eq!(path_at(DOC, at("src")), "layers[0].groups[0].rules[0].src");
        assert_eq!(path_at(DOC, at("'zz'")), "layers[0].groups[0].rules[0].set_mac.dst");
        assert_eq!(
            path_at(DOC, at("[[layers.groups.rules]]")),
            "layers[0].groups[0].rules[0]"
        );
        assert_eq!(path_at(DOC, at("'a'")), "layers[0].name");
    }

    #[test]
    fn syntax_errors_get_the_enclosing_table() {
        let bad = "[[layers]]\nname = 'a'\n[[layers]]\nname = 'b'\ndefault = \n";
        let off = bad.find("default").unwrap();
        assert_eq!(path_at(bad, off..off), "layers[1].default");
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 1), (1, 1));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
