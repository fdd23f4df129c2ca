//! Walks the syntax tree over the data, writing output. Semantics follow Go's
//! `text/template` with `map[string]interface{}` data.

use serde_json::Value;

use crate::format::{self, go_type};
use crate::funcs::{nulls, truth, Function, Val};
use crate::parse::{Arg, Command, Control, Node, Operand, Pipe};
use crate::{Error, Template};

/// How deeply blocks may nest, counted across `{{template}}` calls, before a
/// call is refused. A self-recursive template stops here instead of
/// overflowing the stack; the parser bounds the nesting inside one template.
const MAX_DEPTH: usize = 100;

/// An execution failure before the template location is attached.
struct Failure {
    pos: usize,
    context: String,
    msg: String,
}

type Result<T> = std::result::Result<T, Failure>;

fn fail<T>(at: &Operand, msg: impl Into<String>) -> Result<T> {
    Err(Failure {
        pos: at.pos,
        context: at.text.clone(),
        msg: msg.into(),
    })
}

fn call_failed(at: &Operand, context: &str, name: &str, err: String) -> Failure {
    Failure {
        pos: at.pos,
        context: context.to_string(),
        msg: format!("error calling {name}: {err}"),
    }
}

/// What a list of nodes asks of the enclosing `range`.
#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) fn execute(t: &Template, data: &Value) -> std::result::Result<String, Error> {
    let mut state = State {
        t,
        name: String::new(),
        vars: vec![("$".into(), Some(data.clone()))],
        out: String::new(),
        depth: 0,
    };
    let dot = Some(data.clone());
    match state.walk(&dot, &t.root) {
        Ok(_) => Ok(state.out),
        Err(f) => {
            let (line, col) = t.location(f.pos);
            Err(Error::Exec {
                line,
                col,
                template: state.name,
                context: f.context,
                message: f.msg,
            })
        }
    }
}

struct State<'t> {
    t: &'t Template,
    /// The template being executed, for error messages.
    name: String,
    /// Variables in scope, innermost last.
    vars: Vec<(String, Val)>,
    out: String,
    depth: usize,
}

