//! The functions a template can call: Go's builtins (`len`, `index`, `eq`,
//! `printf`, ...) and the ones Docker adds for `--format` (`json`, `join`,
//! `upper`, `pad`, ...).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value;

use crate::format::{self, go_type};
use crate::Func;

/// A value during execution. `None` is Go's "no value": what a missing map key
/// yields. It differs from JSON null, which prints as `<nil>`.
pub(crate) type Val = Option<Value>;

type Builtin = fn(&[Val]) -> Result<Val, String>;

#[derive(Clone, Copy, Debug)]
pub(crate) enum Function {
    /// `and` and `or` evaluate their arguments lazily, so they are not plain calls.
    And,
    Or,
    Builtin {
        f: Builtin,
        min: usize,
        max: Option<usize>,
    },
    User(Func),
}

pub(crate) fn builtins() -> HashMap<String, Function> {
    let table: [(&str, Builtin, usize, Option<usize>); 22] = [
        ("not", |a| Ok(Some(Value::Bool(!truth(&a[0])))), 1, Some(1)),
        ("len", len, 1, Some(1)),
        ("index", index, 1, None),
        ("slice", slice, 1, Some(4)),
        ("eq", eq, 1, None),
        (
            "ne",
            |a| Ok(Some(Value::Bool(!equal(&a[0], &a[1])?))),
            2,
            Some(2),
        ),
        ("lt", |a| compare(a, |o| o.is_lt()), 2, Some(2)),
        ("le", |a| compare(a, |o| o.is_le()), 2, Some(2)),
        ("gt", |a| compare(a, |o| o.is_gt()), 2, Some(2)),
        ("ge", |a| compare(a, |o| o.is_ge()), 2, Some(2)),
        ("print", |a| Ok(string(format::sprint(&nulls(a)))), 0, None),
        (
            "println",
            |a| Ok(string(format::sprintln(&nulls(a)))),
            0,
            None,
        ),
        ("printf", printf, 1, None),
        ("html", |a| Ok(string(html(&joined(a)))), 0, None),
        ("js", |a| Ok(string(js(&joined(a)))), 0, None),
        ("urlquery", |a| Ok(string(urlquery(&joined(a)))), 0, None),
        ("json", json, 1, Some(1)),
        ("join", join, 2, Some(2)),
        ("split", split, 2, Some(2)),
        ("truncate", truncate, 2, Some(2)),
        ("pad", pad, 3, Some(3)),
        ("title", |a| Ok(string(title(str_arg(&a[0])?))), 1, Some(1)),
    ];
    let mut map: HashMap<String, Function> = table
        .into_iter()
        .map(|(name, f, min, max)| (name.to_string(), Function::Builtin { f, min, max }))
        .collect();
    map.insert(
        "lower".into(),
        Function::Builtin {
            f: |a| Ok(string(str_arg(&a[0])?.to_lowercase())),
            min: 1,
            max: Some(1),
        },
    );
    map.insert(
        "upper".into(),
        Function::Builtin {
            f: |a| Ok(string(str_arg(&a[0])?.to_uppercase())),
            min: 1,
            max: Some(1),
        },
    );
    map.insert("and".into(), Function::And);
    map.insert("or".into(), Function::Or);
    map
}

/// Go's truth: false, 0, nil, and empty strings, arrays and maps are false.
pub(crate) fn truth(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

fn string(s: String) -> Val {
    Some(Value::String(s))
}

/// Functions see "no value" as nil, as Go passes it to an `interface{}` parameter.
pub(crate) fn nulls(args: &[Val]) -> Vec<Value> {
    args.iter()
        .map(|a| a.clone().unwrap_or(Value::Null))
        .collect()
}

fn str_arg(v: &Val) -> Result<&str, String> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
        None => Err("invalid value; expected string".into()),
    }
}

fn int_arg(v: &Val) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
        Some(other) => Err(format!(
            "wrong type for value; expected int; got {}",
            go_type(other)
        )),
        None => Err("invalid value; expected int".into()),
    }
}

/// `html`, `js` and `urlquery` take one string as is, anything else via Sprint.
fn joined(args: &[Val]) -> String {
    match args {
        [Some(Value::String(s))] => s.clone(),
        _ => format::sprint(&nulls(args)),
    }
}

fn len(a: &[Val]) -> Result<Val, String> {
    let n = match &a[0] {
        Some(Value::String(s)) => s.len(),
        Some(Value::Array(v)) => v.len(),
        Some(Value::Object(m)) => m.len(),
        None => return Err("len of untyped nil".into()),
        Some(Value::Null) => return Err("len of nil pointer".into()),
        Some(v) => return Err(format!("len of type {}", go_type(v))),
    };
    Ok(Some(Value::from(n)))
}

