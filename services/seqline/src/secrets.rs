//! Secrets in the printed configuration: `seqline config` replaces them with
//! [`MASK`], and [`find_mask`] lets the loader refuse a configuration in
//! which a masked value survived every layer (a printed file loaded back
//! without the real secret supplied by a later layer).
//!
//! What counts as a secret: the value of any key whose name contains
//! `secret`, `password` or `token` (`gateway.token_secret`), the password of
//! a URL's `user:password@`, and URL query parameters named the same way
//! (`kafka://…?sasl.password=…`).

/// What a masked value reads as. Never a valid secret: the loader refuses it.
pub const MASK: &str = "***MASKED***";

fn secret_name(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["secret", "password", "passwd", "token"]
        .iter()
        .any(|s| key.contains(s))
}

/// Masks every secret in `value` (a configuration serialized as TOML).
pub fn mask(value: &mut toml::Value) {
    match value {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                match v {
                    toml::Value::String(s) if secret_name(k) && !s.is_empty() => *s = MASK.to_string(),
                    _ => mask(v),
                }
            }
        }
        toml::Value::Array(a) => a.iter_mut().for_each(mask),
        toml::Value::String(s) => *s = mask_url(s),
        _ => {}
    }
}

/// `scheme://user:password@hosts/path?key=value` with the password and any
/// secret-named query value replaced by [`MASK`]; other text unchanged.
pub fn mask_url(text: &str) -> String {
    let Some(scheme_end) = text.find("://") else {
        return text.to_string();
    };
    let (scheme, rest) = text.split_at(scheme_end + 3);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{MASK}@{hosts}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if secret_name(k) => format!("{k}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}{authority}{tail}")
}

/// The dotted key of the first string holding [`MASK`], if any.
pub fn find_mask(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) if s.contains(MASK) => Some(String::new()),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| {
            find_mask(v).map(|below| match below.is_empty() {
                true => k.clone(),
                false => format!("{k}.{below}"),
            })
        }),
        toml::Value::Array(a) => a.iter().find_map(find_mask),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_passwords_and_secret_parameters_only() {
        assert_eq!(
            mask_url("kafka://app:hunter2@k1:9092,k2:9092?replication=3&sasl.password=pw&partitions=8"),
            format!("kafka://app:{MASK}@k1:9092,k2:9092?replication=3&sasl.password={MASK}&partitions=8")
        );
        assert_eq!(
            mask_url("redis://:pw@redis:6379"),
            format!("redis://:{MASK}@redis:6379")
        );
        assert_eq!(
            mask_url("scylla://u:p@s1:9042/seqline?rf=3"),
            format!("scylla://u:{MASK}@s1:9042/seqline?rf=3")
        );
        for plain in [
            "embedded://./seqline-data",
            "memory://",
            "redis://user@redis:6379",
            "kafka://k1:9092?replication=1",
            "not a url",
        ] {
            assert_eq!(mask_url(plain), plain);
        }
    }

    #[test]
    fn secret_keys_are_masked_and_found_again() {
        let mut v: toml::Value = toml::from_str(
            "[gateway]\ntoken_secret = \"s3cret-s3cret-s3cret\"\nid = \"gw-1\"\n\
             [ports]\nlog = \"kafka://a:b@k:9092\"\n[other]\npassword = \"\"\n",
        )
        .unwrap();
        assert_eq!(find_mask(&v), None);
        mask(&mut v);
        let text = toml::to_string(&v).unwrap();
        assert!(!text.contains("s3cret") && !text.contains(":b@"), "{text}");
        assert_eq!(v["gateway"]["id"].as_str(), Some("gw-1"));
        assert_eq!(v["other"]["password"].as_str(), Some(""), "nothing to hide");
        assert_eq!(find_mask(&v).as_deref(), Some("gateway.token_secret"));
    }
}
