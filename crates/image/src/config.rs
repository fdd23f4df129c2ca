//! The image config JSON (Docker's image spec v1.2 and OCI's config, which
//! is its subset). Keys are lowercase at the top level and capitalised inside
//! `config`/`container_config`, as Docker writes them.
//!
//! Every struct keeps fields it does not know in `extra`, so a config read and
//! written again loses nothing but JSON `null`s (read as `None`, written as
//! absent). Image IDs are digests of the stored bytes, never of a
//! re-serialisation, so that difference never changes an ID.

use std::collections::BTreeMap;

use berth_digest::DiffId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Unknown keys, kept in their original order.
pub type Extra = Map<String, Value>;

/// An image config: what `docker inspect` shows of an image.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// RFC 3339 with nanoseconds; kept as text so it round-trips exactly
    /// (see [`ImageConfig::created_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker_version: Option<String>,
    /// The ID of the build container (legacy builder only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    #[serde(default)]
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<History>>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl ImageConfig {
    /// Parses config bytes (as stored; never re-serialise to compute an ID).
    pub fn from_slice(bytes: &[u8]) -> serde_json::Result<ImageConfig> {
        serde_json::from_slice(bytes)
    }

    /// Serialises compactly, as Docker does.
    pub fn to_vec(&self) -> Vec<u8> {
        // Serialising plain structs, strings and maps cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `created` parsed, when present and well-formed.
    pub fn created_time(&self) -> Option<chrono::DateTime<chrono::FixedOffset>> {
        parse_time(self.created.as_deref()?)
    }

    /// The layer history entries that produced a layer (not `empty_layer`),
    /// bottom first; Docker's `history` pairs them with `rootfs.diff_ids`.
    pub fn non_empty_history(&self) -> impl Iterator<Item = &History> {
        self.history
            .iter()
            .flatten()
            .filter(|h| !h.empty_layer.unwrap_or(false))
    }
}

/// Parses an RFC 3339 timestamp as Go writes it (nanoseconds, `Z` or offset).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(s).ok()
}

/// The run-time defaults of containers made from the image (Docker's
/// `container.Config`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stderr: Option<bool>,
    /// `"80/tcp": {}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `"/data": {}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HEALTHCHECK` settings; durations are nanoseconds, as Docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// The `{}` values of Go's `map[string]struct{}` sets (ports, volumes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Empty;

impl Serialize for Empty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Map::new().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Empty {
    /// Accepts any value: Go ignores the contents and so do we.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| Empty)
    }
}

/// The layers of the image, by diffID, bottom first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<DiffId>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
            extra: Extra::new(),
        }
    }
}

/// One build step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_layer: Option<bool>,
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config as Docker 20.10 wrote it for busybox, plus fields berth does
    /// not model (at each level) to prove they survive.
    const DOCKER_CONFIG: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Image":"sha256:2d8c4bd2cb0e27b8fd2cb4b6a7d7d1da4b9bd8b3b0e4b7fd0b9e1d2f3c4b5a6d","Volumes":{"/data":{}},"WorkingDir":"/","Entrypoint":["/init"],"OnBuild":["RUN x"],"Labels":{"a":"b"},"StopSignal":"SIGQUIT","Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"Future":1},"FutureKey":[1,2]},"container":"e0d6ec1b6ff6","container_config":{"Cmd":["/bin/sh","-c","#(nop) ","CMD [\"sh\"]"],"WorkingDir":""},"created":"2023-05-19T20:19:24.516567686Z","docker_version":"20.10.23","history":[{"created":"2023-05-19T20:19:24.394745542Z","created_by":"/bin/sh -c #(nop) ADD file:abc in / "},{"created":"2023-05-19T20:19:24.516567686Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true,"future":"x"}],"os":"linux","os.features":["f"],"rootfs":{"type":"layers","diff_ids":["sha256:9547b4c33213e630a0ca602a989ecc094e042146ae8afa502e1e65af6473db03"]},"moby.buildkit":"x"}"##;

    #[test]
    fn docker_config_parses_and_round_trips() {
        let c = ImageConfig::from_slice(DOCKER_CONFIG.as_bytes()).unwrap();
        assert_eq!(c.architecture.as_deref(), Some("amd64"));
        let cc = c.config.as_ref().unwrap();
        assert_eq!(cc.cmd.as_deref(), Some(&["sh".to_owned()][..]));
        assert_eq!(cc.entrypoint.as_deref(), Some(&["/init".to_owned()][..]));
        assert_eq!(cc.stop_signal.as_deref(), Some("SIGQUIT"));
        assert_eq!(cc.working_dir.as_deref(), Some("/"));
        assert!(cc.exposed_ports.as_ref().unwrap().contains_key("80/tcp"));
        assert_eq!(
            cc.healthcheck.as_ref().unwrap().interval,
            Some(1_000_000_000)
        );
        assert_eq!(cc.extra["FutureKey"], serde_json::json!([1, 2]));
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        assert_eq!(c.history.as_ref().unwrap().len(), 2);
        assert_eq!(c.non_empty_history().count(), 1);
        assert_eq!(c.extra["os.features"], serde_json::json!(["f"]));
        assert_eq!(c.created_time().unwrap().timestamp(), 1684527564);

        // Same JSON value after a round trip: nothing dropped, nothing added.
        let original: Value = serde_json::from_str(DOCKER_CONFIG).unwrap();
        let again: Value = serde_json::from_slice(&c.to_vec()).unwrap();
        assert_eq!(again, original);
    }

    #[test]
    fn minimal_oci_config_round_trips() {
        let s = r#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::from_slice(s.as_bytes()).unwrap();
        assert!(c.config.is_none() && c.history.is_none());
        assert_eq!(String::from_utf8(c.to_vec()).unwrap(), s);
    }

    #[test]
    fn bad_diff_id_is_rejected() {
        let s = r#"{"rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}"#;
        let err = ImageConfig::from_slice(s.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("sha256:xyz"), "{err}");
    }
}
