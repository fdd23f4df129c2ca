//! Printing JSON values the way Go's `fmt` prints the equivalent Go values
//! (`%v`, `Sprint`, `Sprintf`), plus Go's `encoding/json` number style.

use std::fmt::Write;

use serde_json::{Number, Value};

/// Go's name for the type a JSON value decodes to, used in error messages.
pub(crate) fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// `%v`: strings raw, `[a b]` for arrays, `map[k:v]` with sorted keys, `<nil>` for null.
pub(crate) fn print(v: &Value) -> String {
    let mut out = String::new();
    print_into(&mut out, v);
    out
}

fn print_into(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number(n)),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_into(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go's fmt sorts map keys.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push_str("map[");
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_into(out, v);
            }
            out.push(']');
        }
    }
}

/// Integers print as integers. A float that is a whole number below 1e21 also
/// prints as one: in Docker such fields are Go ints, and Go would print the
/// same digits. Other floats use Go's shortest `%v` form (`1.5`, `1e+21`).
pub(crate) fn number(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => {
            if f.fract() == 0.0 && f.abs() < 1e21 {
                format!("{f:.0}")
            } else {
                float_g(f, None)
            }
        }
        _ => n.to_string(),
    }
}

/// Significant digits (no trailing zeros) and the decimal point position:
/// value = 0.DIGITS × 10^point. `precision` rounds to that many digits.
fn digits(f: f64, precision: Option<usize>) -> (String, i32) {
    let sci = match precision {
        None => format!("{:e}", f.abs()),
        Some(p) => format!("{:.*e}", p.max(1) - 1, f.abs()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let digits = digits.trim_end_matches('0');
    if digits.is_empty() {
        return ("0".into(), 1);
    }
    (digits.to_string(), exp + 1)
}

fn special(f: f64) -> Option<String> {
    if f.is_nan() {
        Some("NaN".into())
    } else if f.is_infinite() {
        Some(if f > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

fn sign(f: f64) -> &'static str {
    if f.is_sign_negative() {
        "-"
    } else {
        ""
    }
}

/// `d.ddde+XX` from significant digits.
fn exp_form(digits: &str, point: i32, frac: Option<usize>) -> String {
    let mut s = digits[..1].to_string();
    let rest = &digits[1..];
    let frac = frac.unwrap_or(rest.len());
    if frac > 0 {
        s.push('.');
        s.push_str(rest);
        s.extend(std::iter::repeat_n('0', frac.saturating_sub(rest.len())));
    }
    let exp = if digits == "0" { 0 } else { point - 1 };
    let _ = write!(s, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    s
}

/// Plain decimal form from significant digits with `frac` digits after the point.
fn fixed_form(digits: &str, point: i32, frac: usize) -> String {
    let digit = |i: i32| -> char {
        if i < 0 || i as usize >= digits.len() {
            '0'
        } else {
            digits.as_bytes()[i as usize] as char
        }
    };
    let mut s: String = if point <= 0 {
        "0".into()
    } else {
        (0..point).map(digit).collect()
    };
    if frac > 0 {
        s.push('.');
        s.extend((0..frac as i32).map(|i| digit(point + i)));
    }
    s
}

/// Go's `%g` (and `%v` when `precision` is `None`): exponent form when the
/// exponent is below -4 or at least the precision (6 for shortest).
pub(crate) fn float_g(f: f64, precision: Option<usize>) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, point) = digits(f, precision);
    let nd = digits.len() as i32;
    let mut eprec = precision.map_or(nd, |p| p.max(1) as i32);
    if eprec > nd && nd >= point {
        eprec = nd;
    }
    if precision.is_none() {
        eprec = 6;
    }
    let exp = point - 1;
    let body = if digits != "0" && (exp < -4 || exp >= eprec) {
        exp_form(&digits, point, None)
    } else {
        fixed_form(&digits, point, (nd - point).max(0) as usize)
    };
    format!("{}{body}", sign(f))
}

/// Go's `%e` with a precision (6 by default).
pub(crate) fn float_e(f: f64, precision: usize) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    let (digits, point) = digits(f, Some(precision + 1));
    format!("{}{}", sign(f), exp_form(&digits, point, Some(precision)))
}

/// Go's `%f` with a precision (6 by default).
pub(crate) fn float_f(f: f64, precision: usize) -> String {
    if let Some(s) = special(f) {
        return s;
    }
    format!("{f:.precision$}")
}

/// How Go's `encoding/json` writes a float64: plain decimals in [1e-6, 1e21),
/// otherwise exponent form without zero padding (`1e+21`, `1e-7`).
pub(crate) fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs == 0.0 || (1e-6..1e21).contains(&abs) {
        let (digits, point) = digits(f, None);
        let frac = (digits.len() as i32 - point).max(0) as usize;
        return format!("{}{}", sign(f), fixed_form(&digits, point, frac));
    }
    let (digits, point) = digits(f, None);
    let s = exp_form(&digits, point, None);
    let s = s.replace("e-0", "e-").replace("e+0", "e+");
    format!("{}{s}", sign(f))
}

/// Go's `strconv.Quote`.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprint`: a space between operands when neither is a string.
pub(crate) fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 && !arg.is_string() && !args[i - 1].is_string() {
            out.push(' ');
        }
        print_into(&mut out, arg);
    }
    out
}

