//! Reading the deployment files as their tools do: deploy/Dockerfile's
//! instructions, and deploy/docker-compose.yml's services after YAML
//! anchors, merge keys and `${VAR:-default}` interpolation are resolved.
//!
//! The compose file is read by PyYAML (the YAML library docker-compose
//! itself is built on; Debian's docker-compose, which `make test-tools`
//! installs, brings it) through a few lines of Python that print JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The text of a repository file.
pub fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// One Dockerfile instruction: `FROM`, `RUN`, `CMD`, … and its arguments,
/// continuation lines joined, comments dropped.
#[derive(Debug, Clone)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

/// deploy/Dockerfile's instructions, in order.
pub fn dockerfile() -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read("deploy/Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && pending.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(line);
                let text = std::mem::take(&mut pending);
                let (keyword, args) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
                out.push(Instruction {
                    keyword: keyword.to_ascii_uppercase(),
                    args: args.trim().to_string(),
                });
            }
        }
    }
    out
}

/// The instructions of the Dockerfile's last stage (the image that runs).
pub fn runtime_stage() -> Vec<Instruction> {
    let all = dockerfile();
    let from = all.iter().rposition(|i| i.keyword == "FROM").expect("a FROM");
    all[from..].to_vec()
}

/// A JSON-array (exec form) instruction argument, e.g. `["a", "b"]`.
pub fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args:?} is not in exec form: {e}"))
}

/// What the test needs of one compose service.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Service {
    /// `command` (exec form).
    pub command: Vec<String>,
    /// `environment`, interpolated with the defaults.
    pub environment: BTreeMap<String, String>,
    /// `healthcheck.test`, e.g. `["CMD", "/usr/local/bin/seqline", …]`.
    pub healthcheck: Vec<String>,
    /// `restart`.
    pub restart: Option<String>,
    /// `image`.
    pub image: Option<String>,
}

const COMPOSE_TO_JSON: &str = r#"
import json, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
out = {}
for name, s in doc["services"].items():
    env = s.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    test = (s.get("healthcheck") or {}).get("test") or []
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    cmd = s.get("command") or []
    if isinstance(cmd, str):
        cmd = cmd.split()
    out[name] = {
        "command": [str(c) for c in cmd],
        "environment": {k: "" if v is None else str(v) for k, v in env.items()},
        "healthcheck": [str(t) for t in test],
        "restart": s.get("restart"),
        "image": s.get("image"),
    }
print(json.dumps(out))
"#;

/// deploy/docker-compose.yml's services by name, `${VAR:-default}` taken
/// as compose does with VAR unset.
pub fn compose_services() -> BTreeMap<String, Service> {
    let file = repo().join("deploy/docker-compose.yml");
    let mut errors = Vec::new();
    // The first Python that has PyYAML: the one on PATH, or Debian's.
    for python in ["python3", "/usr/bin/python3"] {
        match Command::new(python).args(["-c", COMPOSE_TO_JSON]).arg(&file).output() {
            Ok(out) if out.status.success() => {
                let mut services: BTreeMap<String, Service> =
                    serde_json::from_slice(&out.stdout).expect("the helper prints JSON");
                for s in services.values_mut() {
                    for v in s.environment.values_mut() {
                        *v = interpolate(v);
                    }
                }
                return services;
            }
            Ok(out) => errors.push(format!("{python}: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => errors.push(format!("{python}: {e}")),
        }
    }
    panic!(
        "reading {} needs Python 3 with PyYAML (Debian: python3-yaml, which `make test-tools` installs \
         with docker-compose): {errors:?}",
        file.display()
    )
}

/// `${VAR:-default}` and `${VAR-default}` → default; `${VAR}` → "" (VAR unset).
pub fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').map(|e| start + e).expect("a closing brace");
        let inner = &rest[start + 2..end];
        let default = inner
            .split_once(":-")
            .or_else(|| inner.split_once('-'))
            .map_or("", |(_, d)| d);
        out.push_str(default);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The value of `NAME ?= value` in the Makefile.
pub fn make_default(name: &str) -> String {
    read("Makefile")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ?=")))
        .unwrap_or_else(|| panic!("the Makefile sets no default for {name}"))
        .trim()
        .to_string()
}