impl State<'_> {
    fn walk(&mut self, dot: &Val, nodes: &[Node]) -> Result<Flow> {
        self.depth += 1;
        for node in nodes {
            let flow = self.node(dot, node)?;
            if flow != Flow::Normal {
                self.depth -= 1;
                return Ok(flow);
            }
        }
        self.depth -= 1;
        Ok(Flow::Normal)
    }

    fn node(&mut self, dot: &Val, node: &Node) -> Result<Flow> {
        match node {
            Node::Text(s) => self.out.push_str(s),
            Node::Action(pipe) => {
                let v = self.pipe(dot, pipe)?;
                if pipe.vars.is_empty() {
                    match v {
                        Some(v) => self.out.push_str(&format::print(&v)),
                        None => self.out.push_str("<no value>"),
                    }
                }
            }
            Node::If(c) | Node::With(c) => {
                let scope = self.vars.len();
                let v = self.pipe(dot, &c.pipe)?;
                let flow = match (truth(&v), matches!(node, Node::With(_))) {
                    (true, true) => self.walk(&v, &c.body)?,
                    (true, false) => self.walk(dot, &c.body)?,
                    (false, _) => self.walk(dot, c.otherwise.as_deref().unwrap_or_default())?,
                };
                self.vars.truncate(scope);
                return Ok(flow);
            }
            Node::Range(c) => self.range(dot, c)?,
            Node::Template { pos, name, pipe } => {
                self.call_template(dot, *pos, name, pipe.as_ref())?
            }
            Node::Break => return Ok(Flow::Break),
            Node::Continue => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Val, c: &Control) -> Result<()> {
        let scope = self.vars.len();
        let value = self.pipe_value(dot, &c.pipe)?;
        // Go ranges over arrays, maps in sorted key order, and (since 1.22) an
        // integer n as 0..n.
        let items: Box<dyn Iterator<Item = (Value, Value)>> = match value {
            Some(Value::Array(items)) => Box::new(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (Value::from(i), v)),
            ),
            Some(Value::Object(map)) => {
                let mut entries: Vec<_> = map.into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                Box::new(entries.into_iter().map(|(k, v)| (Value::String(k), v)))
            }
            Some(Value::Number(n)) if n.as_u64().is_some() || n.as_i64().is_some() => {
                let n = n.as_u64().unwrap_or(0);
                Box::new((0..n).map(|i| (Value::from(i), Value::from(i))))
            }
            None | Some(Value::Null) => Box::new(std::iter::empty()),
            Some(v) => {
                return fail(
                    &c.pipe.cmds[0].args[0],
                    format!("range can't iterate over {}", format::print(&v)),
                )
            }
        };
        let mut items = items.peekable();
        if items.peek().is_none() {
            if let Some(otherwise) = &c.otherwise {
                self.walk(dot, otherwise)?;
            }
            return Ok(());
        }
        for (key, item) in items {
            match c.pipe.vars.as_slice() {
                [elem] => self.vars.push((elem.clone(), Some(item.clone()))),
                [k, elem] => {
                    self.vars.push((k.clone(), Some(key)));
                    self.vars.push((elem.clone(), Some(item.clone())));
                }
                _ => {}
            }
            let flow = self.walk(&Some(item), &c.body)?;
            self.vars.truncate(scope);
            if flow == Flow::Break {
                break;
            }
        }
        Ok(())
    }

    fn call_template(
        &mut self,
        dot: &Val,
        pos: usize,
        name: &str,
        pipe: Option<&Pipe>,
    ) -> Result<()> {
        let context = format!("{{{{template {}}}}}", format::quote(name));
        let Some(body) = self.t.defines.get(name) else {
            return Err(Failure {
                pos,
                context,
                msg: format!("template {name:?} not defined"),
            });
        };
        if self.depth >= MAX_DEPTH {
            return Err(Failure {
                pos,
                context,
                msg: format!("exceeded maximum template depth ({MAX_DEPTH})"),
            });
        }
        let new_dot = match pipe {
            Some(p) => self.pipe(dot, p)?,
            None => None,
        };
        let vars = std::mem::replace(&mut self.vars, vec![("$".into(), new_dot.clone())]);
        let outer = std::mem::replace(&mut self.name, name.to_string());
        self.walk(&new_dot, body)?;
        self.name = outer;
        self.vars = vars;
        Ok(())
    }

    /// Evaluates a pipeline and binds its declared or assigned variables.
    fn pipe(&mut self, dot: &Val, pipe: &Pipe) -> Result<Val> {
        let v = self.pipe_value(dot, pipe)?;
        if let Some(name) = pipe.vars.first() {
            if pipe.assign {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v.clone();
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    /// Evaluates a pipeline without binding variables (`range` binds its own).
    fn pipe_value(&mut self, dot: &Val, pipe: &Pipe) -> Result<Val> {
        let mut last: Option<Val> = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(dot, cmd, last)?);
        }
        Ok(last.flatten())
    }

    /// Runs one command; `prev` is the previous pipeline stage's value, passed
    /// as the final argument.
    fn command(&mut self, dot: &Val, cmd: &Command, prev: Option<Val>) -> Result<Val> {
        let first = &cmd.args[0];
        if let Arg::Func(name) = &first.kind {
            return self.call(dot, first, &cmd.text, name, &cmd.args[1..], prev);
        }
        if cmd.args.len() > 1 || prev.is_some() {
            return match first.kind {
                Arg::Field(_) | Arg::Var(..) | Arg::Sub(..) => fail(
                    first,
                    format!("{} is not a method but has arguments", first.text),
                ),
                _ => fail(
                    first,
                    format!("can't give argument to non-function {}", first.text),
                ),
            };
        }
        if let Arg::Nil = first.kind {
            return fail(first, "nil is not a command");
        }
        self.arg(dot, first)
    }

    fn arg(&mut self, dot: &Val, op: &Operand) -> Result<Val> {
        match &op.kind {
            Arg::Dot => Ok(dot.clone()),
            Arg::Nil => Ok(Some(Value::Null)),
            Arg::Lit(v) => Ok(Some(v.clone())),
            Arg::Field(path) => self.fields(dot, path, op),
            Arg::Var(name, path) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map_or(&None, |(_, v)| v);
                self.fields(v, path, op)
            }
            Arg::Func(name) => self.call(dot, op, &op.text, name, &[], None),
            Arg::Sub(pipe, path) => {
                let v = self.pipe(dot, pipe)?;
                self.fields(&v, path, op)
            }
        }
    }

    /// Follows `.A.B.C` from a receiver. A missing key gives "no value", and so
    /// does any field of "no value", as with Go maps.
    fn fields(&self, v: &Val, path: &[String], op: &Operand) -> Result<Val> {
        // Walk by reference so only the selected value is copied.
        let mut cur = v.as_ref();
        for name in path {
            cur = match cur {
                None => None,
                Some(Value::Object(map)) => map.get(name),
                Some(Value::Null) => {
                    return fail(op, format!("nil pointer evaluating interface {{}}.{name}"))
                }
                Some(other) => {
                    return fail(
                        op,
                        format!("can't evaluate field {name} in type {}", go_type(other)),
                    )
                }
            };
        }
        Ok(cur.cloned())
    }

    /// Calls function `name` named by operand `at`; a failure inside the
    /// function is reported against `context`, the whole call, as Go does.
    fn call(
        &mut self,
        dot: &Val,
        at: &Operand,
        context: &str,
        name: &str,
        args: &[Operand],
        prev: Option<Val>,
    ) -> Result<Val> {
        let Some(func) = self.t.funcs.get(name).copied() else {
            return fail(at, format!("{name:?} is not a defined function"));
        };
        let argc = args.len() + usize::from(prev.is_some());
        match func {
            Function::And | Function::Or => {
                if argc == 0 {
                    return fail(
                        at,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    );
                }
                // Stops at the first value that decides the result, and returns it.
                let stop_when = matches!(func, Function::Or);
                let mut v = None;
                for op in args {
                    v = self.arg(dot, op)?;
                    if truth(&v) == stop_when {
                        return Ok(v);
                    }
                }
                Ok(prev.unwrap_or(v))
            }
            Function::Builtin { f, min, max } => {
                if argc < min || max.is_some_and(|m| argc > m) {
                    let want = match max {
                        Some(m) if m == min => format!("{m}"),
                        Some(m) => format!("{min} to {m}"),
                        None => format!("at least {min}"),
                    };
                    return fail(
                        at,
                        format!("wrong number of args for {name}: want {want} got {argc}"),
                    );
                }
                let values = self.args(dot, args, prev)?;
                f(&values).map_err(|e| call_failed(at, context, name, e))
            }
            Function::User(f) => {
                let values = self.args(dot, args, prev)?;
                f(&nulls(&values))
                    .map(Some)
                    .map_err(|e| call_failed(at, context, name, e))
            }
        }
    }

    fn args(&mut self, dot: &Val, args: &[Operand], prev: Option<Val>) -> Result<Vec<Val>> {
        let mut values = args
            .iter()
            .map(|op| self.arg(dot, op))
            .collect::<Result<Vec<_>>>()?;
        values.extend(prev);
        Ok(values)
    }
}
