//! The binary's configuration, in layers (later wins):
//! 1. built-in defaults (`Config::default()`),
//! 2. the `--config FILE` (TOML),
//! 3. environment variables `SEQLINE__SECTION__KEY=value`
//!    (e.g. `SEQLINE__GATEWAY__LISTEN=127.0.0.1:9000`), read by the type of
//!    the setting they replace: a string setting (an id, a secret, a URL, a
//!    duration such as `"250ms"`) takes the text as it is, so
//!    `SEQLINE__GATEWAY__ID=123` is the id `"123"`; a number, boolean or
//!    list takes it as a TOML value (`9`, `true`, `["a", "b"]`),
//! 4. command-line flags.
//!
//! Unknown keys are errors, and cross-field checks run once at start-up,
//! before anything is opened or connected. A value still holding the mask
//! that `seqline config` prints in place of a secret is refused
//! ([`crate::secrets`]).

use anyhow::{bail, Context};
use seqline_fanout::FanoutConfig;
use seqline_gateway::GatewayConfig;
use seqline_persister::PersisterConfig;
use seqline_telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Everything `seqline` can be told.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Which implementation backs each port.
    pub ports: PortsConfig,
    /// Logging.
    pub log: LogConfig,
    /// The gateway role (WebSocket + HTTP).
    pub gateway: GatewayConfig,
    /// The persister role (sequencer + timeline writer).
    pub persister: PersisterConfig,
    /// The fanout role.
    pub fanout: FanoutConfig,
    /// Health endpoint of roles without the gateway.
    pub health: HealthConfig,
    /// Trace and metric export over OTLP (off unless `otlp_endpoint` is set).
    pub telemetry: TelemetryConfig,
}

/// A small `/healthz` + `/readyz` server for the persister and fanout roles.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Where to serve it (off when absent), e.g. `"0.0.0.0:7601"`.
    pub listen: Option<std::net::SocketAddr>,
}

/// Backends, each chosen by URL scheme in one place (`ports.rs`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortsConfig {
    /// The log: `embedded://DIR` (embedded LSM log in DIR) or
    /// `kafka://HOST:PORT[,…][?prefix=seqline.&replication=3&partitions=8]`.
    pub log: String,
    /// The store: `embedded://DIR` (same engine as the log when DIR matches)
    /// or `scylla://HOST:PORT[,…]/KEYSPACE[?rf=3]`.
    pub store: String,
    /// Presence: `memory://` (in-process) or `redis://HOST:PORT[?prefix=…]`.
    pub presence: String,
}

impl Default for PortsConfig {
    fn default() -> Self {
        Self {
            log: "embedded://./seqline-data".into(),
            store: "embedded://./seqline-data".into(),
            presence: "memory://".into(),
        }
    }
}

/// How the process logs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `seqline_gateway=debug,info`
    /// (`RUST_LOG` wins when set).
    pub level: String,
    /// `text` or `json`.
    pub format: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// Flags that override configuration.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--data DIR`: embedded data directory for log and store.
    pub data: Option<PathBuf>,
    /// `--listen ADDR`.
    pub listen: Option<String>,
    /// `--secret S`.
    pub secret: Option<String>,
    /// A token secret that counts as a built-in default (development only).
    pub dev_secret: Option<String>,
}

