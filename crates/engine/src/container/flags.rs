//! Docker's syntax for the resource, security and misc `run`/`create`
//! flags: sizes (`32m`), CPU counts (`0.5`), ulimits (`nofile=100:200`),
//! capability names, signals, labels and `KEY=VALUE` files. Pure functions,
//! so the CLI can use them as value parsers and the engine to validate.
//!
//! Error texts are Docker's (go-units, docker/cli `opts`), since scripts
//! match on them.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One `--ulimit`, as Docker stores it in `HostConfig.Ulimits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ulimit {
    pub name: String,
    pub hard: i64,
    pub soft: i64,
}

/// The limits `--ulimit` knows (go-units' `ulimitNameMapping`).
const ULIMIT_NAMES: &[&str] = &[
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// Capability names in kernel order: the index is the capability's number
/// (`linux/capability.h`).
pub const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// `--cap-add ALL` / `--cap-drop ALL`.
pub const ALL_CAPABILITIES: &str = "ALL";

/// go-units' `RAMInBytes`: `<number>[ ][kmgtp][i][b]`, binary multiples,
/// case-insensitive (`32m`, `1.5G`, `64MiB`, `512 kb`, `100`).
pub fn parse_memory(s: &str) -> Result<i64, String> {
    let invalid = || format!("invalid size: '{s}'");
    let b = s.as_bytes();
    // (\d+(\.\d+)*)
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return Err(invalid());
    }
    while i < b.len() && b[i] == b'.' {
        let mut j = i + 1;
        if !digits(&mut j) {
            break;
        }
        i = j;
    }
    let number = &s[..i];
    // ` ?([kKmMgGtTpP])?[iI]?[bB]?$`
    let mut rest = &b[i..];
    if let [b' ', tail @ ..] = rest {
        rest = tail;
    }
    let mut multiplier: i64 = 1;
    if let [u, tail @ ..] = rest {
        if let Some(p) = b"kmgtp".iter().position(|c| *c == u.to_ascii_lowercase()) {
            multiplier = 1 << (10 * (p + 1));
            rest = tail;
        }
    }
    if let [b'i' | b'I', tail @ ..] = rest {
        rest = tail;
    }
    if let [b'b' | b'B', tail @ ..] = rest {
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(invalid());
    }
    let value: f64 = number
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing \"{number}\": invalid syntax"))?;
    Ok((value * multiplier as f64) as i64)
}

/// `--memory-swap`: a size, or `-1` for unlimited swap.
pub fn parse_memory_swap(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    parse_memory(s)
}

/// `--cpus`: a rational number (`0.5`, `1.25`, `3/2`, `5e-1`) as billionths
/// of a CPU (`HostConfig.NanoCpus`), exactly, as Go's `big.Rat` reads it.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    const NANO: i128 = 1_000_000_000;
    let (num, den): (i128, i128) = match s.split_once('/') {
        Some((n, d)) => {
            let n = parse_int(n).ok_or_else(bad)?;
            let d = parse_int(d.strip_prefix('+').unwrap_or(d)).ok_or_else(bad)?;
            if d <= 0 {
                return Err(bad());
            }
            (n.checked_mul(NANO).ok_or_else(bad)?, d)
        }
        None => {
            let (mantissa, exp) = match s.find(['e', 'E']) {
                Some(at) => (&s[..at], s[at + 1..].parse::<i32>().map_err(|_| bad())?),
                None => (s, 0),
            };
            let (sign, mantissa) = match mantissa.as_bytes().first() {
                Some(b'-') => (-1, &mantissa[1..]),
                Some(b'+') => (1, &mantissa[1..]),
                _ => (1, mantissa),
            };
            let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
            let all_digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
            if int.len() + frac.len() == 0 || !all_digits(int) || !all_digits(frac) {
                return Err(bad());
            }
            let digits = format!("{int}{frac}");
            let mut value: i128 = digits.parse().map_err(|_| bad())?;
            // value * 10^(exp - frac.len()) * 1e9
            let scale = exp - frac.len() as i32 + 9;
            let mut den = 1i128;
            if scale >= 0 {
                for _ in 0..scale {
                    value = value.checked_mul(10).ok_or_else(bad)?;
                }
            } else {
                for _ in 0..-scale {
                    den = den.checked_mul(10).ok_or_else(bad)?;
                }
            }
            (sign * value, den)
        }
    };
    if num % den != 0 {
        return Err("value is too precise".into());
    }
    i64::try_from(num / den).map_err(|_| bad())
}

