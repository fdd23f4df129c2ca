//! `--change` instructions for `import` and `commit`: the Dockerfile
//! instructions that only touch an image's config (CMD, ENTRYPOINT, ENV,
//! EXPOSE, LABEL, USER, VOLUME, WORKDIR, ONBUILD, STOPSIGNAL).

use serde_json::{json, Map, Value};

use crate::error::{EngineError, Result};

/// One parsed `--change` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Cmd(Vec<String>),
    Entrypoint(Vec<String>),
    Env(Vec<(String, String)>),
    Expose(Vec<String>),
    Label(Vec<(String, String)>),
    User(String),
    Volume(Vec<String>),
    Workdir(String),
    Onbuild(String),
    StopSignal(String),
}

/// Parses one instruction, e.g. `CMD ["/bin/sh"]` or `ENV A=1 B="two words"`.
pub fn parse_change(text: &str) -> Result<Change> {
    let text = text.trim();
    let (word, rest) = text
        .split_once(char::is_whitespace)
        .map(|(w, r)| (w, r.trim()))
        .unwrap_or((text, ""));
    let bad = |why: &str| EngineError::InvalidArgument(format!("invalid change {text:?}: {why}"));
    if rest.is_empty() {
        return Err(bad("missing arguments"));
    }
    Ok(match word.to_ascii_uppercase().as_str() {
        "CMD" => Change::Cmd(command_form(rest)),
        "ENTRYPOINT" => Change::Entrypoint(command_form(rest)),
        "ENV" => Change::Env(key_values(rest, true).map_err(|e| bad(&e))?),
        "LABEL" => Change::Label(key_values(rest, false).map_err(|e| bad(&e))?),
        "EXPOSE" => Change::Expose(
            words(rest)
                .map_err(|e| bad(&e))?
                .into_iter()
                .map(|p| normalise_port(&p).map_err(|e| bad(&e)))
                .collect::<Result<_>>()?,
        ),
        "USER" => Change::User(rest.to_string()),
        "WORKDIR" => Change::Workdir(rest.to_string()),
        "VOLUME" => Change::Volume(match serde_json::from_str::<Vec<String>>(rest) {
            Ok(v) => v,
            Err(_) => words(rest).map_err(|e| bad(&e))?,
        }),
        "ONBUILD" => Change::Onbuild(rest.to_string()),
        "STOPSIGNAL" => Change::StopSignal(rest.to_string()),
        other => {
            return Err(EngineError::InvalidArgument(format!(
                "{other} is not a valid change command"
            )))
        }
    })
}

impl Change {
    /// Applies the change to a container config object (Docker's `Config`
    /// with capitalised keys).
    pub fn apply(&self, config: &mut Map<String, Value>) {
        match self {
            Change::Cmd(v) => {
                config.insert("Cmd".into(), json!(v));
            }
            Change::Entrypoint(v) => {
                config.insert("Entrypoint".into(), json!(v));
            }
            Change::Env(pairs) => {
                let env = array_of(config, "Env");
                for (k, v) in pairs {
                    let prefix = format!("{k}=");
                    env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with(&prefix)));
                    env.push(json!(format!("{k}={v}")));
                }
            }
            Change::Expose(ports) => {
                let map = object_of(config, "ExposedPorts");
                for p in ports {
                    map.insert(p.clone(), json!({}));
                }
            }
            Change::Label(pairs) => {
                let map = object_of(config, "Labels");
                for (k, v) in pairs {
                    map.insert(k.clone(), json!(v));
                }
            }
            Change::Volume(vols) => {
                let map = object_of(config, "Volumes");
                for v in vols {
                    map.insert(v.clone(), json!({}));
                }
            }
            Change::User(u) => {
                config.insert("User".into(), json!(u));
            }
            Change::Workdir(w) => {
                config.insert("WorkingDir".into(), json!(w));
            }
            Change::Onbuild(t) => array_of(config, "OnBuild").push(json!(t)),
            Change::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(s));
            }
        }
    }
}

fn array_of<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Vec<Value> {
    let slot = config.entry(key).or_insert(Value::Null);
    if !slot.is_array() {
        *slot = json!([]);
    }
    slot.as_array_mut().expect("just made an array")
}

fn object_of<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let slot = config.entry(key).or_insert(Value::Null);
    if !slot.is_object() {
        *slot = json!({});
    }
    slot.as_object_mut().expect("just made an object")
}

/// JSON (exec) form when it parses as a string array, else shell form.
fn command_form(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(v) => v,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.into()],
    }
}

fn normalise_port(p: &str) -> std::result::Result<String, String> {
    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
    let valid_port = |s: &str| s.parse::<u16>().is_ok_and(|n| n > 0);
    let ok = match port.split_once('-') {
        Some((a, b)) => valid_port(a) && valid_port(b),
        None => valid_port(port),
    };
    if !ok || !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!("invalid port {p:?}"));
    }
    Ok(format!("{port}/{proto}"))
}

/// Splits on whitespace, honouring double and single quotes and backslashes.
fn words(s: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => match chars.next() {
                Some(n) => cur.push(n),
                None => return Err("trailing backslash".into()),
            },
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `K=V K2="v 2"`, or (for ENV, the legacy form) `K V with spaces`.
fn key_values(rest: &str, legacy: bool) -> std::result::Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if legacy && !first.contains('=') {
        let value = rest[first.len()..].trim();
        if value.is_empty() {
            return Err(format!("{first} needs a value"));
        }
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not KEY=VALUE")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(changes: &[&str]) -> Value {
        let mut config = Map::new();
        for c in changes {
            parse_change(c).unwrap().apply(&mut config);
        }
        Value::Object(config)
    }

    #[test]
    fn exec_and_shell_forms() {
        let c = applied(&[r#"CMD ["/bin/sh", "-c", "echo hi"]"#, "ENTRYPOINT top -b"]);
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "top -b"]));
    }

    #[test]
    fn env_replaces_same_key_and_keeps_quotes_together() {
        let c = applied(&["ENV A=1 B=\"two words\"", "ENV A 3 and more", "env C=x"]);
        assert_eq!(c["Env"], json!(["B=two words", "A=3 and more", "C=x"]));
    }

    #[test]
    fn expose_label_volume_user_workdir() {
        let c = applied(&[
            "EXPOSE 80 53/udp 8000-8010",
            "LABEL a.b=c \"d e\"=f",
            "VOLUME /data /logs",
            "VOLUME [\"/x\"]",
            "USER nobody:nogroup",
            "WORKDIR /srv/app",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
        ]);
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000-8010/tcp": {}})
        );
        assert_eq!(c["Labels"], json!({"a.b": "c", "d e": "f"}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}, "/x": {}}));
        assert_eq!(c["User"], "nobody:nogroup");
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
    }

    #[test]
    fn rejects_bad_changes() {
        for bad in [
            "FROM busybox",
            "RUN true",
            "CMD",
            "EXPOSE 99999",
            "EXPOSE 80/xyz",
            "LABEL novalue",
            "ENV A=\"unterminated",
            "ENV ONLYKEY",
        ] {
            let err = parse_change(bad).unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
        assert_eq!(
            parse_change("RUN true").unwrap_err().to_string(),
            "RUN is not a valid change command"
        );
    }
}
