//! Builds the syntax tree from tokens, checking what Go checks at parse time:
//! known functions, declared variables, balanced control blocks, `break`
//! only inside `range`.

use std::collections::HashMap;

use serde_json::Value;

use crate::lexer::{Tok, Token};

/// Deepest nesting of blocks and parentheses accepted, so hostile input cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 50;

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    /// `{{pipeline}}`: prints the value unless the pipeline declares variables.
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    /// `{{template "name" pipeline}}`.
    Template {
        pos: usize,
        name: String,
        pipe: Option<Pipe>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone)]
pub(crate) struct Control {
    pub pipe: Pipe,
    pub body: Vec<Node>,
    pub otherwise: Option<Vec<Node>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Pipe {
    /// Declared (`:=`) or assigned (`=`) variables.
    pub vars: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Command>,
}

/// A function call or a lone operand; a pipeline feeds each one's result to the next.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub args: Vec<Operand>,
    /// The source text, shown when the function it calls fails.
    pub text: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Operand {
    pub pos: usize,
    /// The source text, shown in execution errors as `at <...>`.
    pub text: String,
    pub kind: Arg,
}

#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Dot,
    Nil,
    /// A constant: string, number, bool or character.
    Lit(Value),
    /// `.A.B` on dot.
    Field(Vec<String>),
    /// `$x.A.B`.
    Var(String, Vec<String>),
    Func(String),
    /// `(pipeline).A.B`.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug)]
pub(crate) struct Tree {
    pub root: Vec<Node>,
    pub defines: HashMap<String, Vec<Node>>,
}

/// A parse failure at a byte offset.
#[derive(Debug)]
pub(crate) struct ParseError {
    pub pos: usize,
    pub msg: String,
}

type Result<T> = std::result::Result<T, ParseError>;

/// How an item list ended.
enum Stop {
    Eof,
    End,
    Else,
}

pub(crate) fn parse(src: &str, tokens: Vec<Token>, is_func: &dyn Fn(&str) -> bool) -> Result<Tree> {
    let mut p = Parser {
        src,
        toks: tokens,
        i: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
        is_func,
        defines: HashMap::new(),
    };
    let (root, stop) = p.list()?;
    match stop {
        Stop::Eof => Ok(Tree {
            root,
            defines: p.defines,
        }),
        Stop::End => p.fail("unexpected {{end}}"),
        Stop::Else => p.fail("unexpected {{else}}"),
    }
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    i: usize,
    /// Variables in scope, innermost last.
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    is_func: &'a dyn Fn(&str) -> bool,
    defines: HashMap<String, Vec<Node>>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i)
    }

    fn peek_tok(&self) -> Option<&Tok> {
        self.peek().map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    /// The offset errors point at: the current token, or the end of input.
    fn here(&self) -> usize {
        self.peek().map_or(self.src.len(), |t| t.pos)
    }

    fn fail<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(ParseError {
            pos: self.here(),
            msg: msg.into(),
        })
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(self.peek_tok(), Some(Tok::Ident(w)) if w == word)
    }

    fn expect_close(&mut self, context: &str) -> Result<()> {
        match self.peek_tok() {
            Some(Tok::Close) => {
                self.i += 1;
                Ok(())
            }
            _ => self.unexpected(context),
        }
    }

    fn unexpected<T>(&self, context: &str) -> Result<T> {
        match self.peek() {
            None => self.fail("unexpected EOF"),
            Some(t) => self.fail(format!("unexpected {} in {context}", describe(self.src, t))),
        }
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail("template nested too deeply");
        }
        Ok(())
    }

    /// Parses text and actions until `{{end}}`, `{{else}}` or the end of input.
    fn list(&mut self) -> Result<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        while let Some(tok) = self.next() {
            match tok.tok {
                Tok::Text(s) => nodes.push(Node::Text(s)),
                Tok::Open => {
                    if self.is_keyword("end") {
                        self.i += 1;
                        self.expect_close("end")?;
                        return Ok((nodes, Stop::End));
                    }
                    if self.is_keyword("else") {
                        self.i += 1;
                        return Ok((nodes, Stop::Else));
                    }
                    if let Some(node) = self.action()? {
                        nodes.push(node);
                    }
                }
                _ => {
                    self.i -= 1;
                    return self.unexpected("input");
                }
            }
        }
        Ok((nodes, Stop::Eof))
    }

    /// Parses one action after its `{{`; `define` yields no node.
    fn action(&mut self) -> Result<Option<Node>> {
        let keyword = match self.peek_tok() {
            Some(Tok::Ident(w)) => w.clone(),
            _ => String::new(),
        };
        let node = match keyword.as_str() {
            "if" | "with" | "range" => {
                self.i += 1;
                self.control(&keyword)?
            }
            "break" | "continue" => {
                self.i += 1;
                if self.range_depth == 0 {
                    return self.fail(format!("{{{{{keyword}}}}} outside {{{{range}}}}"));
                }
                self.expect_close(&keyword)?;
                if keyword == "break" {
                    Node::Break
                } else {
                    Node::Continue
                }
            }
            "template" => {
                self.i += 1;
                let (pos, name) = self.template_name("template")?;
                let pipe = self.optional_pipe("template")?;
                Node::Template { pos, name, pipe }
            }
            "block" => {
                self.i += 1;
                let (pos, name) = self.template_name("block")?;
                let pipe = self.optional_pipe("block")?;
                let body = self.definition()?;
                self.defines.insert(name.clone(), body);
                Node::Template { pos, name, pipe }
            }
            "define" => {
                self.i += 1;
                if self.depth > 0 {
                    return self.fail("unexpected <define> in command");
                }
                let (_, name) = self.template_name("define")?;
                self.expect_close("define clause")?;
                let body = self.definition()?;
                self.defines.insert(name, body);
                return Ok(None);
            }
            _ => Node::Action(self.pipeline("command", true)?),
        };
        Ok(Some(node))
    }

    /// The body of `define` or `block`: its own variable scope, up to `{{end}}`.
    fn definition(&mut self) -> Result<Vec<Node>> {
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let saved_range = std::mem::take(&mut self.range_depth);
        self.enter()?;
        let (body, stop) = self.list()?;
        self.depth -= 1;
        self.vars = saved_vars;
        self.range_depth = saved_range;
        match stop {
            Stop::End => Ok(body),
            Stop::Else => self.fail("unexpected {{else}}"),
            Stop::Eof => self.fail("unexpected EOF"),
        }
    }

    /// The quoted name after `template`, `block` or `define`, and its offset
    /// (where Go reports errors about the call).
    fn template_name(&mut self, context: &str) -> Result<(usize, String)> {
        match self.peek() {
            Some(Token {
                tok: Tok::Str(s),
                pos,
                ..
            }) => {
                let found = (*pos, s.clone());
                self.i += 1;
                Ok(found)
            }
            _ => self.unexpected(&format!("{context} clause")),
        }
    }

    fn optional_pipe(&mut self, context: &str) -> Result<Option<Pipe>> {
        if matches!(self.peek_tok(), Some(Tok::Close)) {
            self.i += 1;
            return Ok(None);
        }
        self.pipeline(context, true).map(Some)
    }

    /// `if`, `with` and `range`, including `{{else if ...}}` chains.
    fn control(&mut self, kind: &str) -> Result<Node> {
        self.enter()?;
        let scope = self.vars.len();
        let pipe = self.pipeline(kind, true)?;
        let in_range = usize::from(kind == "range");
        self.range_depth += in_range;
        let (body, stop) = self.list()?;
        self.range_depth -= in_range;
        let otherwise = match stop {
            Stop::Eof => return self.fail("unexpected EOF"),
            Stop::End => None,
            // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer `{{end}}`.
            Stop::Else if kind != "range" && self.is_keyword(kind) => {
                self.i += 1;
                Some(vec![self.control(kind)?])
            }
            Stop::Else => {
                self.expect_close("else")?;
                match self.list()? {
                    (nodes, Stop::End) => Some(nodes),
                    (_, Stop::Else) => {
                        return self.fail(format!("expected end; found {{{{else}}}} in {kind}"))
                    }
                    (_, Stop::Eof) => return self.fail("unexpected EOF"),
                }
            }
        };
        self.vars.truncate(scope);
        self.depth -= 1;
        let control = Control {
            pipe,
            body,
            otherwise,
        };
        Ok(match kind {
            "if" => Node::If(control),
            "with" => Node::With(control),
            _ => Node::Range(control),
        })
    }

    /// A pipeline up to `}}` (`in_action`) or `)`.
    fn pipeline(&mut self, context: &str, in_action: bool) -> Result<Pipe> {
        let (vars, assign) = self.declarations(context)?;
        let mut cmds = Vec::new();
        loop {
            let cmd = self.command()?;
            if cmd.args.is_empty() {
                return self.fail(format!("missing value for {context}"));
            }
            cmds.push(cmd);
            match self.next().map(|t| t.tok) {
                Some(Tok::Pipe) => continue,
                Some(Tok::Close) if in_action => break,
                Some(Tok::RParen) if !in_action => break,
                _ => {
                    self.i -= 1;
                    return self.unexpected(context);
                }
            }
        }
        // Only a function can take the previous stage's value.
        for (stage, cmd) in cmds.iter().enumerate().skip(1) {
            if matches!(cmd.args[0].kind, Arg::Dot | Arg::Nil | Arg::Lit(_)) {
                return Err(ParseError {
                    pos: cmd.args[0].pos,
                    msg: format!("non executable command in pipeline stage {}", stage + 1),
                });
            }
        }
        Ok(Pipe { vars, assign, cmds })
    }

    /// `$x :=`, `$x =`, and in `range` `$i, $e :=`.
    fn declarations(&mut self, context: &str) -> Result<(Vec<String>, bool)> {
        let start = self.i;
        let mut vars = Vec::new();
        while let Some(Tok::Var(name)) = self.peek_tok() {
            let name = name.clone();
            self.i += 1;
            match self.next().map(|t| t.tok) {
                Some(Tok::Declare) => {
                    vars.push(name);
                    self.vars.extend(vars.iter().cloned());
                    return Ok((vars, false));
                }
                Some(Tok::Assign) if vars.is_empty() => {
                    if !self.vars.contains(&name) {
                        self.i = start;
                        return self.fail(format!("undefined variable {name:?}"));
                    }
                    return Ok((vec![name], true));
                }
                Some(Tok::Comma) if context == "range" && vars.is_empty() => vars.push(name),
                Some(Tok::Comma) => {
                    self.i -= 1;
                    return self.fail(format!("too many declarations in {context}"));
                }
                _ => break,
            }
        }
        // Not a declaration: the variable is the first operand.
        self.i = start;
        Ok((Vec::new(), false))
    }

    fn command(&mut self) -> Result<Command> {
        let mut args: Vec<Operand> = Vec::new();
        while let Some(tok) = self.peek() {
            if matches!(tok.tok, Tok::Pipe | Tok::Close | Tok::RParen) {
                break;
            }
            if !args.is_empty() && !tok.spaced {
                return self.unexpected("operand");
            }
            match self.operand()? {
                Some(op) => args.push(op),
                None => return self.unexpected("command"),
            }
        }
        let text = match (args.first(), args.last()) {
            (Some(first), Some(last)) => {
                self.src[first.pos..last.pos + last.text.len()].to_string()
            }
            _ => String::new(),
        };
        Ok(Command { args, text })
    }

    fn operand(&mut self) -> Result<Option<Operand>> {
        let Some(tok) = self.peek().cloned() else {
            return Ok(None);
        };
        let kind = match tok.tok {
            Tok::Ident(name) => {
                if !(self.is_func)(&name) {
                    return self.fail(format!("function {name:?} not defined"));
                }
                Arg::Func(name)
            }
            Tok::Dot => Arg::Dot,
            Tok::Nil => Arg::Nil,
            Tok::Bool(b) => Arg::Lit(Value::Bool(b)),
            Tok::Str(s) => Arg::Lit(Value::String(s)),
            Tok::Char(c) => Arg::Lit(Value::from(c as u32)),
            Tok::Number(text) => Arg::Lit(number(&text).ok_or_else(|| ParseError {
                pos: tok.pos,
                msg: format!("bad number syntax: {text:?}"),
            })?),
            Tok::Field(name) => Arg::Field(vec![name]),
            Tok::Var(name) => {
                if !self.vars.contains(&name) {
                    return self.fail(format!("undefined variable {name:?}"));
                }
                Arg::Var(name, Vec::new())
            }
            Tok::LParen => {
                self.i += 1;
                self.enter()?;
                let pipe = self.pipeline("parenthesized pipeline", false)?;
                self.depth -= 1;
                self.i -= 1;
                Arg::Sub(Box::new(pipe), Vec::new())
            }
            _ => return Ok(None),
        };
        self.i += 1;
        let mut kind = kind;
        while let Some(Token {
            tok: Tok::Field(name),
            spaced: false,
            ..
        }) = self.peek()
        {
            let name = name.clone();
            match &mut kind {
                Arg::Field(path) | Arg::Var(_, path) | Arg::Sub(_, path) => path.push(name),
                _ => {
                    return self.fail(format!(
                        "unexpected . after term {:?}",
                        &self.src[tok.pos..self.toks[self.i - 1].end]
                    ))
                }
            }
            self.i += 1;
        }
        let end = self.toks[self.i - 1].end;
        Ok(Some(Operand {
            pos: tok.pos,
            text: self.src[tok.pos..end].to_string(),
            kind,
        }))
    }
}