/// Loads the layers described in the module docs.
pub fn load(
    file: Option<&Path>,
    env: impl Iterator<Item = (String, String)>,
    flags: &Overrides,
) -> anyhow::Result<Config> {
    let mut merged = toml::Value::try_from(Config::default()).context("serializing defaults")?;
    if let Some(secret) = &flags.dev_secret {
        set(
            &mut merged,
            &["gateway".into(), "token_secret".into()],
            toml::Value::String(secret.clone()),
        )?;
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading config file {}", path.display()))?;
        let file_value: toml::Value =
            toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))?;
        merge(&mut merged, file_value);
    }
    for (key, raw) in env {
        let Some(rest) = key.strip_prefix("SEQLINE__") else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
        let value = env_value(get(&merged, &path), &raw);
        set(&mut merged, &path, value).with_context(|| format!("applying environment variable {key}"))?;
    }
    if let Some(dir) = &flags.data {
        let url = format!("embedded://{}", dir.display());
        set(
            &mut merged,
            &["ports".into(), "log".into()],
            toml::Value::String(url.clone()),
        )?;
        set(&mut merged, &["ports".into(), "store".into()], toml::Value::String(url))?;
    }
    if let Some(listen) = &flags.listen {
        set(
            &mut merged,
            &["gateway".into(), "listen".into()],
            toml::Value::String(listen.clone()),
        )?;
    }
    if let Some(secret) = &flags.secret {
        set(
            &mut merged,
            &["gateway".into(), "token_secret".into()],
            toml::Value::String(secret.clone()),
        )?;
    }
    if let Some(key) = crate::secrets::find_mask(&merged) {
        bail!(
            "{key} holds {mask}, the mask `seqline config` prints in place of a secret; \
             put the real value in the file or set it in a later layer (environment, flag)",
            mask = crate::secrets::MASK
        );
    }
    let config: Config = merged.try_into().context("invalid configuration")?;
    Ok(config)
}

/// An environment variable's text as the value of the setting it replaces:
/// text for a string setting (or one with no default, all of them strings
/// or addresses), else a TOML value when it parses as one.
fn env_value(current: Option<&toml::Value>, raw: &str) -> toml::Value {
    match current {
        None | Some(toml::Value::String(_)) => toml::Value::String(raw.to_string()),
        Some(_) => toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
    }
}

impl Config {
    /// The configuration as TOML that [`load`] reads back, with every
    /// secret replaced by [`crate::secrets::MASK`].
    pub fn to_masked_toml(&self) -> anyhow::Result<String> {
        let mut value = toml::Value::try_from(self).context("serializing the configuration")?;
        crate::secrets::mask(&mut value);
        toml::to_string_pretty(&value).context("writing the configuration as TOML")
    }
}

impl Config {
    /// Cross-field checks, once, before connecting anything; the gateway
    /// section only matters where the gateway runs.
    pub fn validate(&self, gateway: bool) -> anyhow::Result<()> {
        if gateway {
            self.gateway
                .validate()
                .map_err(anyhow::Error::msg)
                .context("[gateway]")?;
        }
        self.persister
            .validate()
            .map_err(anyhow::Error::msg)
            .context("[persister]")?;
        self.telemetry
            .validate()
            .map_err(anyhow::Error::msg)
            .context("[telemetry]")?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            bail!("[log] format must be \"text\" or \"json\", not {:?}", self.log.format);
        }
        for (name, url) in [
            ("log", &self.ports.log),
            ("store", &self.ports.store),
            ("presence", &self.ports.presence),
        ] {
            if !url.contains("://") {
                bail!("[ports] {name} = {url:?} is not a URL like embedded://DIR or memory://");
            }
        }
        Ok(())
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn get<'a>(root: &'a toml::Value, path: &[String]) -> Option<&'a toml::Value> {
    path.iter().try_fold(root, |cur, key| cur.get(key.as_str()))
}

