//! Go's `text/template` over JSON values, for Docker-style `--format` and
//! `inspect -f` output.
//!
//! The data is a [`serde_json::Value`]; templates behave as Go's do with
//! `map[string]interface{}` data: a missing key prints `<no value>`, `range`
//! walks objects in sorted key order, values print as Go's `fmt` prints them
//! (`[a b]`, `map[k:v]`, `<nil>`). Docker's extra functions (`json`, `join`,
//! `split`, `lower`, `upper`, `title`, `truncate`, `pad`) are built in; the
//! `table` directive is the caller's business.
//!
//! JSON cannot tell a Go int from a float64, so numbers follow Docker's
//! typed structs: a whole number prints as an integer (`1234567`, where Go's
//! float64 would print `1.234567e+06`), other floats as Go prints them.
//!
//! This crate is not `html/template`: nothing is escaped unless asked for.
//!
//! ```
//! use berth_template::Template;
//! let t = Template::parse(r#"{{range .RepoTags}}{{.}} {{end}}{{json .Config}}"#).unwrap();
//! let data = serde_json::json!({"RepoTags": ["a:1", "b:2"], "Config": {"User": ""}});
//! assert_eq!(t.render(&data).unwrap(), r#"a:1 b:2 {"User":""}"#);
//! ```

mod exec;
mod format;
mod funcs;
mod lexer;
mod parse;

use std::collections::HashMap;

use serde_json::Value;

use crate::funcs::Function;
use crate::parse::Node;

/// A function a template may call: it gets its arguments (a missing value
/// arrives as null) and returns a value or an error message.
pub type Func = fn(&[Value]) -> Result<Value, String>;

/// Errors from parsing or executing a template, worded as Go's are.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The template text is malformed.
    #[error("template: :{line}: {message}")]
    Parse { line: usize, message: String },
    /// Executing failed at a column of the source, in `template` (`""` for the
    /// main one), while evaluating `context`.
    #[error("template: :{line}:{col}: executing {template:?} at <{context}>: {message}")]
    Exec {
        line: usize,
        col: usize,
        template: String,
        context: String,
        message: String,
    },
}

/// A parsed template, ready to render any number of times.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    root: Vec<Node>,
    /// Templates named by `define` and `block`.
    defines: HashMap<String, Vec<Node>>,
    funcs: HashMap<String, Function>,
}

impl Template {
    /// Parses a template that may use the built-in functions.
    pub fn parse(src: &str) -> Result<Self, Error> {
        Self::parse_with_funcs(src, &[])
    }

    /// Parses a template that may also call `extra` functions, which take
    /// precedence over built-ins of the same name. Functions must be known at
    /// parse time, as in Go, so an unknown name is a parse error.
    pub fn parse_with_funcs(src: &str, extra: &[(&str, Func)]) -> Result<Self, Error> {
        let mut funcs = funcs::builtins();
        funcs.extend(
            extra
                .iter()
                .map(|(name, f)| (name.to_string(), Function::User(*f))),
        );
        let parse_error = |pos: usize, message: String| Error::Parse {
            line: line_col(src, pos).0,
            message,
        };
        let tokens = lexer::lex(src).map_err(|e| parse_error(e.pos, e.msg))?;
        let tree = parse::parse(src, tokens, &|name| funcs.contains_key(name))
            .map_err(|e| parse_error(e.pos, e.msg))?;
        Ok(Template {
            src: src.to_string(),
            root: tree.root,
            defines: tree.defines,
            funcs,
        })
    }

    /// Executes the template with `data` as `.` and `$`.
    pub fn render(&self, data: &Value) -> Result<String, Error> {
        exec::execute(self, data)
    }

    /// Go's error location: 1-based line, 0-based byte column.
    fn location(&self, pos: usize) -> (usize, usize) {
        line_col(&self.src, pos)
    }
}

fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..pos.min(src.len())];
    let line = 1 + before.iter().filter(|b| **b == b'\n').count();
    let col = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(pos, |nl| pos - nl - 1);
    (line, col)
}

#[cfg(test)]
mod tests;