fn index_int(v: &Val, what: &str) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64().unwrap_or(0)),
        Some(v) => Err(format!("cannot index {what} with type {}", go_type(v))),
        None => Err(format!("cannot index {what} with nil")),
    }
}

fn index(a: &[Val]) -> Result<Val, String> {
    let mut item = a[0].clone();
    for key in &a[1..] {
        item = match item {
            Some(Value::Array(v)) => {
                let i = index_int(key, "slice")?;
                let got = usize::try_from(i).ok().and_then(|i| v.into_iter().nth(i));
                Some(got.ok_or_else(|| format!("index out of range: {i}"))?)
            }
            Some(Value::String(s)) => {
                let i = index_int(key, "string")?;
                let b = usize::try_from(i)
                    .ok()
                    .and_then(|i| s.as_bytes().get(i).copied());
                Some(Value::from(
                    b.ok_or_else(|| format!("index out of range: {i}"))?,
                ))
            }
            Some(Value::Object(mut m)) => match key {
                Some(Value::String(k)) => m.remove(k),
                Some(v) => return Err(format!("value has type {}; should be string", go_type(v))),
                None => return Err("value is nil; should be of type string".into()),
            },
            None | Some(Value::Null) => return Err("index of untyped nil".into()),
            Some(v) => return Err(format!("can't index item of type {}", go_type(&v))),
        };
    }
    Ok(item)
}

fn slice(a: &[Val]) -> Result<Val, String> {
    let len = match &a[0] {
        Some(Value::String(s)) if a.len() < 4 => s.len(),
        Some(Value::String(_)) => return Err("cannot 3-index slice a string".into()),
        Some(Value::Array(v)) => v.len(),
        None | Some(Value::Null) => return Err("slice of untyped nil".into()),
        Some(v) => return Err(format!("can't slice item of type {}", go_type(v))),
    };
    let mut idx = [0, len, len];
    for (slot, arg) in idx.iter_mut().zip(&a[1..]) {
        let i = index_int(arg, "slice")?;
        *slot = usize::try_from(i)
            .ok()
            .filter(|i| *i <= len)
            .ok_or_else(|| format!("index out of range: {i}"))?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if a.len() == 4 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(Some(match &a[0] {
        Some(Value::String(s)) => Value::String(
            s.get(idx[0]..idx[1])
                .ok_or("slice splits a UTF-8 character")?
                .to_string(),
        ),
        Some(Value::Array(v)) => Value::Array(v[idx[0]..idx[1]].to_vec()),
        _ => return Err("unreachable slice target".into()),
    }))
}

/// Numbers compare by value whatever their JSON representation.
fn cmp_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&b.as_f64().unwrap_or(0.0)),
    }
}

/// Go's `eq` for two values: nil equals only nil; basic kinds must match.
fn equal(a: &Val, b: &Val) -> Result<bool, String> {
    let a = a.as_ref().unwrap_or(&Value::Null);
    let b = b.as_ref().unwrap_or(&Value::Null);
    match (a, b) {
        (Value::Null, Value::Null) => Ok(true),
        (Value::Null, _) | (_, Value::Null) => Ok(false),
        (Value::Array(_) | Value::Object(_), _) | (_, Value::Array(_) | Value::Object(_)) => {
            Err("non-comparable type".into())
        }
        (Value::Bool(x), Value::Bool(y)) => Ok(x == y),
        (Value::String(x), Value::String(y)) => Ok(x == y),
        (Value::Number(x), Value::Number(y)) => Ok(cmp_numbers(x, y).is_eq()),
        _ => Err("incompatible types for comparison".into()),
    }
}

/// `eq a b c`: true if `a` equals any of the others.
fn eq(a: &[Val]) -> Result<Val, String> {
    if a.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for other in &a[1..] {
        if equal(&a[0], other)? {
            return Ok(Some(Value::Bool(true)));
        }
    }
    Ok(Some(Value::Bool(false)))
}

fn compare(a: &[Val], want: fn(Ordering) -> bool) -> Result<Val, String> {
    let ord = match (&a[0], &a[1]) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => cmp_numbers(x, y),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (
            Some(x @ (Value::Number(_) | Value::String(_))),
            Some(y @ (Value::Number(_) | Value::String(_))),
        ) if go_type(x) != go_type(y) => return Err("incompatible types for comparison".into()),
        _ => return Err("invalid type for comparison".into()),
    };
    Ok(Some(Value::Bool(want(ord))))
}

fn printf(a: &[Val]) -> Result<Val, String> {
    let format = str_arg(&a[0])?;
    Ok(string(format::sprintf(format, &nulls(&a[1..]))))
}

