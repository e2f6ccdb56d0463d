//! A real headless browser for the tests: Debian's chromium driven over the
//! Chrome DevTools Protocol (a `tungstenite` WebSocket, `serde_json`), able
//! to reach 127.0.0.1 only. Every wait is bounded and panics saying what it
//! waited for.
//!
//! - [`Browser::launch`]`(width, height) -> Browser`: chromium (or
//!   `$CHROMIUM`) with a fresh profile, pages of that size in CSS pixels;
//!   killed, profile removed, on drop.
//! - [`Browser::new_page`]`(&self, url) -> Page`: a new tab, loaded.
//! - [`Page`]: `eval(js) -> Value`, `wait_for(what, js, timeout) -> Value`,
//!   `navigate(url)`, `click(selector)`, `type_text(selector, text)` (one
//!   `Input.insertText`, as an input method commits), `type_keys(selector,
//!   text)` (one key press per character), `press_enter()`, `press_tab()`,
//!   `screenshot(path)`, and what the page did since it opened:
//!   `console_errors() -> Vec<String>` (console errors, uncaught
//!   exceptions, error log entries, Content-Security-Policy violations) and
//!   `requested_urls() -> Vec<String>` (every request and WebSocket).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

use crate::support::{unique, World};

/// How long a launch, a command or a page load may take (generous: the
/// tests share two cores).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Chromium headless, quiet, able to reach 127.0.0.1 only: every test's.
pub const HEADLESS_LOCAL_ONLY: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
];

/// Debian's chromium (or `$CHROMIUM`); fails loudly when missing.
pub fn chromium_binary() -> String {
    let bin = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&bin).exists(), "{bin} missing: scripts/test.sh installs Debian's chromium");
    bin
}

/// A headless chromium and its profile directory.
pub struct Browser {
    child: Child,
    /// Holds `profile/` and chromium's `stderr.log`.
    dir: PathBuf,
    /// Its DevTools endpoints' (HTTP and WebSocket).
    port: u16,
    /// Every page's viewport, in CSS pixels.
    viewport: (u32, u32),
}

impl Browser {
    /// Starts chromium on about:blank, its pages `width` x `height` CSS
    /// pixels large, every host but 127.0.0.1 unresolvable.
    pub fn launch(width: u32, height: u32) -> Browser {
        let bin = chromium_binary();
        let dir = std::env::temp_dir().join(unique("chromium-"));
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).expect("create the chromium profile");
        let stderr = File::create(dir.join("stderr.log")).expect("create chromium's log");
        let child = Command::new(&bin)
            .args(HEADLESS_LOCAL_ONLY)
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            // Its own process group, so that drop kills its helpers too.
            .process_group(0)
            .spawn()
            .expect("spawn chromium");
        let mut browser = Browser { child, dir, port: 0, viewport: (width, height) };
        // Chromium writes the port it chose (and the browser's path) there.
        let deadline = Instant::now() + TIMEOUT;
        browser.port = loop {
            let written = std::fs::read_to_string(profile.join("DevToolsActivePort")).unwrap_or_default();
            if let Some(port) = written.split_once('\n').and_then(|(port, _)| port.parse().ok()) {
                break port;
            }
            let log = || std::fs::read_to_string(browser.dir.join("stderr.log")).unwrap_or_default();
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited ({status}) before DevTools listened: {}", log());
            }
            assert!(Instant::now() < deadline, "chromium's DevTools not listening after {TIMEOUT:?}: {}", log());
            std::thread::sleep(Duration::from_millis(50));
        };
        browser
    }

    /// A new tab on `url`, loaded, with every event recorded from the
    /// start.
    pub fn new_page(&self, url: &str) -> Page {
        // PUT: chromium refuses a GET that opens a tab.
        let target = self.devtools_put("/json/new?about:blank");
        let ws_url = target["webSocketDebuggerUrl"].as_str().unwrap_or_else(|| panic!("no tab: {target}"));
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to DevTools");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let (ws, _) = tungstenite::client::client(ws_url, stream).unwrap_or_else(|e| panic!("{ws_url}: {e}"));
        let mut page = Page { ws, next_id: 0, errors: Vec::new(), urls: Vec::new(), loaded: Vec::new() };
        for domain in ["Runtime", "Log", "Network", "Page"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}));
        // The window's size less its (invisible) toolbar otherwise.
        let (width, height) = self.viewport;
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        page.call("Emulation.setDeviceMetricsOverride", metrics);
        page.navigate(url);
        page
    }

    /// `PUT path` on the DevTools HTTP endpoint: the JSON it answers.
    fn devtools_put(&self, path: &str) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to DevTools");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(stream, "PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n", self.port).unwrap();
        // The connection stays open: read the head, then Content-Length bytes.
        let mut reader = BufReader::new(stream);
        let (mut head, mut length) = (Vec::new(), 0);
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or_else(|e| panic!("PUT {path}: {e}"));
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or_else(|_| panic!("PUT {path}: {line}"));
                }
            }
            head.push(line.to_string());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap_or_else(|e| panic!("PUT {path}: {e}"));
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("PUT {path}: {e}: {head:?}"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The group of a child not reaped yet: chromium's, nobody else's.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One tab over its own DevTools WebSocket. Events arrive interleaved with
/// the replies; they are recorded while a reply is awaited.
pub struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
    /// What [`Page::console_errors`] returns.
    errors: Vec<String>,
    /// What [`Page::requested_urls`] returns.
    urls: Vec<String>,
    /// The loaders (documents) whose load event fired.
    loaded: Vec<String>,
}

