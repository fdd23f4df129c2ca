//! Splits template source into tokens: literal text, and the words inside each
//! `{{ }}` action. Trim markers and comments are resolved here, so the parser
//! never sees them.

/// One token kind. String and character literals arrive already decoded.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text(String),
    Open,
    Close,
    /// `.Name`, without the dot.
    Field(String),
    /// `$name`, with the dollar; `$` alone is the root data.
    Var(String),
    /// A function name or keyword.
    Ident(String),
    Str(String),
    /// The source text of a number; the parser decides int or float.
    Number(String),
    Char(char),
    Bool(bool),
    Nil,
    Dot,
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offsets of the token in the source.
    pub pos: usize,
    pub end: usize,
    /// Whether whitespace separates this token from the one before; `.A.B` is
    /// one operand but `.A .B` is two.
    pub spaced: bool,
}

/// A lexing failure at a byte offset.
#[derive(Debug)]
pub(crate) struct LexError {
    pub pos: usize,
    pub msg: String,
}

const OPEN: &str = "{{";
const CLOSE: &str = "}}";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `{{- ` trims the text before it; the space is required so `{{-3}}` stays a number.
fn has_left_trim(s: &str) -> bool {
    let mut it = s.chars();
    it.next() == Some('-') && it.next().is_some_and(is_space)
}