/// Go's `template.HTMLEscapeString`.
fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' | '>' | '&' | '=' => out.push_str(&format!("\\u{:04X}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Docker's `json`: compact, no HTML escaping, numbers as Go writes them.
fn json(a: &[Val]) -> Result<Val, String> {
    let mut out = String::new();
    write_json(&mut out, a[0].as_ref().unwrap_or(&Value::Null));
    Ok(string(out))
}

fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Number(n) if n.is_f64() => {
            out.push_str(&format::json_float(n.as_f64().unwrap_or(0.0)))
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, &Value::String(k.clone()));
                out.push(':');
                write_json(out, v);
            }
            out.push('}');
        }
        // Go escapes these two for JavaScript's sake even with HTML escaping off.
        other => out.push_str(
            &other
                .to_string()
                .replace('\u{2028}', "\\u2028")
                .replace('\u{2029}', "\\u2029"),
        ),
    }
}

/// Docker's `join`; elements that are not strings print as `%v`.
fn join(a: &[Val]) -> Result<Val, String> {
    let sep = str_arg(&a[1])?;
    let items = match &a[0] {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => return Ok(string(String::new())),
        Some(v) => {
            return Err(format!(
                "wrong type for value; expected []string; got {}",
                go_type(v)
            ))
        }
    };
    Ok(string(
        items
            .iter()
            .map(format::print)
            .collect::<Vec<_>>()
            .join(sep),
    ))
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(a: &[Val]) -> Result<Val, String> {
    let (s, sep) = (str_arg(&a[0])?, str_arg(&a[1])?);
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        s.split(sep).map(|p| Value::String(p.to_string())).collect()
    };
    Ok(Some(Value::Array(parts)))
}

/// Go's `strings.Title`: upper-cases the first letter of each word.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at_start = true;
    for c in s.chars() {
        if at_start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        at_start = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Docker's `truncate s n`: at most `n` characters.
fn truncate(a: &[Val]) -> Result<Val, String> {
    let (s, n) = (str_arg(&a[0])?, int_arg(&a[1])?);
    let n = usize::try_from(n).map_err(|_| format!("negative length {n}"))?;
    Ok(string(s.chars().take(n).collect()))
}

/// Docker's `pad s before after`: surrounds a non-empty string with spaces.
fn pad(a: &[Val]) -> Result<Val, String> {
    let s = str_arg(&a[0])?;
    let count = |v: &Val| -> Result<usize, String> {
        let n = int_arg(v)?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| format!("bad padding {n}"))
    };
    let (before, after) = (count(&a[1])?, count(&a[2])?);
    if s.is_empty() {
        return Ok(string(String::new()));
    }
    Ok(string(format!(
        "{}{s}{}",
        " ".repeat(before),
        " ".repeat(after)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapers() {
        assert_eq!(
            html("<a href='x'>&\"</a>"),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;&lt;/a&gt;"
        );
        assert_eq!(js("a'b\"c<d>\n\\"), "a\\'b\\\"c\\u003Cd\\u003E\\u000A\\\\");
        assert_eq!(urlquery("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
        assert_eq!(title("hello wide_world-x"), "Hello Wide_world-X");
    }

    #[test]
    fn comparisons() {
        let v = |x: Value| Some(x);
        assert!(equal(&v(json!(1)), &v(json!(1.0))).unwrap());
        assert!(equal(&None, &v(Value::Null)).unwrap());
        assert!(!equal(&None, &v(json!("x"))).unwrap());
        assert_eq!(
            equal(&v(json!(1)), &v(json!("1"))).unwrap_err(),
            "incompatible types for comparison"
        );
        assert_eq!(
            equal(&v(json!([])), &v(json!([]))).unwrap_err(),
            "non-comparable type"
        );
        assert_eq!(
            compare(&[v(json!(true)), v(json!(false))], |o| o.is_lt()).unwrap_err(),
            "invalid type for comparison"
        );
        assert_eq!(
            compare(&[v(json!(1)), v(json!("a"))], |o| o.is_lt()).unwrap_err(),
            "incompatible types for comparison"
        );
        assert_eq!(
            compare(&[v(json!(u64::MAX)), v(json!(-1))], |o| o.is_gt()).unwrap(),
            v(json!(true))
        );
    }

    #[test]
    fn json_keeps_field_order_and_go_numbers() {
        let out = json(&[Some(json!({"b": 1.0, "a": ["<&>", null, "\u{2028}"]}))]).unwrap();
        assert_eq!(out, Some(json!(r#"{"b":1,"a":["<&>",null,"\u2028"]}"#)));
        assert_eq!(json(&[None]).unwrap(), Some(json!("null")));
    }
}