impl Page {
    /// The value of `js` (a promise is awaited); panics with the exception
    /// it threw.
    pub fn eval(&mut self, js: &str) -> Value {
        self.try_eval(js).unwrap_or_else(|e| panic!("`{js}` threw: {e}"))
    }

    /// Evaluates `js_predicate` every 100 ms until it is truthy; returns
    /// its value. Panics after `timeout` with `what` and the page's text.
    pub fn wait_for(&mut self, what: &str, js_predicate: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            // A page between two documents may throw: not yet, not fatal.
            let last = self.try_eval(js_predicate);
            match &last {
                Ok(value) if truthy(value) => return value.clone(),
                _ if Instant::now() >= deadline => {
                    let last = last.map_or_else(|e| format!("threw {e}"), |v| v.to_string());
                    let text = self.try_eval("document.body ? document.body.innerText : '(no body)'");
                    let text = text.map_or_else(|e| format!("(unreadable: {e})"), |v| v.to_string());
                    panic!("timed out after {timeout:?} waiting for {what}: `{js_predicate}` is {last}; the page says {text}");
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Loads `url` and waits for its load event.
    pub fn navigate(&mut self, url: &str) {
        let reply = self.call("Page.navigate", json!({"url": url}));
        if let Some(error) = reply["errorText"].as_str() {
            panic!("{url} did not load: {error}");
        }
        // No loader: a same-document navigation, done.
        let Some(loader) = reply["loaderId"].as_str() else { return };
        let deadline = Instant::now() + TIMEOUT;
        while !self.loaded.iter().any(|l| l == loader) {
            let event = self.read(deadline).unwrap_or_else(|| panic!("{url} not loaded after {TIMEOUT:?}"));
            self.record(&event);
        }
    }

    /// A left click in the middle of the element, as a user's mouse does:
    /// panics if it is missing, invisible or covered.
    pub fn click(&mut self, selector: &str) {
        let at = self.eval(&format!(
            "(() => {{ const e = {}; e.scrollIntoView({{block: 'center', inline: 'center'}}); \
             const r = e.getBoundingClientRect(); \
             if (r.width === 0 || r.height === 0) throw new Error('not visible: ' + {sel}); \
             const x = r.left + r.width / 2, y = r.top + r.height / 2, top = document.elementFromPoint(x, y); \
             if (!e.contains(top)) throw new Error({sel} + ' is covered by ' + (top && top.outerHTML.slice(0, 100))); \
             return [x, y]; }})()",
            find(selector),
            sel = Value::from(selector),
        ));
        for kind in ["mousePressed", "mouseReleased"] {
            let event = json!({"type": kind, "x": at[0], "y": at[1], "button": "left", "clickCount": 1});
            self.call("Input.dispatchMouseEvent", event);
        }
    }

    /// Focuses the element and inserts `text` at once (no key events), as
    /// an input method commits a word.
    pub fn type_text(&mut self, selector: &str, text: &str) {
        self.focus(selector);
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Focuses the element and types `text` key by key (keydown, keypress,
    /// input, keyup per character).
    pub fn type_keys(&mut self, selector: &str, text: &str) {
        self.focus(selector);
        for ch in text.chars() {
            let (code, key_code) = match ch {
                'a'..='z' | 'A'..='Z' => (format!("Key{}", ch.to_ascii_uppercase()), ch.to_ascii_uppercase() as u32),
                '0'..='9' => (format!("Digit{ch}"), ch as u32),
                ' ' => ("Space".to_string(), 32),
                _ => (String::new(), 0),
            };
            self.press(&ch.to_string(), &code, key_code, &ch.to_string());
        }
    }

    /// Enter in the focused element (submits a form from its input).
    pub fn press_enter(&mut self) {
        self.press("Enter", "Enter", 13, "\r");
    }

    /// Tab: the focus moves to the next element.
    pub fn press_tab(&mut self) {
        self.press("Tab", "Tab", 9, "");
    }

    /// The visible part of the page as a PNG file.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    /// Console errors, uncaught exceptions, error log entries (a failed
    /// request, a Content-Security-Policy violation) since the page opened.
    pub fn console_errors(&mut self) -> Vec<String> {
        self.sync();
        self.errors.clone()
    }

    /// Every URL the page requested (documents, assets, fetches,
    /// WebSockets) since it opened.
    pub fn requested_urls(&mut self) -> Vec<String> {
        self.sync();
        self.urls.clone()
    }

    /// A round trip, so that the events sent before it are recorded.
    fn sync(&mut self) {
        self.eval("0");
    }

    fn focus(&mut self, selector: &str) {
        self.eval(&format!(
            "(() => {{ const e = {}; e.focus(); \
             if (document.activeElement !== e) throw new Error('cannot take the focus: ' + {}); }})()",
            find(selector),
            Value::from(selector),
        ));
    }

    /// One key down and up; `text` is what it types (none for Tab).
    fn press(&mut self, key: &str, code: &str, key_code: u32, text: &str) {
        let kind = if text.is_empty() { "rawKeyDown" } else { "keyDown" };
        let mut event = json!({"type": kind, "key": key, "code": code, "windowsVirtualKeyCode": key_code});
        if !text.is_empty() {
            event["text"] = text.into();
        }
        self.call("Input.dispatchKeyEvent", event);
        self.call(
            "Input.dispatchKeyEvent",
            json!({"type": "keyUp", "key": key, "code": code, "windowsVirtualKeyCode": key_code}),
        );
    }

    fn try_eval(&mut self, js: &str) -> Result<Value, String> {
        let params = json!({"expression": js, "returnByValue": true, "awaitPromise": true});
        let reply = self.try_call("Runtime.evaluate", params)?;
        if let Some(details) = reply.get("exceptionDetails") {
            let description = details["exception"]["description"].as_str();
            return Err(description.or(details["text"].as_str()).unwrap_or_default().to_string());
        }
        Ok(reply["result"]["value"].clone())
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    /// Sends a command and reads until its reply: its result, or the
    /// protocol's error.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let command = json!({"id": id, "method": method, "params": params});
        self.ws.send(Message::text(command.to_string())).unwrap_or_else(|e| panic!("send {method}: {e}"));
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.read(deadline).unwrap_or_else(|| panic!("no reply to {method} in {TIMEOUT:?}"));
            if message["id"] == id {
                return match message.get("error") {
                    Some(error) => Err(error.to_string()),
                    None => Ok(message["result"].clone()),
                };
            }
            self.record(&message);
        }
    }

    /// The next message, or None once `deadline` passed.
    fn read(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
            self.ws.get_mut().set_read_timeout(Some(left)).unwrap();
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return Some(serde_json::from_str(&text).unwrap_or_else(|e| panic!("DevTools sent {text}: {e}")))
                }
                Ok(_) => {}
                // The read timed out; tungstenite keeps a partial message.
                Err(tungstenite::Error::Io(e))
                    if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("the DevTools connection broke: {e}"),
            }
        }
    }

    /// Keeps what the tests ask about from an event.
    fn record(&mut self, event: &Value) {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Runtime.consoleAPICalled" if matches!(params["type"].as_str(), Some("error" | "assert")) => {
                let args = params["args"].as_array().into_iter().flatten();
                let texts: Vec<String> = args
                    .map(|a| a["value"].as_str().map(String::from).unwrap_or_else(|| a["description"].to_string()))
                    .collect();
                self.errors.push(format!("console.{}: {}", params["type"].as_str().unwrap(), texts.join(" ")));
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                let text = details["exception"]["description"].as_str().or(details["text"].as_str());
                self.errors.push(format!("uncaught: {}", text.unwrap_or_default()));
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                let field = |name: &str| entry[name].as_str().unwrap_or_default();
                let text = field("text");
                if field("level") == "error" || text.contains("Content Security Policy") {
                    self.errors.push(format!("{} {}: {text} ({})", field("source"), field("level"), field("url")));
                }
            }
            "Network.requestWillBeSent" => self.urls.push(params["request"]["url"].as_str().unwrap_or_default().into()),
            "Network.webSocketCreated" => self.urls.push(params["url"].as_str().unwrap_or_default().into()),
            "Page.lifecycleEvent" if params["name"] == "load" => {
                self.loaded.push(params["loaderId"].as_str().unwrap_or_default().into())
            }
            _ => {}
        }
    }
}