/// An optionally signed decimal integer.
fn parse_int(s: &str) -> Option<i128> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `--ulimit name=soft[:hard]` (go-units' `ParseUlimit`); the hard limit
/// defaults to the soft one, `-1` means unlimited.
pub fn parse_ulimit(s: &str) -> Result<Ulimit, String> {
    let (name, values) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let int = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"))
    };
    let parts: Vec<&str> = values.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [soft] => (int(soft)?, int(soft)?),
        [soft, hard] => (int(soft)?, int(hard)?),
        _ => {
            return Err(format!(
                "too many limit value arguments - {values}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 && soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        hard,
        soft,
    })
}

/// `--label`: Docker 20.10 wants `key=value`.
pub fn validate_label(s: &str) -> Result<String, String> {
    if !s.contains('=') {
        return Err(format!("bad attribute format: {s}"));
    }
    Ok(s.to_string())
}

/// A capability as Docker's CLI normalizes it: upper case, `CAP_` prefixed
/// (`ALL` stays `ALL`).
pub fn normalize_capability(c: &str) -> String {
    let c = c.trim().to_uppercase();
    if c == ALL_CAPABILITIES || c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

/// docker/cli's `EffectiveCapAddCapDrop`: normalized, deduplicated and
/// sorted lists; `ALL` swallows the other names on its side, and a
/// capability both added and dropped is added.
pub fn effective_caps(add: &[String], drop: &[String]) -> (Vec<String>, Vec<String>) {
    let set = |list: &[String]| -> BTreeSet<String> {
        let s: BTreeSet<String> = list.iter().map(|c| normalize_capability(c)).collect();
        if s.contains(ALL_CAPABILITIES) {
            BTreeSet::from([ALL_CAPABILITIES.to_string()])
        } else {
            s
        }
    };
    let add = set(add);
    let drop = set(drop);
    let drop = drop.difference(&add).cloned().collect();
    (add.into_iter().collect(), drop)
}

/// The kernel's number for a `CAP_...` name.
pub fn capability_number(name: &str) -> Option<u32> {
    CAPABILITIES
        .iter()
        .position(|c| *c == name)
        .map(|n| n as u32)
}

/// Signal names (without `SIG`) and numbers on Linux, as Docker's
/// `signal.SignalMap`.
const SIGNALS: &[(&str, i32)] = &[
    ("ABRT", 6),
    ("ALRM", 14),
    ("BUS", 7),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("FPE", 8),
    ("HUP", 1),
    ("ILL", 4),
    ("INT", 2),
    ("IO", 29),
    ("IOT", 6),
    ("KILL", 9),
    ("PIPE", 13),
    ("POLL", 29),
    ("PROF", 27),
    ("PWR", 30),
    ("QUIT", 3),
    ("SEGV", 11),
    ("STKFLT", 16),
    ("STOP", 19),
    ("SYS", 31),
    ("TERM", 15),
    ("TRAP", 5),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("USR1", 10),
    ("USR2", 12),
    ("VTALRM", 26),
    ("WINCH", 28),
    ("XCPU", 24),
    ("XFSZ", 25),
];

const SIGRTMIN: i32 = 34;
const SIGRTMAX: i32 = 64;

/// Docker's `signal.ParseSignal`: a number, or a name with or without
/// `SIG` in any case (`SIGKILL`, `term`, `RTMIN+3`).
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let invalid = || format!("Invalid signal: {s}");
    if let Ok(n) = s.parse::<i32>() {
        return if n == 0 { Err(invalid()) } else { Ok(n) };
    }
    let upper = s.to_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = SIGNALS.iter().find(|(k, _)| *k == name) {
        return Ok(*n);
    }
    let offset = |rest: &str, sign: char, max: i32| -> Option<i32> {
        match rest {
            "" => Some(0),
            r => {
                let n: i32 = r.strip_prefix(sign)?.parse().ok()?;
                (1..=max).contains(&n).then_some(n)
            }
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return offset(rest, '+', 15)
            .map(|n| SIGRTMIN + n)
            .ok_or_else(invalid);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return offset(rest, '-', 14)
            .map(|n| SIGRTMAX - n)
            .ok_or_else(invalid);
    }
    Err(invalid())
}

/// Docker's `parsers.ParseUintList` for `--cpuset-cpus`: `0-2,4`.
pub fn parse_uint_list(s: &str) -> Result<BTreeSet<u32>, String> {
    let invalid = || format!("invalid format: {s}");
    let mut out = BTreeSet::new();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let num = |t: &str| t.parse::<u32>().map_err(|_| invalid());
        match part.split_once('-') {
            None => {
                out.insert(num(part)?);
            }
            Some((lo, hi)) => {
                let (lo, hi) = (num(lo)?, num(hi)?);
                if hi < lo {
                    return Err(invalid());
                }
                out.extend(lo..=hi);
            }
        }
    }
    Ok(out)
}

/// How a `KEY=VALUE` file line without `=` is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareKeys {
    /// `--env-file`: `KEY` alone takes the caller's value, if it has one.
    FromEnvironment,
    /// `--label-file`: dropped.
    Drop,
}

