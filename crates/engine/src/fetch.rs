//! `import URL`: a minimal HTTP/1.0 GET that streams the response body, so
//! a root filesystem can be imported straight from a web server without
//! landing on disk first. Only `http://` for now: TLS comes with the
//! registry client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::error::{EngineError, Result};

/// Opens `url` and returns its body; any status but 200 is an error.
pub fn open_url(url: &str) -> Result<Box<dyn Read + Send>> {
    let fail = |why: String| EngineError::InvalidArgument(format!("import from {url}: {why}"));
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| fail("only http:// URLs can be imported".into()))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(fail("no host in the URL".into()));
    }
    let addr = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let mut stream = TcpStream::connect(&addr).map_err(|e| fail(e.to_string()))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| fail(e.to_string()))?;
    // HTTP/1.0 keeps the body unchunked and ends it by closing the connection.
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: berth/{}\r\nAccept: */*\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut reader = BufReader::with_capacity(1 << 20, stream);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| fail(e.to_string()))?;
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        let shown = status.trim();
        return Err(fail(if shown.is_empty() {
            "empty response".into()
        } else {
            format!("server answered {shown:?}")
        }));
    }
    let mut length = None;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| fail(e.to_string()))?;
        let line = line.trim_end();
        if n == 0 || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse::<u64>().ok();
            } else if k == "transfer-encoding" && !v.eq_ignore_ascii_case("identity") {
                return Err(fail(format!("unsupported transfer encoding {v}")));
            }
        }
    }
    Ok(match length {
        Some(n) => Box::new(reader.take(n)),
        None => Box::new(reader),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_other_schemes_and_empty_hosts() {
        for bad in ["https://example.test/x.tar", "ftp://h/x", "http:///x.tar"] {
            assert!(open_url(bad).is_err(), "{bad}");
        }
    }
}
