//! The request head of HTTP/1.0 and 1.1, parsed from bytes in memory: the
//! request line (GET or HEAD, an origin-form target) and the header fields.
//! Never panics, whatever the bytes (fuzzed: `fuzz/fuzz_targets/http_request.rs`;
//! a property test below feeds it random and mutated heads). Bodies are not
//! read: the ops port and the dashboard take GET and HEAD only.

use std::fmt;

/// The largest head accepted, request line and header fields together; a
/// probe's or a browser's is well under 1 KiB, a browser with cookies and
/// basic auth under 4 KiB.
pub const MAX_HEAD: usize = 8 * 1024;

/// Header fields accepted in one head (browsers send about 15).
pub const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    /// As GET, without the body.
    Head,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: Method,
    /// The target up to its `?` or `#` (not percent-decoded).
    pub path: String,
    /// Field names in lower case, values without surrounding blanks, in the
    /// order sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of the field `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Why a head was refused; [`ParseError::status`] is the answer to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Longer than [`MAX_HEAD`], or more than [`MAX_HEADERS`] fields.
    TooLarge,
    /// Not `METHOD SP target SP HTTP/x.y`, or a character not allowed there.
    BadRequestLine,
    /// A method other than GET or HEAD.
    MethodNotAllowed,
    /// A version other than HTTP/1.0 or HTTP/1.1.
    BadVersion,
    /// A target that is not a path (`/...`).
    BadTarget,
    /// A field line that is not `name: value`, a folded line, or a second
    /// `Host`.
    BadHeader,
}

impl ParseError {
    /// The HTTP status answering this error.
    pub fn status(self) -> u16 {
        match self {
            ParseError::TooLarge => 431,
            ParseError::MethodNotAllowed => 405,
            ParseError::BadVersion => 505,
            ParseError::BadRequestLine | ParseError::BadTarget | ParseError::BadHeader => 400,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::TooLarge => "request head too large",
            ParseError::BadRequestLine => "malformed request line",
            ParseError::MethodNotAllowed => "only GET and HEAD are served",
            ParseError::BadVersion => "only HTTP/1.0 and HTTP/1.1 are served",
            ParseError::BadTarget => "the target must be a path",
            ParseError::BadHeader => "malformed header field",
        })
    }
}

impl std::error::Error for ParseError {}

/// Parses the head at the start of `buf`: `Ok(None)` while it is
/// incomplete (no empty line yet) and still within [`MAX_HEAD`]. Lines may
/// end in CRLF or LF. Bytes after the head are ignored.
pub fn parse_request(buf: &[u8]) -> Result<Option<Head>, ParseError> {
    let Some(end) = head_end(buf) else {
        return if buf.len() > MAX_HEAD { Err(ParseError::TooLarge) } else { Ok(None) };
    };
    let head = buf.get(..end).unwrap_or(buf);
    if head.len() > MAX_HEAD {
        return Err(ParseError::TooLarge);
    }
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let (method, path) = request_line(lines.next().unwrap_or_default())?;
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        if headers.len() == MAX_HEADERS {
            return Err(ParseError::TooLarge);
        }
        let (name, value) = field(line)?;
        if name == "host" && headers.iter().any(|(n, _): &(String, String)| n == "host") {
            return Err(ParseError::BadHeader);
        }
        headers.push((name, value));
    }
    Ok(Some(Head { method, path, headers }))
}

/// How many bytes the head at the start of `buf` takes, its empty line
/// included (what follows is the client's next bytes).
pub fn head_len(buf: &[u8]) -> Option<usize> {
    head_end(buf).map(|i| i + 1)
}

/// Where the head ends: the index of the `\n` of its empty line.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut line_start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            let line = buf.get(line_start..i).unwrap_or_default();
            // The request line itself is never the empty line.
            if line_start > 0 && (line.is_empty() || line == b"\r") {
                return Some(i);
            }
            line_start = i + 1;
        }
    }
    None
}

fn request_line(line: &[u8]) -> Result<(Method, String), ParseError> {
    if !line.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(ParseError::BadRequestLine);
    }
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadRequestLine)?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadRequestLine);
    };
    if method.is_empty() || !method.bytes().all(is_token) {
        return Err(ParseError::BadRequestLine);
    }
    if !version.starts_with("HTTP/") {
        return Err(ParseError::BadRequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ParseError::BadVersion);
    }
    let method = match method {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        _ => return Err(ParseError::MethodNotAllowed),
    };
    if !target.starts_with('/') {
        return Err(ParseError::BadTarget);
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Ok((method, path.to_string()))
}

fn field(line: &[u8]) -> Result<(String, String), ParseError> {
    let colon = line.iter().position(|&b| b == b':').ok_or(ParseError::BadHeader)?;
    let name = line.get(..colon).unwrap_or_default();
    let value = line.get(colon + 1..).unwrap_or_default();
    // Also refuses a folded line (it starts with a blank) and a blank
    // before the colon.
    if name.is_empty() || !name.iter().copied().all(is_token) {
        return Err(ParseError::BadHeader);
    }
    if !value.iter().all(|&b| b == b'\t' || b == b' ' || b.is_ascii_graphic() || b >= 0x80) {
        return Err(ParseError::BadHeader);
    }
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let value = String::from_utf8_lossy(value).trim_matches([' ', '\t']).to_string();
    Ok((name, value))
}

