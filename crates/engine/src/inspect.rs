//! `inspect` for images: the JSON document Docker 20.10 prints, built from
//! the config kept verbatim plus what the store knows.

use serde_json::{json, Map, Value};

use crate::error::Result;
use crate::images::familiar;
use crate::Engine;

/// Docker's container `Config` keys, in Docker's order, with their empty
/// values: an image config that leaves some out is shown with all of them.
/// Builds the empty value of one config key.
type EmptyValue = fn() -> Value;

const CONFIG_KEYS: &[(&str, EmptyValue)] = &[
    ("Hostname", || json!("")),
    ("Domainname", || json!("")),
    ("User", || json!("")),
    ("AttachStdin", || json!(false)),
    ("AttachStdout", || json!(false)),
    ("AttachStderr", || json!(false)),
    ("ExposedPorts", || Value::Null),
    ("Tty", || json!(false)),
    ("OpenStdin", || json!(false)),
    ("StdinOnce", || json!(false)),
    ("Env", || Value::Null),
    ("Cmd", || Value::Null),
    ("Image", || json!("")),
    ("Volumes", || Value::Null),
    ("WorkingDir", || json!("")),
    ("Entrypoint", || Value::Null),
    ("OnBuild", || Value::Null),
    ("Labels", || Value::Null),
];

/// Fills a container config object out to Docker's full shape, keeping any
/// extra keys (StopSignal, Healthcheck, ...) after the standard ones.
pub(crate) fn full_container_config(partial: Option<&Value>) -> Value {
    let partial = partial.and_then(Value::as_object);
    let mut out = Map::new();
    for (key, empty) in CONFIG_KEYS {
        let v = partial
            .and_then(|p| p.get(*key))
            .cloned()
            .unwrap_or_else(empty);
        out.insert((*key).to_string(), sorted_map(v));
    }
    if let Some(p) = partial {
        for (k, v) in p {
            if !out.contains_key(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

/// Go writes map keys sorted; configs hold Labels, Volumes and ExposedPorts
/// as maps, so `{{json .Config.Labels}}` prints them sorted too.
fn sorted_map(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().collect())
        }
        other => other,
    }
}

impl Engine {
    /// The Docker-shaped inspect document of one image.
    pub fn inspect_image(&self, name: &str) -> Result<Value> {
        let id = self.resolve_image(name)?;
        let config = self.config(&id)?;
        let meta = self.store.image_meta(&id)?;
        let refs = self.store.references()?;
        let mut tags = Vec::new();
        let mut digests = Vec::new();
        for (r, _) in refs.iter().filter(|(_, v)| **v == id) {
            let f = familiar(r);
            if f.contains('@') {
                digests.push(f);
            } else {
                tags.push(f);
            }
        }
        tags.sort();
        digests.sort();
        let chain = config.chain();
        let size = self.chain_size(&chain)?;
        let c = &config.value;
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut graph = Map::new();
        if let Some(top) = chain
            .last()
            .and_then(|t| self.store.layer(t).ok().flatten())
        {
            graph.insert(
                "UpperDir".into(),
                json!(self.store.layer_diff_dir(&top).display().to_string()),
            );
            let mut lowers = Vec::new();
            for ch in chain.iter().rev().skip(1) {
                if let Some(l) = self.store.layer(ch)? {
                    lowers.push(self.store.layer_diff_dir(&l).display().to_string());
                }
            }
            if !lowers.is_empty() {
                graph.insert("LowerDir".into(), json!(lowers.join(":")));
            }
        }
        let mut doc = Map::new();
        doc.insert("Id".into(), json!(id.to_string()));
        doc.insert("RepoTags".into(), json!(tags));
        doc.insert("RepoDigests".into(), json!(digests));
        doc.insert(
            "Parent".into(),
            json!(meta.parent.map(|p| p.to_string()).unwrap_or_default()),
        );
        doc.insert("Comment".into(), json!(text("comment")));
        doc.insert("Created".into(), json!(text("created")));
        doc.insert("Container".into(), json!(text("container")));
        doc.insert(
            "ContainerConfig".into(),
            full_container_config(c.get("container_config")),
        );
        doc.insert("DockerVersion".into(), json!(text("docker_version")));
        doc.insert("Author".into(), json!(text("author")));
        doc.insert("Config".into(), full_container_config(c.get("config")));
        doc.insert("Architecture".into(), json!(text("architecture")));
        if let Some(v) = c.get("variant") {
            doc.insert("Variant".into(), v.clone());
        }
        doc.insert("Os".into(), json!(text("os")));
        doc.insert("Size".into(), json!(size));
        doc.insert("VirtualSize".into(), json!(size));
        doc.insert(
            "GraphDriver".into(),
            json!({"Data": graph, "Name": self.driver()}),
        );
        doc.insert(
            "RootFS".into(),
            json!({"Type": "layers", "Layers": config.diff_ids}),
        );
        doc.insert(
            "Metadata".into(),
            json!({"LastTagTime": meta.last_updated.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)).unwrap_or_else(|| "0001-01-01T00:00:00Z".into())}),
        );
        Ok(Value::Object(doc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_config_is_filled_in_docker_order() {
        let v = full_container_config(Some(&json!({
            "Cmd": ["sh"],
            "StopSignal": "SIGINT",
            "Labels": {"b": "2", "a": "1"}
        })));
        assert_eq!(
            serde_json::to_string(&v["Labels"]).unwrap(),
            r#"{"a":"1","b":"2"}"#
        );
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|s| s.as_str()), Some("Hostname"));
        assert_eq!(keys.last().map(|s| s.as_str()), Some("StopSignal"));
        assert_eq!(v["Cmd"], json!(["sh"]));
        assert_eq!(v["Env"], Value::Null);
        assert_eq!(v["Tty"], json!(false));
    }
}