impl Drop for Page {
    /// Closes the tab (best effort: the browser may be gone).
    fn drop(&mut self) {
        let close = json!({"id": self.next_id + 1, "method": "Page.close", "params": {}});
        let _ = self.ws.send(Message::text(close.to_string()));
    }
}

/// JavaScript that is the element `selector` matches, or throws.
fn find(selector: &str) -> String {
    let sel = Value::from(selector);
    format!("(document.querySelector({sel}) || (() => {{ throw new Error('no element matches ' + {sel}); }})())")
}

/// JavaScript's truthiness of a value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// Standard base64 (what DevTools sends binary data as).
fn base64_decode(text: &str) -> Vec<u8> {
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {:?}", c as char),
    };
    let (mut out, mut bits, mut acc) = (Vec::with_capacity(text.len() / 4 * 3), 0, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6 | u32::from(sextet(c))) & 0xffff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// chat_dashboard on a free port of 127.0.0.1; killed on drop.
struct Dashboard {
    child: Child,
    log: PathBuf,
}

impl Dashboard {
    /// Starts it and returns its page's URL once it listens.
    fn start(w: &World) -> (Dashboard, String) {
        let log = std::env::temp_dir().join(unique("dashboard-log-"));
        let child = w
            .command(env!("CARGO_BIN_EXE_chat_dashboard"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBE_API_URL")
            .env("BIND_ADDR", "127.0.0.1")
            .env("DASHBOARD_PORT", "0")
            .env("SAMPLE_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .expect("spawn chat_dashboard");
        let dashboard = Dashboard { child, log };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let text = std::fs::read_to_string(&dashboard.log).unwrap_or_default();
            if let Some(addr) = text.split("dashboard on http://").nth(1).and_then(|a| a.split_once('/')) {
                return (dashboard, format!("http://{}/", addr.0));
            }
            assert!(Instant::now() < deadline, "chat_dashboard not listening after {TIMEOUT:?}: {text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

#[test]
fn the_browser_harness_drives_the_dashboard_and_sees_no_csp_violation() {
    let w = World::new("browser_dashboard");
    let server = w.start_server();
    let mut user = server.connect();
    user.signup(&unique("seen"), "pw");
    let (_dashboard, url) = Dashboard::start(&w);

    let browser = Browser::launch(1280, 1000);
    let mut page = browser.new_page(&url);
    let online = "document.getElementById('online-users').textContent";
    page.wait_for("one user online", &format!("{online} === '1'"), Duration::from_secs(20));
    assert_eq!(page.eval("[window.innerWidth, window.innerHeight]"), json!([1280, 1000]));
    let mut errors = page.console_errors();
    // The dashboard serves no icon: chromium's request for one is a 404.
    errors.retain(|e| !(e.contains("status of 404") && e.ends_with("/favicon.ico)")));
    assert_eq!(errors, Vec::<String>::new(), "no error, the page breaks no rule of its own");
    let urls = page.requested_urls();
    assert!(urls.iter().any(|u| u.ends_with("/api/status")), "{urls:#?}");
    assert!(urls.iter().all(|u| u.starts_with(&url)), "only its own server: {urls:#?}");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("browser-"));
    std::fs::create_dir_all(&dir).unwrap();
    page.screenshot(&dir.join("dashboard.png"));
    let png = std::fs::read(dir.join("dashboard.png")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000, "{} bytes", png.len());
}

/// Its own form: what was submitted and after how many keydowns; an image
/// its own CSP forbids.
const FORM: &str = r#"<!doctype html>
<meta http-equiv="Content-Security-Policy" content="img-src 'none'">
<form id="form"><input id="word"><input id="other"><button id="go">Go</button></form>
<ol id="sent"></ol>
<img src="data:,">
<script>
  let keys = 0;
  document.getElementById('word').addEventListener('keydown', () => keys++);
  document.getElementById('form').addEventListener('submit', e => {
    e.preventDefault();
    const li = document.createElement('li');
    li.textContent = document.getElementById('word').value + '/' + keys;
    document.getElementById('sent').append(li);
    document.getElementById('word').value = '';
    keys = 0;
  });
</script>"#;

#[test]
fn the_browser_harness_types_key_by_key_or_a_word_at_once_and_sees_a_csp_violation() {
    let encoded: String = FORM
        .bytes()
        .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect();
    let browser = Browser::launch(800, 600);
    let mut page = browser.new_page(&format!("data:text/html;charset=utf-8,{encoded}"));
    let sent = |n: usize| format!("document.querySelectorAll('#sent li').length === {n}");
    let last = "document.querySelector('#sent li:last-child').textContent";

    page.type_keys("#word", "héllo w0rld");
    page.press_enter();
    page.wait_for("the first submission", &sent(1), TIMEOUT);
    assert_eq!(page.eval(last), "héllo w0rld/12", "one keydown per character and Enter");

    page.type_text("#word", "你好");
    page.press_enter();
    page.wait_for("the second submission", &sent(2), TIMEOUT);
    assert_eq!(page.eval(last), "你好/1", "inserted at once: only Enter's keydown");

    page.type_keys("#word", "ok");
    page.press_tab();
    assert_eq!(page.eval("document.activeElement.id"), "other");
    page.click("#go");
    page.wait_for("the click's submission", &sent(3), TIMEOUT);
    assert_eq!(page.eval(last), "ok/3", "Tab's keydown counts, then the focus left");

    let errors = page.console_errors();
    assert!(
        errors.len() == 1 && errors[0].contains("Content Security Policy") && errors[0].contains("img-src"),
        "{errors:#?}"
    );
    let urls = page.requested_urls();
    assert!(urls.iter().all(|u| u.starts_with("data:")), "{urls:#?}");
}
