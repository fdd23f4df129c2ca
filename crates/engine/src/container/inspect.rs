//! `inspect` for containers: the record in Docker's shape, with the host
//! config and the storage driver's directories added.

use serde_json::{json, Map, Value};

use super::error::CResult;
use super::state::ZERO_TIME;
use crate::Engine;

impl Engine {
    /// The Docker-shaped inspect document of one container.
    pub fn inspect_container(&self, query: &str) -> CResult<Value> {
        let record = self.container(query)?;
        let stored = match serde_json::to_value(&record)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        // config.v2.json says `ID`, inspect says `Id`, first.
        let mut doc = Map::new();
        doc.insert("Id".into(), json!(record.id));
        doc.extend(stored.into_iter().filter(|(k, _)| k != "ID"));
        let mut graph = Map::new();
        if let Some(m) = self.store.mount(&record.id)? {
            let dir = self.store.root().join(self.driver()).join(&m.mount_id);
            let path = |sub: &str| json!(dir.join(sub).display().to_string());
            graph.insert("UpperDir".into(), path("upper"));
            graph.insert("WorkDir".into(), path("work"));
            graph.insert(
                "MergedDir".into(),
                json!(self
                    .container_dir(&record.id)
                    .join("rootfs")
                    .display()
                    .to_string()),
            );
        }
        doc.insert("RestartCount".into(), json!(0));
        doc.insert("Platform".into(), json!("linux"));
        doc.insert(
            "HostConfig".into(),
            serde_json::to_value(&record.host_config)?,
        );
        doc.insert(
            "GraphDriver".into(),
            json!({"Data": graph, "Name": record.driver}),
        );
        doc.insert("Mounts".into(), super::mounts::inspect_mounts(&record));
        // Docker's State also says when a container was never started.
        if let Some(Value::Object(state)) = doc.get_mut("State") {
            state.entry("StartedAt").or_insert_with(|| json!(ZERO_TIME));
        }
        Ok(Value::Object(doc))
    }
}