/// Go's number literals: decimal, `0x`/`0o`/`0b`/leading-zero octal integers
/// with `_` separators, and floats. A literal with `.` or an exponent is a float.
fn number(text: &str) -> Option<Value> {
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, clean.strip_prefix('+').unwrap_or(&clean)),
    };
    let lower = digits.to_ascii_lowercase();
    let radix = |prefix: &str, radix| lower.strip_prefix(prefix).map(|d| (d.to_string(), radix));
    let int = radix("0x", 16)
        .or_else(|| radix("0o", 8))
        .or_else(|| radix("0b", 2))
        .or_else(|| {
            (lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit()))
                .then(|| (lower[1..].to_string(), 8))
        })
        .or_else(|| {
            lower
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| (lower.clone(), 10))
        });
    if let Some((body, radix)) = int {
        let n = i128::from_str_radix(&body, radix).ok()?;
        let n = if neg { -n } else { n };
        return i64::try_from(n)
            .ok()
            .map(Value::from)
            .or_else(|| u64::try_from(n).ok().map(Value::from));
    }
    if !lower
        .bytes()
        .all(|b| b.is_ascii_digit() || b".e+-".contains(&b))
    {
        return None;
    }
    let f: f64 = clean.parse().ok()?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// How a token reads in an error message.
fn describe(src: &str, t: &Token) -> String {
    match &t.tok {
        Tok::Close => "\"}}\"".into(),
        Tok::Text(_) => "text".into(),
        _ => format!("<{}>", &src[t.pos..t.end]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_go_syntax() {
        for (text, want) in [
            ("42", "42"),
            ("-7", "-7"),
            ("0x1F", "31"),
            ("0o17", "15"),
            ("017", "15"),
            ("0b101", "5"),
            ("1_000", "1000"),
            ("1.5", "1.5"),
            ("1e3", "1000.0"),
            ("18446744073709551615", "18446744073709551615"),
        ] {
            assert_eq!(number(text).unwrap().to_string(), want, "{text}");
        }
        for bad in ["1x", "0xZ", "1.2.3", "99999999999999999999999"] {
            assert!(number(bad).is_none(), "{bad}");
        }
    }
}
