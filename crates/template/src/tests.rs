//! End-to-end behaviour: template + data -> output, and the errors.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::{Error, Template};

fn inspect() -> Value {
    json!({
        "Id": "sha256:abc123",
        "Name": "/web",
        "Architecture": "amd64",
        "RepoTags": ["busybox:latest", "busybox:1.36"],
        "RootFS": {"Type": "layers", "Layers": ["sha256:l1", "sha256:l2"]},
        "Config": {"Cmd": ["sh"], "Labels": {"b": "2", "a.b": "1"}, "Env": null, "Tty": false},
        "State": {"Status": "running", "Pid": 4242, "Running": true, "Health": null},
        "Size": 1234567,
        "Ratio": 0.25,
        "Empty": [],
        "Count": 3,
    })
}

fn render(src: &str, data: &Value) -> Result<String, Error> {
    Template::parse(src)?.render(data)
}

fn check(cases: &[(&str, &str)]) {
    let data = inspect();
    for (src, want) in cases {
        match render(src, &data) {
            Ok(got) => assert_eq!(&got, want, "template {src:?}"),
            Err(e) => panic!("template {src:?} failed: {e}"),
        }
    }
}

#[test]
fn docker_examples() {
    check(&[
        ("{{.Id}}", "sha256:abc123"),
        ("{{.RootFS.Layers}}", "[sha256:l1 sha256:l2]"),
        (
            "{{json .Config}}",
            r#"{"Cmd":["sh"],"Labels":{"b":"2","a.b":"1"},"Env":null,"Tty":false}"#,
        ),
        ("{{.Architecture}}", "amd64"),
        (
            "{{range .RepoTags}}{{.}} {{end}}",
            "busybox:latest busybox:1.36 ",
        ),
        (r#"{{index .Config.Labels "a.b"}}"#, "1"),
        (
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
            "a.b=1;b=2;",
        ),
        ("{{.State.Pid}}", "4242"),
        (r#"{{if eq .State.Status "running"}}up{{end}}"#, "up"),
        (r#"{{printf "%-10s|" .Name}}"#, "/web      |"),
        (
            "{{.Config}}",
            "map[Cmd:[sh] Env:<nil> Labels:map[a.b:1 b:2] Tty:false]",
        ),
        ("{{.Size}} {{.Ratio}}", "1234567 0.25"),
    ]);
}

#[test]
fn missing_and_null_values() {
    check(&[
        ("{{.Missing}}", "<no value>"),
        ("{{.Missing.Deeper}}", "<no value>"),
        ("{{.State.Health}}", "<nil>"),
        (r#"{{index .Config.Labels "nope"}}"#, "<no value>"),
        ("{{print .Missing}}", "<nil>"),
        ("{{if .Missing}}y{{else}}n{{end}}", "n"),
        ("{{json .Missing}}", "null"),
    ]);
}

#[test]
fn text_trim_and_comments() {
    check(&[
        ("a {{- .Count -}} b", "a3b"),
        ("a\n  {{- /* gone */ -}}\n  b", "ab"),
        ("x{{/* c */}}y", "xy"),
        ("{{- 3}}", "3"),
        ("{{-3}}", "-3"),
        ("no actions", "no actions"),
        ("", ""),
    ]);
}

#[test]
fn literals_and_variables() {
    check(&[
        (r#"{{"a" | printf "%s-%s" "b"}}"#, "b-a"),
        ("{{.Count | and 1}} {{0 | or .Missing}}", "3 0"),
        (
            r#"{{"a\tb"}}|{{`raw\n`}}|{{'a'}}|{{1.5}}|{{0x10}}|{{true}}|{{1e3}}|{{.5}}|{{-0x10}}"#,
            "a\tb|raw\\n|97|1.5|16|true|1000|0.5|-16",
        ),
        ("{{$x := .Count}}{{$x}}", "3"),
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{$.Id}}", "sha256:abc123"),
        ("{{with .State}}{{$.Name}} {{.Pid}}{{end}}", "/web 4242"),
        ("{{$s := .State}}{{$s.Status}}", "running"),
        (
            "{{(.State).Status}} {{(index .RepoTags 1)}}",
            "running busybox:1.36",
        ),
        ("{{.Count | printf \"%03d\"}}", "003"),
        ("{{.RepoTags | len | printf \"%d tags\"}}", "2 tags"),
        ("{{print nil}}", "<nil>"),
    ]);
}

#[test]
fn control_structures() {
    check(&[
        (
            "{{if .Count -}}\n  yes\n{{- else -}}\n  no\n{{- end}}",
            "yes",
        ),
        (
            "{{$n := 0}}{{range .RepoTags}}{{$n = .}}{{$t := 1}}{{end}}{{$n}}",
            "busybox:1.36",
        ),
        ("{{if .Empty}}a{{else if .Count}}b{{else}}c{{end}}", "b"),
        ("{{if false}}a{{else if false}}b{{else}}c{{end}}", "c"),
        ("{{with .Missing}}a{{else}}b{{end}}", "b"),
        ("{{with .Missing}}a{{else with .Count}}{{.}}{{end}}", "3"),
        ("{{range .Empty}}x{{else}}empty{{end}}", "empty"),
        ("{{range .Missing}}x{{else}}none{{end}}", "none"),
        (
            "{{range $i, $t := .RepoTags}}{{$i}}:{{$t}} {{end}}",
            "0:busybox:latest 1:busybox:1.36 ",
        ),
        (
            "{{range $t := .RepoTags}}{{$t}};{{end}}",
            "busybox:latest;busybox:1.36;",
        ),
        ("{{range .Config.Labels}}{{.}}{{end}}", "12"),
        ("{{range 3}}{{.}}{{end}}", "012"),
        (
            "{{range .RepoTags}}{{if eq . \"busybox:latest\"}}{{continue}}{{end}}{{.}}{{end}}",
            "busybox:1.36",
        ),
        (
            "{{range $i, $e := .RepoTags}}{{if $i}}{{break}}{{end}}{{$e}}{{end}}",
            "busybox:latest",
        ),
        ("{{if $x := .Count}}{{$x}}{{end}}", "3"),
        (
            "{{define \"t\"}}[{{.}}]{{end}}{{template \"t\" .Count}}{{template \"t\"}}",
            "[3][<no value>]",
        ),
        ("{{block \"b\" .Name}}<{{.}}>{{end}}", "</web>"),
    ]);
}

#[test]
fn builtin_functions() {
    check(&[
        (
            "{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" .Count}} {{or 0 false}}",
            "0 2 3 false",
        ),
        ("{{and false .Missing.x}}", "false"),
        ("{{not .Empty}} {{not .Count}}", "true false"),
        (
            "{{len .Name}} {{len .RepoTags}} {{len .Config.Labels}}",
            "4 2 2",
        ),
        (
            "{{index .RepoTags 0}} {{index . \"RootFS\" \"Layers\" 1}} {{index .Name 1}}",
            "busybox:latest sha256:l2 119",
        ),
        (
            "{{slice .Name 1}} {{slice .Name 1 3}} {{slice .RepoTags 1}} {{slice .RepoTags 0 1 2}}",
            "web we [busybox:1.36] [busybox:latest]",
        ),
        (
            "{{eq .Count 1 2 3}} {{eq .Count 3.0}} {{ne .Name \"/web\"}} {{eq .Missing nil}}",
            "true true false true",
        ),
        (
            "{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge .Count 4}}",
            "true true true false",
        ),
        (
            "{{print \"a\" 1 2 \"b\"}}|{{println 1 \"x\"}}|",
            "a1 2b|1 x\n|",
        ),
        (
            "{{printf \"%5.2f|%x|%q|%v|%t\" .Ratio 255 \"hi\" .RepoTags .State.Running}}",
            " 0.25|ff|\"hi\"|[busybox:latest busybox:1.36]|true",
        ),
        (
            "{{html \"<a&b>\"}} {{js \"it's\"}} {{urlquery \"a b\"}}",
            "&lt;a&amp;b&gt; it\\'s a+b",
        ),
    ]);
}

#[test]
fn docker_functions() {
    check(&[
        ("{{join .RepoTags \", \"}}", "busybox:latest, busybox:1.36"),
        (
            "{{split \"a:b:c\" \":\"}} {{len (split .Id \":\")}}",
            "[a b c] 2",
        ),
        (
            "{{lower \"AbC\"}} {{upper .Architecture}} {{title \"hello world\"}}",
            "abc AMD64 Hello World",
        ),
        ("{{truncate .Id 6}}|{{truncate \"ab\" 5}}", "sha256|ab"),
        ("[{{pad .Name 1 2}}][{{pad \"\" 1 1}}]", "[ /web  ][]"),
        (
            "{{json .RepoTags}} {{json .Ratio}} {{json 1}}",
            r#"["busybox:latest","busybox:1.36"] 0.25 1"#,
        ),
        ("{{.Name | upper}}", "/WEB"),
    ]);
}

#[test]
fn extra_functions() {
    let t = Template::parse_with_funcs(
        "{{shout .Name}} {{.Name | shout}} {{upper .Name}}",
        &[
            ("shout", |args| {
                Ok(Value::String(format!(
                    "{}!",
                    args[0].as_str().unwrap_or("?")
                )))
            }),
            ("upper", |_| Err("no upper here".into())),
        ],
    )
    .unwrap();
    let err = t.render(&inspect()).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"template: :1:36: executing "" at <upper .Name>: error calling upper: no upper here"#
    );
    let t = Template::parse_with_funcs(
        "{{shout .Name}} {{.Missing | shout}}",
        &[("shout", |args| Ok(Value::String(format!("{}!", args[0]))))],
    )
    .unwrap();
    assert_eq!(t.render(&inspect()).unwrap(), r#""/web"! null!"#);
}

fn parse_err(src: &str) -> String {
    match Template::parse(src) {
        Err(e @ Error::Parse { .. }) => e.to_string(),
        other => panic!("{src:?}: expected a parse error, got {other:?}"),
    }
}

#[test]
fn parse_errors() {
    for (src, want) in [
        ("{{.Id", "template: :1: unclosed action"),
        ("a\n{{.Id", "template: :2: unclosed action"),
        (
            "{{nope .Id}}",
            r#"template: :1: function "nope" not defined"#,
        ),
        ("{{.Id | }}", "template: :1: missing value for command"),
        ("{{}}", "template: :1: missing value for command"),
        (
            "{{.Id | \"x\"}}",
            "template: :1: non executable command in pipeline stage 2",
        ),
        ("{{if .Id}}x", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{else}}", "template: :1: unexpected {{else}}"),
        ("{{$x}}", r#"template: :1: undefined variable "$x""#),
        ("{{$x = 1}}", r#"template: :1: undefined variable "$x""#),
        (
            "{{if 1}}{{$x := 1}}{{end}}{{$x}}",
            r#"template: :1: undefined variable "$x""#,
        ),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        (
            "{{range .A}}{{else}}{{continue}}{{end}}",
            "template: :1: {{continue}} outside {{range}}",
        ),
        (
            "{{$a, $b := 1}}",
            "template: :1: too many declarations in command",
        ),
        (
            "{{range $a, $b, $c := 1}}{{end}}",
            "template: :1: too many declarations in range",
        ),
        ("{{.A\"x\"}}", "template: :1: bad character U+0022 '\"'"),
        (
            "{{\"a\"\"b\"}}",
            "template: :1: unexpected <\"b\"> in operand",
        ),
        (
            "{{template .X}}",
            "template: :1: unexpected <.X> in template clause",
        ),
        (
            "{{if 1}}{{else}}{{else}}{{end}}",
            "template: :1: expected end; found {{else}} in if",
        ),
        ("{{1x}}", "template: :1: bad number syntax: \"1x\""),
        (
            "{{\"a\".B}}",
            "template: :1: unexpected . after term \"\\\"a\\\"\"",
        ),
        (
            "{{if 1}}{{define \"x\"}}{{end}}{{end}}",
            "template: :1: unexpected <define> in command",
        ),
        ("{{(1}}", "template: :1: unclosed left paren"),
    ] {
        assert_eq!(parse_err(src), want, "{src:?}");
    }
    let deep = "{{".to_string() + &"(".repeat(500) + "1" + &")".repeat(500) + "}}";
    assert_eq!(parse_err(&deep), "template: :1: template nested too deeply");
}

fn exec_err(src: &str) -> String {
    let t = Template::parse(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    match t.render(&inspect()) {
        Err(e @ Error::Exec { .. }) => e.to_string(),
        other => panic!("{src:?}: expected an exec error, got {other:?}"),
    }
}

#[test]
fn exec_errors() {
    for (src, want) in [
        (
            "{{.State.Health.Status}}",
            r#"template: :1:2: executing "" at <.State.Health.Status>: nil pointer evaluating interface {}.Status"#,
        ),
        (
            "x\n  {{.Name.First}}",
            r#"template: :2:4: executing "" at <.Name.First>: can't evaluate field First in type string"#,
        ),
        (
            "{{index .RepoTags 5}}",
            r#"template: :1:2: executing "" at <index .RepoTags 5>: error calling index: index out of range: 5"#,
        ),
        (
            "{{len .Count}}",
            r#"template: :1:2: executing "" at <len .Count>: error calling len: len of type int"#,
        ),
        (
            "{{len .Missing}}",
            r#"template: :1:2: executing "" at <len .Missing>: error calling len: len of untyped nil"#,
        ),
        (
            "{{len .State.Health}}",
            r#"template: :1:2: executing "" at <len .State.Health>: error calling len: len of nil pointer"#,
        ),
        (
            "{{len 1 2}}",
            r#"template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 2"#,
        ),
        (
            "{{eq .Count \"3\"}}",
            r#"template: :1:2: executing "" at <eq .Count "3">: error calling eq: incompatible types for comparison"#,
        ),
        (
            "{{lt .RepoTags 1}}",
            r#"template: :1:2: executing "" at <lt .RepoTags 1>: error calling lt: invalid type for comparison"#,
        ),
        (
            "{{range .Name}}{{end}}",
            r#"template: :1:8: executing "" at <.Name>: range can't iterate over /web"#,
        ),
        (
            "{{template \"nope\"}}",
            r#"template: :1:11: executing "" at <{{template "nope"}}>: template "nope" not defined"#,
        ),
        (
            "{{define \"t\"}}{{.X.Y}}{{end}}{{template \"t\" .Name}}",
            r#"template: :1:16: executing "t" at <.X.Y>: can't evaluate field X in type string"#,
        ),
        (
            "{{define \"r\"}}{{template \"r\"}}{{end}}{{template \"r\"}}",
            r#"template: :1:25: executing "r" at <{{template "r"}}>: exceeded maximum template depth (100)"#,
        ),
        (
            "{{.Name 1}}",
            r#"template: :1:2: executing "" at <.Name>: .Name is not a method but has arguments"#,
        ),
        (
            "{{1 2}}",
            r#"template: :1:2: executing "" at <1>: can't give argument to non-function 1"#,
        ),
        (
            "{{nil}}",
            r#"template: :1:2: executing "" at <nil>: nil is not a command"#,
        ),
        (
            "{{upper .Count}}",
            r#"template: :1:2: executing "" at <upper .Count>: error calling upper: wrong type for value; expected string; got int"#,
        ),
        (
            "{{slice .Name 3 1}}",
            r#"template: :1:2: executing "" at <slice .Name 3 1>: error calling slice: invalid slice index: 3 > 1"#,
        ),
        (
            "{{and}}",
            r#"template: :1:2: executing "" at <and>: wrong number of args for and: want at least 1 got 0"#,
        ),
    ] {
        assert_eq!(exec_err(src), want, "{src:?}");
    }
}

proptest! {
    #[test]
    fn parser_never_panics(src in "\\PC*") {
        let _ = Template::parse(&src);
    }

    #[test]
    fn template_like_input_never_panics(src in r#"([a-z ]|\{\{-? |\{\{| -?\}\}|\}\}|[.$|()=:,"`']|if|else|end|range|with|define|template|break|len|index|printf|[0-9]|/\*|\*/)*"#) {
        if let Ok(t) = Template::parse(&src) {
            let _ = t.render(&inspect());
        }
    }
}

#[test]
fn deepest_recursion_is_an_error_not_a_stack_overflow() {
    // The parser's nesting limit and the template call limit together bound
    // the evaluator's recursion; this is the worst case they allow.
    let nest = 44;
    let src = format!(
        "{{{{define \"r\"}}}}{}{{{{template \"r\" ((((.))))}}}}{}{{{{end}}}}{{{{template \"r\" .}}}}",
        "{{with 1}}{{range 1}}".repeat(nest / 2),
        "{{end}}{{end}}".repeat(nest / 2)
    );
    let err = Template::parse(&src)
        .unwrap()
        .render(&json!(1))
        .unwrap_err();
    assert!(
        err.to_string().contains("exceeded maximum template depth"),
        "{err}"
    );
}