/// Go's `fmt.Sprintln`: spaces between all operands and a final newline.
pub(crate) fn sprintln(args: &[Value]) -> String {
    let mut out: Vec<String> = args.iter().map(print).collect::<Vec<_>>();
    out.push(String::new());
    let mut s = out.join(" ");
    s.pop();
    s.push('\n');
    s
}

/// One parsed `%` directive.
#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %d %q %t %x %X %o
/// %b %c %e %f %g %T %%`, flags `-+0 #`, width and precision. Mistakes print
/// in Go's style (`%!d(string=x)`, `%!s(MISSING)`) rather than failing.
/// Two deliberate leniencies: `%s` prints any value as `%v` would (Go says
/// `%!s(int=5)`), and `%d` accepts a whole-number float, because JSON does
/// not tell ints from floats the way Docker's Go structs do.
pub(crate) fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut args_used = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let read_num = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(
                    n.unwrap_or(0)
                        .saturating_mul(10)
                        .saturating_add(d as usize)
                        .min(10_000),
                );
                chars.next();
            }
            n
        };
        spec.width = read_num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(read_num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(args_used) else {
            let _ = write!(out, "%!{verb}(MISSING)");
            continue;
        };
        args_used += 1;
        out.push_str(&directive(&spec, verb, arg));
    }
    if args_used < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[args_used..]
            .iter()
            .map(|a| format!("{}={}", go_type(a), print(a)))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}

fn directive(spec: &Spec, verb: char, arg: &Value) -> String {
    let int = arg.as_i64().or_else(|| {
        arg.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
            .map(|f| f as i64)
    });
    let bad = || format!("%!{verb}({}={})", go_type(arg), print(arg));
    let (body, numeric) = match (verb, arg) {
        ('T', _) => (go_type(arg).to_string(), false),
        // Go prints a nil argument only for %v and %T.
        ('v', Value::Null) => ("<nil>".to_string(), false),
        (_, Value::Null) => return format!("%!{verb}(<nil>)"),
        ('v' | 's', Value::String(s)) => (truncate(s, spec.precision), false),
        ('v', Value::Number(n)) if n.is_f64() && spec.precision.is_some() => {
            (float_g(n.as_f64().unwrap_or(0.0), spec.precision), true)
        }
        ('v' | 's', Value::Number(_)) => (print(arg), true),
        ('v' | 's', _) => (print(arg), false),
        ('t', Value::Bool(b)) => (b.to_string(), false),
        ('q', Value::String(s)) => (quote(s), false),
        ('q', _) if int.is_some() => (
            format!(
                "'{}'",
                char::from_u32(int.unwrap_or(0) as u32).unwrap_or('\u{fffd}')
            ),
            false,
        ),
        ('c', _) if int.is_some() => (
            char::from_u32(int.unwrap_or(0) as u32)
                .unwrap_or('\u{fffd}')
                .to_string(),
            false,
        ),
        ('x' | 'X', Value::String(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            (if verb == 'X' { hex.to_uppercase() } else { hex }, false)
        }
        ('d' | 'x' | 'X' | 'o' | 'b', _) => match int.or_else(|| arg.as_u64().map(|u| u as i64)) {
            Some(_) if arg.as_u64().is_some_and(|u| u > i64::MAX as u64) => (
                radix(arg.as_u64().unwrap_or(0) as i128, verb, spec.sharp),
                true,
            ),
            Some(i) => (radix(i as i128, verb, spec.sharp), true),
            None => return bad(),
        },
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(0.0);
            let s = match verb {
                'e' | 'E' => float_e(f, spec.precision.unwrap_or(6)),
                'f' | 'F' => float_f(f, spec.precision.unwrap_or(6)),
                _ => float_g(f, spec.precision),
            };
            (
                if verb.is_uppercase() {
                    s.to_uppercase()
                } else {
                    s
                },
                true,
            )
        }
        _ => return bad(),
    };
    pad(spec, body, numeric)
}

fn radix(i: i128, verb: char, sharp: bool) -> String {
    let (neg, n) = (i < 0, i.unsigned_abs());
    let digits = match verb {
        'x' => format!("{}{n:x}", if sharp { "0x" } else { "" }),
        'X' => format!("{}{n:X}", if sharp { "0X" } else { "" }),
        'o' => format!("{}{n:o}", if sharp { "0" } else { "" }),
        'b' => format!("{n:b}"),
        _ => n.to_string(),
    };
    format!("{}{digits}", if neg { "-" } else { "" })
}

