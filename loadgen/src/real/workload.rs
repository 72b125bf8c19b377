//! What each connection does between connect and close: `--request`,
//! `--close`, `--http-version`, `--path`.

use std::fmt;
use std::str::FromStr;

/// `--request none|http|raw:BYTES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Send nothing; the exchange is the handshake and the close.
    None,
    /// `GET PATH HTTP/1.x`; the response is read to its end.
    Http,
    /// Send these bytes; any reply is read (to the server's FIN with `--close server`).
    Raw(Vec<u8>),
}

impl FromStr for Request {
    type Err = String;

    fn from_str(s: &str) -> Result<Request, String> {
        match s {
            "none" => Ok(Request::None),
            "http" => Ok(Request::Http),
            _ => match s.strip_prefix("raw:") {
                Some(text) => Ok(Request::Raw(unescape(text)?)),
                None => Err(format!("'{s}' is not none, http or raw:BYTES")),
            },
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::None => f.write_str("none"),
            Request::Http => f.write_str("http"),
            Request::Raw(b) => write!(f, "raw:{}", b.escape_ascii()),
        }
    }
}

/// `raw:` text with `\r`, `\n`, `\t`, `\\`, `\0` and `\xHH` escapes.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'r') => b'\r',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                std::str::from_utf8(&hex)
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .filter(|_| hex.len() == 2)
                    .ok_or_else(|| format!("bad \\x escape in '{s}'"))?
            }
            _ => {
                return Err(format!(
                    "bad escape in '{s}' (use \\r \\n \\t \\0 \\\\ \\xHH)"
                ))
            }
        });
    }
    if out.is_empty() {
        return Err("raw: needs at least one byte".into());
    }
    Ok(out)
}

/// `--close`: who ends each connection, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Close {
    /// Wait for the server's FIN, then close (the passive close).
    Server,
    /// Close with a FIN once the exchange is done (the active close).
    Client,
    /// Close with SO_LINGER 0 once the exchange is done: a RST, no TIME-WAIT.
    Rst,
}

/// `--http-version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum HttpVersion {
    #[value(name = "1.1")]
    V11,
    #[value(name = "1.0")]
    V10,
}

/// The bytes each connection sends. With `--close server` an HTTP request asks
/// the server to close after its response (`Connection: close`); otherwise it
/// asks to keep the connection open, so that the client's close comes first.
pub fn request_bytes(
    req: &Request,
    close: Close,
    version: HttpVersion,
    host: &str,
    path: &str,
) -> Vec<u8> {
    match req {
        Request::None => Vec::new(),
        Request::Raw(b) => b.clone(),
        Request::Http => {
            let (v, connection) = match (version, close) {
                (HttpVersion::V11, Close::Server) => ("1.1", "Connection: close\r\n"),
                (HttpVersion::V11, _) => ("1.1", ""),
                (HttpVersion::V10, Close::Server) => ("1.0", ""),
                (HttpVersion::V10, _) => ("1.0", "Connection: keep-alive\r\n"),
            };
            format!(
                "GET {path} HTTP/{v}\r\nHost: {host}\r\nUser-Agent: loadgen\r\n{connection}\r\n"
            )
            .into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse() {
        assert_eq!("none".parse(), Ok(Request::None));
        assert_eq!("http".parse(), Ok(Request::Http));
        assert_eq!(
            "raw:PING\\r\\n\\x00".parse(),
            Ok(Request::Raw(b"PING\r\n\0".to_vec()))
        );
        assert!("raw:".parse::<Request>().is_err());
        assert!("raw:\\x4".parse::<Request>().is_err());
        assert!("raw:\\q".parse::<Request>().is_err());
        assert!("ftp".parse::<Request>().is_err());
    }

    #[test]
    fn http_asks_the_server_to_close_only_when_it_should() {
        let get = |c, v| {
            String::from_utf8(request_bytes(&Request::Http, c, v, "127.0.0.1:80", "/x")).unwrap()
        };
        let s = get(Close::Server, HttpVersion::V11);
        assert!(
            s.starts_with("GET /x HTTP/1.1\r\nHost: 127.0.0.1:80\r\n"),
            "{s}"
        );
        assert!(s.contains("Connection: close\r\n") && s.ends_with("\r\n\r\n"));
        assert!(!get(Close::Client, HttpVersion::V11).contains("Connection:"));
        assert!(get(Close::Rst, HttpVersion::V10).contains("Connection: keep-alive"));
        assert!(!get(Close::Server, HttpVersion::V10).contains("Connection:"));
    }
}