/// `tchar` of RFC 9110.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: Method, path: &str, headers: &[(&str, &str)]) -> Head {
        Head {
            method,
            path: path.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn real_requests_parse() {
        let probe = b"GET /healthz HTTP/1.1\r\nHost: 10.1.2.3:9090\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\nConnection: close\r\n\r\n";
        assert_eq!(
            parse_request(probe),
            Ok(Some(head(
                Method::Get,
                "/healthz",
                &[
                    ("host", "10.1.2.3:9090"),
                    ("user-agent", "kube-probe/1.31"),
                    ("accept", "*/*"),
                    ("connection", "close")
                ]
            )))
        );
        assert_eq!(
            parse_request(b"HEAD /api/status?x=1#f HTTP/1.0\n\n"),
            Ok(Some(head(Method::Head, "/api/status", &[])))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nAuthorization:  Basic YTpi \t\r\n\r\nGET /next HTTP/1.1\r\n"),
            Ok(Some(head(Method::Get, "/", &[("authorization", "Basic YTpi")])))
        );
    }

    #[test]
    fn incomplete_heads_wait_for_more() {
        for partial in [&b""[..], b"GET", b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nHost: a\r\n", b"\r\n"] {
            assert_eq!(parse_request(partial), Ok(None), "{:?}", String::from_utf8_lossy(partial));
        }
        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(MAX_HEAD + 1, b'a');
        assert_eq!(parse_request(&long), Err(ParseError::TooLarge));
    }

    #[test]
    fn bad_heads_are_refused_with_their_status() {
        let cases: &[(&[u8], ParseError)] = &[
            (b"POST / HTTP/1.1\r\n\r\n", ParseError::MethodNotAllowed),
            (b"GET / HTTP/2.0\r\n\r\n", ParseError::BadVersion),
            (b"GET http://evil/ HTTP/1.1\r\n\r\n", ParseError::BadTarget),
            (b"GET  / HTTP/1.1\r\n\r\n", ParseError::BadRequestLine),
            (b"GET / HTTP/1.1 x\r\n\r\n", ParseError::BadRequestLine),
            (b"GET /\x01 HTTP/1.1\r\n\r\n", ParseError::BadRequestLine),
            (b"\r\n\r\n", ParseError::BadRequestLine),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nnocolon\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", ParseError::BadHeader),
            (b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", ParseError::BadHeader),
        ];
        for (input, want) in cases {
            assert_eq!(parse_request(input), Err(*want), "{:?}", String::from_utf8_lossy(input));
        }
        let mut many = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse_request(&many), Err(ParseError::TooLarge));
    }

    /// xorshift64*: reproducible random inputs without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    const SEEDS: &[&[u8]] = &[
        b"GET /healthz HTTP/1.1\r\nHost: 10.1.2.3:9090\r\nUser-Agent: kube-probe/1.31\r\nAccept: */*\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nHost: 10.1.2.3:9090\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\nAccept-Encoding: gzip\r\n\r\n",
        b"GET /api/status HTTP/1.1\r\nHost: localhost:8080\r\nAuthorization: Basic YWRtaW46c2VjcmV0\r\nReferer: http://localhost:8080/\r\n\r\n",
        b"HEAD / HTTP/1.0\n\n",
        b"GET /readyz HTTP/1.1\r\nHost: [::1]:9090\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n",
    ];

    const PIECES: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b":",
        b" ",
        b"\t",
        b"?",
        b"#",
        b"/",
        b"GET ",
        b"HTTP/1.1",
        b"Host: ",
        b"\xff",
        b"\xc3\xa9",
        b"\0",
    ];

    /// 100,000 random and mutated heads: no panic, and what parses holds
    /// only what the parser promises.
    #[test]
    fn random_and_mutated_heads_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for i in 0..100_000 {
            let mut input: Vec<u8> = if i % 4 == 0 {
                let len = rng.below(300);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                SEEDS[rng.below(SEEDS.len())].to_vec()
            };
            for _ in 0..rng.below(6) {
                let at = rng.below(input.len() + 1);
                match rng.below(5) {
                    0 if !input.is_empty() => {
                        let at = at.min(input.len() - 1);
                        input[at] = rng.next() as u8;
                    }
                    1 if !input.is_empty() => {
                        let end = (at + rng.below(8)).min(input.len());
                        input.drain(at.min(end)..end);
                    }
                    2 => {
                        let piece = PIECES[rng.below(PIECES.len())];
                        input.splice(at..at, piece.iter().copied());
                    }
                    3 => input.truncate(at),
                    // Heads past the size limit, now and then (they cost the
                    // most to build and scan).
                    _ if rng.below(40) != 0 => input.truncate(at),
                    _ => {
                        let n = rng.below(MAX_HEAD + 64);
                        input.splice(at..at, std::iter::repeat_n(b'a', n));
                    }
                }
            }
            if let Ok(Some(head)) = parse_request(&input) {
                parsed += 1;
                assert!(head.path.starts_with('/'), "{head:?}");
                assert!(head.headers.len() <= MAX_HEADERS);
                assert!(head.headers.iter().all(|(n, _)| !n.is_empty() && n.to_ascii_lowercase() == *n));
            }
        }
        assert!(parsed > 1_000, "the mutations still leave valid heads to check: {parsed}");
    }
}