/// ` -}}` trims the text after it.
fn has_right_trim(s: &str) -> bool {
    let mut it = s.chars();
    it.next().is_some_and(is_space) && s[1..].starts_with("-}}")
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, LexError> {
    Lexer {
        src,
        i: 0,
        out: Vec::new(),
        parens: 0,
    }
    .run()
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    out: Vec<Token>,
    parens: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.src[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn push(&mut self, tok: Tok, pos: usize, spaced: bool) {
        self.out.push(Token {
            tok,
            pos,
            end: self.i,
            spaced,
        });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            msg: msg.into(),
        })
    }

    fn run(mut self) -> Result<Vec<Token>, LexError> {
        let mut trim_next = false;
        loop {
            let open = self.rest().find(OPEN).map(|o| self.i + o);
            let end = open.unwrap_or(self.src.len());
            let mut text = &self.src[self.i..end];
            let mut start = self.i;
            if trim_next {
                let trimmed = text.trim_start_matches(is_space);
                start += text.len() - trimmed.len();
                text = trimmed;
            }
            let left_trim = open.is_some_and(|o| has_left_trim(&self.src[o + OPEN.len()..]));
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.i = start + text.len();
                self.push(Tok::Text(text.to_string()), start, false);
            }
            let Some(open) = open else { break };
            self.i = open + OPEN.len();
            self.push(Tok::Open, open, false);
            if left_trim {
                self.i += 1;
            }
            trim_next = self.action()?;
        }
        Ok(self.out)
    }

    /// Lexes one action after its `{{`; returns whether it ended with ` -}}`.
    fn action(&mut self) -> Result<bool, LexError> {
        let action_pos = self.i;
        if self.rest().trim_start_matches(is_space).starts_with("/*") {
            return self.comment();
        }
        let mut spaced = false;
        loop {
            if self.rest().starts_with(CLOSE) {
                return self.close(action_pos, false, spaced);
            }
            if has_right_trim(self.rest()) {
                self.i += 2;
                return self.close(action_pos, true, true);
            }
            let Some(c) = self.peek() else {
                return self.err(action_pos, "unclosed action");
            };
            if is_space(c) {
                self.i += 1;
                spaced = true;
                continue;
            }
            self.token(c, spaced)?;
            spaced = false;
        }
    }

    fn close(&mut self, action_pos: usize, trim: bool, spaced: bool) -> Result<bool, LexError> {
        if self.parens > 0 {
            return self.err(action_pos, "unclosed left paren");
        }
        let pos = self.i;
        self.i += CLOSE.len();
        self.push(Tok::Close, pos, spaced);
        Ok(trim)
    }

    /// `{{/* ... */}}`: the comment must fill the whole action.
    fn comment(&mut self) -> Result<bool, LexError> {
        let pos = self.i;
        let body = self.rest().trim_start_matches(is_space);
        self.i = self.src.len() - body.len() + 2;
        let Some(end) = self.rest().find("*/") else {
            return self.err(pos, "unclosed comment");
        };
        self.i += end + 2;
        // The Open token is dropped: a comment produces nothing.
        self.out.pop();
        if self.rest().starts_with(CLOSE) {
            self.i += CLOSE.len();
            Ok(false)
        } else if has_right_trim(self.rest()) {
            self.i += 2 + CLOSE.len();
            Ok(true)
        } else {
            self.err(pos, "comment ends before closing delimiter")
        }
    }

    fn token(&mut self, c: char, spaced: bool) -> Result<(), LexError> {
        let pos = self.i;
        let next = self.rest()[c.len_utf8()..].chars().next();
        let tok = match c {
            '|' => self.single(Tok::Pipe),
            ',' => self.single(Tok::Comma),
            '=' => self.single(Tok::Assign),
            '(' => {
                self.parens += 1;
                self.single(Tok::LParen)
            }
            ')' => {
                if self.parens == 0 {
                    return self.err(pos, "unexpected right paren");
                }
                self.parens -= 1;
                self.single(Tok::RParen)
            }
            ':' => {
                if next != Some('=') {
                    return self.err(pos, "expected :=");
                }
                self.i += 2;
                Tok::Declare
            }
            '"' => Tok::Str(self.quoted('"', "unterminated quoted string")?),
            '\'' => {
                let s = self.quoted('\'', "unterminated character constant")?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) => Tok::Char(ch),
                    _ => {
                        return self.err(
                            pos,
                            format!("malformed character constant: {}", &self.src[pos..self.i]),
                        )
                    }
                }
            }
            '`' => {
                let Some(end) = self.rest()[1..].find('`') else {
                    return self.err(pos, "unterminated raw quoted string");
                };
                let s = self.rest()[1..1 + end].to_string();
                self.i += end + 2;
                Tok::Str(s)
            }
            '$' => {
                self.i += 1;
                self.word();
                self.terminated()?;
                Tok::Var(self.src[pos..self.i].to_string())
            }
            '.' if next.is_some_and(|n| n.is_ascii_digit()) => self.number()?,
            '.' if next.is_some_and(is_word) => {
                self.i += 1;
                self.word();
                self.terminated()?;
                Tok::Field(self.src[pos + 1..self.i].to_string())
            }
            '.' => self.single(Tok::Dot),
            '+' | '-' | '0'..='9' => self.number()?,
            c if is_word(c) => {
                self.word();
                self.terminated()?;
                match &self.src[pos..self.i] {
                    "true" => Tok::Bool(true),
                    "false" => Tok::Bool(false),
                    "nil" => Tok::Nil,
                    w => Tok::Ident(w.to_string()),
                }
            }
            c => {
                return self.err(
                    pos,
                    format!("unrecognized character in action: {}", describe(c)),
                )
            }
        };
        self.push(tok, pos, spaced);
        Ok(())
    }

    fn single(&mut self, tok: Tok) -> Tok {
        self.i += 1;
        tok
    }

    fn word(&mut self) {
        let len = self
            .rest()
            .find(|c: char| !is_word(c))
            .unwrap_or(self.rest().len());
        self.i += len;
    }

    /// A word must be followed by something that can end it, so `.A#` is an error
    /// rather than two tokens.
    fn terminated(&self) -> Result<(), LexError> {
        match self.peek() {
            None => Ok(()),
            Some(c) if is_space(c) || ".,|:()".contains(c) || self.rest().starts_with(CLOSE) => {
                Ok(())
            }
            Some(c) => self.err(self.i, format!("bad character {}", describe(c))),
        }
    }

    fn number(&mut self) -> Result<Tok, LexError> {
        let pos = self.i;
        if matches!(self.peek(), Some('+' | '-')) {
            self.i += 1;
        }
        let mut prev = ' ';
        while let Some(c) = self.peek() {
            let exponent_sign = matches!(c, '+' | '-') && matches!(prev, 'e' | 'E' | 'p' | 'P');
            if !(c.is_ascii_alphanumeric() || c == '_' || c == '.' || exponent_sign) {
                break;
            }
            prev = c;
            self.i += 1;
        }
        let text = &self.src[pos..self.i];
        if self.i == pos + 1 && !text.as_bytes()[0].is_ascii_digit() {
            return self.err(pos, format!("bad number syntax: {text:?}"));
        }
        Ok(Tok::Number(text.to_string()))
    }

    /// Reads a quoted literal (the lexer is on the opening quote) and decodes it.
    fn quoted(&mut self, quote: char, unterminated: &str) -> Result<String, LexError> {
        let pos = self.i;
        let mut escaped = false;
        for (off, c) in self.rest().char_indices().skip(1) {
            match c {
                '\n' => break,
                '\\' if !escaped => escaped = true,
                c if c == quote && !escaped => {
                    let body = &self.src[pos + 1..pos + off];
                    self.i = pos + off + 1;
                    return unescape(body, quote).map_err(|msg| LexError { pos, msg });
                }
                _ => escaped = false,
            }
        }
        self.err(pos, unterminated)
    }
}