fn truncate(s: &str, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s.to_string(),
    }
}

/// Applies sign flags and width; zero padding goes after the sign, as in Go.
fn pad(spec: &Spec, mut body: String, numeric: bool) -> String {
    if numeric && !body.starts_with('-') {
        if spec.plus {
            body.insert(0, '+');
        } else if spec.space {
            body.insert(0, ' ');
        }
    }
    let len = body.chars().count();
    let Some(width) = spec.width.filter(|w| *w > len) else {
        return body;
    };
    let fill = width - len;
    if spec.minus {
        body + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let split = usize::from(body.starts_with(['-', '+', ' ']));
        format!("{}{}{}", &body[..split], "0".repeat(fill), &body[split..])
    } else {
        " ".repeat(fill) + &body
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prints_like_go_fmt() {
        assert_eq!(print(&json!(["a", 1, null, true])), "[a 1 <nil> true]");
        assert_eq!(
            print(&json!({"b": 2, "a": {"c": []}})),
            "map[a:map[c:[]] b:2]"
        );
        assert_eq!(print(&json!(1.5)), "1.5");
        assert_eq!(print(&json!(3.0)), "3");
        assert_eq!(print(&json!(1e21)), "1e+21");
        assert_eq!(print(&json!(0.00001)), "1e-05");
        assert_eq!(print(&json!(0.0001)), "0.0001");
        assert_eq!(print(&json!(1234567.5)), "1.2345675e+06");
        assert_eq!(print(&json!(u64::MAX)), "18446744073709551615");
    }

    #[test]
    fn float_verbs() {
        assert_eq!(float_g(100000.0, None), "100000");
        assert_eq!(float_g(1e6, None), "1e+06");
        assert_eq!(float_g(-2.5e-7, None), "-2.5e-07");
        assert_eq!(float_g(1.23456, Some(3)), "1.23");
        assert_eq!(float_g(1234.0, Some(2)), "1.2e+03");
        assert_eq!(float_e(1234.5678, 2), "1.23e+03");
        assert_eq!(float_f(2.0 / 3.0, 2), "0.67");
        assert_eq!(float_g(f64::INFINITY, None), "+Inf");
    }

    #[test]
    fn json_numbers_like_encoding_json() {
        assert_eq!(json_float(3.0), "3");
        assert_eq!(json_float(0.1), "0.1");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(123456789.0), "123456789");
    }

    #[test]
    fn sprintf_verbs_and_mistakes() {
        let args = [json!("ab"), json!(42), json!(1.5), json!(true)];
        assert_eq!(sprintf("%s|%d|%v|%t", &args), "ab|42|1.5|true");
        assert_eq!(
            sprintf(
                "[%5s][%-5s][%.1s][%05d][%+d][%x][%X][%#x][%o][%b]",
                &[
                    json!("ab"),
                    json!("ab"),
                    json!("ab"),
                    json!(-42),
                    json!(7),
                    json!(255),
                    json!("hi"),
                    json!(255),
                    json!(8),
                    json!(5)
                ]
            ),
            "[   ab][ab   ][a][-0042][+7][ff][6869][0xff][10][101]"
        );
        assert_eq!(
            sprintf(
                "%.2f %8.3f %e %g %q %c %%",
                &[
                    json!(1.23456),
                    json!(2.0),
                    json!(1500.0),
                    json!(0.5),
                    json!("a\"b\n"),
                    json!(65)
                ]
            ),
            "1.23    2.000 1.500000e+03 0.5 \"a\\\"b\\n\" A %"
        );
        assert_eq!(
            sprintf("%d %s", &[json!("x")]),
            "%!d(string=x) %!s(MISSING)"
        );
        assert_eq!(sprintf("%s", &[json!("a"), json!(1)]), "a%!(EXTRA int=1)");
        assert_eq!(sprintf("%v", &[json!(["a", "b"])]), "[a b]");
        assert_eq!(sprintf("%d", &[json!(3.0)]), "3");
        assert_eq!(sprintf("%", &[]), "%!(NOVERB)");
        assert_eq!(
            sprintf("%v %s %5v|", &[Value::Null, Value::Null, Value::Null]),
            "<nil> %!s(<nil>) <nil>|"
        );
        assert_eq!(
            sprintf("%T %T %T", &[json!("a"), json!(1), Value::Null]),
            "string int <nil>"
        );
    }

    #[test]
    fn sprint_spacing() {
        assert_eq!(
            sprint(&[json!("a"), json!(1), json!(2), json!("b")]),
            "a1 2b"
        );
        assert_eq!(sprintln(&[json!("a"), json!(1)]), "a 1\n");
        assert_eq!(quote("\u{1}é"), "\"\\x01é\"");
    }
}