/// docker/cli's `parseKeyValueFile` on the text of `path`: `#` comments and
/// blank lines skipped, leading blanks trimmed, values kept verbatim.
pub fn parse_kv_text(path: &Path, text: &[u8], bare: BareKeys) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (n, raw) in text.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if n == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        let line = std::str::from_utf8(raw).map_err(|_| {
            format!(
                "env file {} contains invalid utf8 bytes at line {}: {raw:?}",
                path.display(),
                n + 1
            )
        })?;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        let key = key.trim_start_matches([' ', '\t']);
        if key.contains([' ', '\t']) {
            return Err(format!(
                "poorly formatted environment: variable '{key}' contains whitespaces"
            ));
        }
        if key.is_empty() {
            return Err(format!(
                "poorly formatted environment: no variable name on line '{line}'"
            ));
        }
        match (value, bare) {
            (Some(v), _) => out.push(format!("{key}={v}")),
            (None, BareKeys::FromEnvironment) => {
                if let Ok(v) = std::env::var(line.trim()) {
                    out.push(format!("{}={v}", line.trim()));
                }
            }
            (None, BareKeys::Drop) => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_take_docker_units() {
        assert_eq!(parse_memory("32m"), Ok(32 << 20));
        assert_eq!(parse_memory("32M"), Ok(32 << 20));
        assert_eq!(parse_memory("32MiB"), Ok(32 << 20));
        assert_eq!(parse_memory("32mb"), Ok(32 << 20));
        assert_eq!(parse_memory("1g"), Ok(1 << 30));
        assert_eq!(parse_memory("1.5k"), Ok(1536));
        assert_eq!(parse_memory("512 k"), Ok(512 << 10));
        assert_eq!(parse_memory("100"), Ok(100));
        assert_eq!(parse_memory("100b"), Ok(100));
        assert_eq!(parse_memory("2t"), Ok(2 << 40));
        for bad in ["", "m", "-1", "32x", "32mm", "1,5m", " 32m", "32m "] {
            assert_eq!(
                parse_memory(bad),
                Err(format!("invalid size: '{bad}'")),
                "{bad}"
            );
        }
        assert!(parse_memory("1.2.3m").unwrap_err().contains("ParseFloat"));
        assert_eq!(parse_memory_swap("-1"), Ok(-1));
        assert_eq!(parse_memory_swap("64m"), Ok(64 << 20));
        assert!(parse_memory_swap("-2").is_err());
    }

    #[test]
    fn cpus_are_exact_rationals_in_nanocpus() {
        assert_eq!(parse_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_cpus("1.25"), Ok(1_250_000_000));
        assert_eq!(parse_cpus(".5"), Ok(500_000_000));
        assert_eq!(parse_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_cpus("5e-1"), Ok(500_000_000));
        assert_eq!(parse_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_cpus("-1"), Ok(-1_000_000_000));
        assert_eq!(
            parse_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
        assert_eq!(parse_cpus("1/3"), Err("value is too precise".into()));
        for bad in ["", "abc", "1.2.3", "1/0", "0x1", "1e", ".", "1/-2"] {
            assert_eq!(
                parse_cpus(bad),
                Err(format!("failed to parse {bad} as a rational number")),
                "{bad}"
            );
        }
    }

    #[test]
    fn ulimits_parse_like_go_units() {
        let u = |n: &str, soft, hard| Ulimit {
            name: n.into(),
            soft,
            hard,
        };
        assert_eq!(parse_ulimit("nofile=100:200"), Ok(u("nofile", 100, 200)));
        assert_eq!(parse_ulimit("nproc=50"), Ok(u("nproc", 50, 50)));
        assert_eq!(parse_ulimit("core=-1"), Ok(u("core", -1, -1)));
        assert_eq!(parse_ulimit("core=5:-1"), Ok(u("core", 5, -1)));
        assert_eq!(
            parse_ulimit("nofile"),
            Err("invalid ulimit argument: nofile".into())
        );
        assert_eq!(
            parse_ulimit("files=1"),
            Err("invalid ulimit type: files".into())
        );
        assert_eq!(
            parse_ulimit("nofile=200:100"),
            Err("ulimit soft limit must be less than or equal to hard limit: 200 > 100".into())
        );
        assert!(parse_ulimit("nofile=1:2:3")
            .unwrap_err()
            .starts_with("too many limit value arguments"));
        assert!(parse_ulimit("nofile=x").unwrap_err().contains("ParseInt"));
    }

    #[test]
    fn capabilities_normalize_and_combine_like_docker() {
        assert_eq!(normalize_capability("chown"), "CAP_CHOWN");
        assert_eq!(normalize_capability("CAP_sys_admin"), "CAP_SYS_ADMIN");
        assert_eq!(normalize_capability("all"), "ALL");
        let v = |s: &[&str]| s.iter().map(|c| c.to_string()).collect::<Vec<_>>();
        assert_eq!(
            effective_caps(&v(&["sys_admin", "CAP_SYS_ADMIN", "net_admin"]), &v(&[])),
            (v(&["CAP_NET_ADMIN", "CAP_SYS_ADMIN"]), v(&[]))
        );
        assert_eq!(
            effective_caps(&v(&["chown"]), &v(&["CHOWN", "kill"])),
            (v(&["CAP_CHOWN"]), v(&["CAP_KILL"])),
            "adding wins over dropping"
        );
        assert_eq!(
            effective_caps(&v(&["chown"]), &v(&["all", "kill"])),
            (v(&["CAP_CHOWN"]), v(&["ALL"]))
        );
        assert_eq!(
            effective_caps(&v(&["ALL", "chown"]), &v(&[])),
            (v(&["ALL"]), v(&[]))
        );
        assert_eq!(capability_number("CAP_CHOWN"), Some(0));
        assert_eq!(capability_number("CAP_SYS_ADMIN"), Some(21));
        assert_eq!(capability_number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(capability_number("CAP_FOO"), None);
    }

    #[test]
    fn signals_by_name_or_number() {
        assert_eq!(parse_signal("SIGKILL"), Ok(9));
        assert_eq!(parse_signal("kill"), Ok(9));
        assert_eq!(parse_signal("SigUsr1"), Ok(10));
        assert_eq!(parse_signal("15"), Ok(15));
        assert_eq!(parse_signal("RTMIN"), Ok(34));
        assert_eq!(parse_signal("SIGRTMIN+3"), Ok(37));
        assert_eq!(parse_signal("RTMAX-1"), Ok(63));
        for bad in ["0", "FOO", "SIG", "RTMIN+16", "RTMAX+1", ""] {
            assert_eq!(parse_signal(bad), Err(format!("Invalid signal: {bad}")));
        }
    }

    #[test]
    fn uint_lists_expand_ranges() {
        assert_eq!(
            parse_uint_list("0-2,5")
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [0, 1, 2, 5]
        );
        assert!(parse_uint_list("").unwrap().is_empty());
        for bad in ["a", "2-1", "1,", "-1", "1-"] {
            assert_eq!(
                parse_uint_list(bad),
                Err(format!("invalid format: {bad}")),
                "{bad}"
            );
        }
    }

    #[test]
    fn labels_need_an_equals_sign() {
        assert_eq!(validate_label("a=b"), Ok("a=b".into()));
        assert_eq!(validate_label("a="), Ok("a=".into()));
        assert_eq!(validate_label("a"), Err("bad attribute format: a".into()));
    }

    #[test]
    fn kv_files_skip_comments_and_keep_values_verbatim() {
        let p = Path::new("f.env");
        let text = b"A=1\n   B = spaced \n";
        let got = parse_kv_text(p, text, BareKeys::FromEnvironment);
        assert_eq!(
            got.unwrap_err(),
            "poorly formatted environment: variable 'B ' contains whitespaces"
        );
        // PATH is set in any test run; the other name surely is not.
        let text = b"\xEF\xBB\xBFA=1\n# comment\n\n   B= spaced \nC=x=y\r\nPATH\nBERTH_FLAGS_SURELY_UNSET\n";
        let path = format!("PATH={}", std::env::var("PATH").unwrap());
        assert_eq!(
            parse_kv_text(p, text, BareKeys::FromEnvironment).unwrap(),
            ["A=1", "B= spaced ", "C=x=y", &path]
        );
        assert_eq!(
            parse_kv_text(p, text, BareKeys::Drop).unwrap(),
            ["A=1", "B= spaced ", "C=x=y"]
        );
        assert_eq!(
            parse_kv_text(p, b"=v\n", BareKeys::Drop).unwrap_err(),
            "poorly formatted environment: no variable name on line '=v'"
        );
        assert!(parse_kv_text(p, b"A=\xff\n", BareKeys::Drop)
            .unwrap_err()
            .contains("invalid utf8 bytes at line 1"));
    }
}