/// Go's `%#U` rendering, used in error messages: `U+0023 '#'`.
fn describe(c: char) -> String {
    format!("U+{:04X} '{c}'", c as u32)
}

/// Decodes Go escape sequences (`\n`, `\x41`, `\101`, `\u00e9`, ...).
fn unescape(body: &str, quote: char) -> Result<String, String> {
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars();
    let bad = || "invalid syntax".to_string();
    while let Some(c) = chars.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = chars.next().ok_or_else(bad)?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            c if c == quote => Some(c as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(bad()),
        };
        let mut text: String = chars.by_ref().take(digits).collect();
        if radix == 8 {
            text.insert(0, e);
        }
        if text.len() != digits + usize::from(radix == 8) {
            return Err(bad());
        }
        let n = u32::from_str_radix(&text, radix).map_err(|_| bad())?;
        if matches!(e, 'u' | 'U') {
            let ch = char::from_u32(n).ok_or_else(bad)?;
            let mut buf = [0; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        } else {
            out.push(u8::try_from(n).map_err(|_| bad())?);
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 in string literal".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn splits_text_and_actions() {
        assert_eq!(
            toks("a{{.B.C | len}}d"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Field("B".into()),
                Tok::Field("C".into()),
                Tok::Pipe,
                Tok::Ident("len".into()),
                Tok::Close,
                Tok::Text("d".into()),
            ]
        );
    }

    #[test]
    fn trim_markers_eat_surrounding_whitespace() {
        assert_eq!(
            toks("a \n {{- 3 -}} \n b"),
            vec![
                Tok::Text("a".into()),
                Tok::Open,
                Tok::Number("3".into()),
                Tok::Close,
                Tok::Text("b".into())
            ]
        );
        // Without a space the dash is a sign.
        assert_eq!(
            toks("{{-3}}"),
            vec![Tok::Open, Tok::Number("-3".into()), Tok::Close]
        );
    }

    #[test]
    fn comments_vanish() {
        assert_eq!(
            toks("a {{- /* x */ -}} b"),
            vec![Tok::Text("a".into()), Tok::Text("b".into())]
        );
    }

    #[test]
    fn decodes_literals() {
        assert_eq!(
            toks(r#"{{"a\tb\x41\u00e9" `r\n` 'x' '\n' $ $v nil true}}"#),
            vec![
                Tok::Open,
                Tok::Str("a\tbAé".into()),
                Tok::Str("r\\n".into()),
                Tok::Char('x'),
                Tok::Char('\n'),
                Tok::Var("$".into()),
                Tok::Var("$v".into()),
                Tok::Nil,
                Tok::Bool(true),
                Tok::Close,
            ]
        );
    }

    #[test]
    fn reports_errors() {
        for (src, msg) in [
            ("{{.A", "unclosed action"),
            ("{{/* x", "unclosed comment"),
            ("{{/* x */ .A}}", "comment ends before closing delimiter"),
            ("{{\"abc}}", "unterminated quoted string"),
            ("{{`abc}}", "unterminated raw quoted string"),
            ("{{#}}", "unrecognized character in action: U+0023 '#'"),
            ("{{(.A}}", "unclosed left paren"),
            ("{{.A)}}", "unexpected right paren"),
            ("{{.A#}}", "bad character U+0023 '#'"),
            ("{{\"\\q\"}}", "invalid syntax"),
            ("{{$x : 1}}", "expected :="),
        ] {
            assert_eq!(lex(src).unwrap_err().msg, msg, "{src}");
        }
    }
}