fn set(root: &mut toml::Value, path: &[String], value: toml::Value) -> anyhow::Result<()> {
    let Some((last, parents)) = path.split_last() else {
        bail!("empty key")
    };
    let mut cur = root;
    for p in parents {
        let toml::Value::Table(t) = cur else {
            bail!("{p} is not a section")
        };
        cur = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    let toml::Value::Table(t) = cur else {
        bail!("{last} is not in a section")
    };
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = std::env::temp_dir().join(format!("seqline-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "[persister]\nbatch_max = 7\n[gateway]\nlisten = \"127.0.0.1:1\"\n",
        )
        .unwrap();
        let env = vec![("SEQLINE__PERSISTER__BATCH_MAX".to_string(), "9".to_string())];
        let flags = Overrides {
            listen: Some("127.0.0.1:2".into()),
            dev_secret: Some("0123456789abcdef0123".into()),
            ..Default::default()
        };
        let c = load(Some(&file), env.into_iter(), &flags).unwrap();
        c.validate(true).unwrap();
        assert_eq!(c.persister.batch_max, 9, "env beats file");
        assert_eq!(c.gateway.listen.to_string(), "127.0.0.1:2", "flag beats file");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn telemetry_section_from_the_environment() {
        let c = load(None, std::iter::empty(), &Overrides::default()).unwrap();
        assert_eq!(c.telemetry, TelemetryConfig::default(), "nothing exported by default");
        let env = vec![
            (
                "SEQLINE__TELEMETRY__OTLP_ENDPOINT".to_string(),
                "http://otel-collector:4317".to_string(),
            ),
            ("SEQLINE__TELEMETRY__SAMPLE_RATIO".to_string(), "0.5".to_string()),
            ("SEQLINE__TELEMETRY__EXPORT_INTERVAL".to_string(), "2s".to_string()),
        ];
        let c = load(None, env.into_iter(), &Overrides::default()).unwrap();
        c.validate(false).unwrap();
        assert_eq!(c.telemetry.otlp_endpoint.as_deref(), Some("http://otel-collector:4317"));
        assert_eq!(c.telemetry.sample_ratio, 0.5);
        assert_eq!(c.telemetry.export_interval, std::time::Duration::from_secs(2));
        assert_eq!(c.telemetry.service_name("gateway"), "seqline-gateway");
        let env = vec![("SEQLINE__TELEMETRY__SAMPLE_RATIO".to_string(), "2".to_string())];
        let err = load(None, env.into_iter(), &Overrides::default())
            .and_then(|c| c.validate(false))
            .unwrap_err();
        assert!(format!("{err:#}").contains("[telemetry]"), "{err:#}");
        let env = vec![("SEQLINE__TELEMETRY__ENDPOINT".to_string(), "x".to_string())];
        assert!(load(None, env.into_iter(), &Overrides::default()).is_err());
    }

    #[test]
    fn environment_strings_that_look_like_numbers_stay_strings() {
        let env = vec![
            (
                "SEQLINE__GATEWAY__TOKEN_SECRET".to_string(),
                "1234567890123456".to_string(),
            ),
            ("SEQLINE__GATEWAY__ID".to_string(), "42".to_string()),
            ("SEQLINE__FANOUT__GROUP".to_string(), "false".to_string()),
            ("SEQLINE__GATEWAY__HEARTBEAT".to_string(), "2s".to_string()),
        ];
        let c = load(None, env.into_iter(), &Overrides::default()).unwrap();
        c.validate(true).unwrap();
        assert_eq!(c.gateway.token_secret, "1234567890123456");
        assert_eq!(c.gateway.id.as_str(), "42");
        assert_eq!(c.fanout.group, "false");
        assert_eq!(c.gateway.heartbeat, std::time::Duration::from_secs(2));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let env = vec![("SEQLINE__PERSISTER__BATCH_MAXX".to_string(), "9".to_string())];
        let err = load(None, env.into_iter(), &Overrides::default()).unwrap_err();
        assert!(format!("{err:#}").contains("batch_maxx"), "{err:#}");
        let env = vec![("SEQLINE__PERSISTER__BATCH_MAX".to_string(), "0".to_string())];
        assert!(load(None, env.into_iter(), &Overrides::default())
            .unwrap()
            .validate(false)
            .is_err());
        let env = vec![("SEQLINE__LOG__FORMAT".to_string(), "xml".to_string())];
        assert!(load(None, env.into_iter(), &Overrides::default())
            .unwrap()
            .validate(false)
            .is_err());
        let short = Overrides {
            secret: Some("short".into()),
            ..Default::default()
        };
        let c = load(None, std::iter::empty(), &short).unwrap();
        assert!(c.validate(true).is_err(), "a gateway needs a real secret");
        assert!(c.validate(false).is_ok(), "a persister does not");
    }
}

#[cfg(test)]
#[path = "config_docs.rs"]
mod documented_defaults;
