//! The web client in a real headless Chromium (tests/integration/browser.rs):
//! people on two pods and a terminal user talk; a pod is drained under the
//! browsers and they resume; hostile names and messages stay text; the page
//! fetches nothing from another host and is usable at 360 px and by
//! keyboard. The README's screenshot is taken here.

use std::path::PathBuf;
use std::time::Duration;

use crate::browser::{Browser, Page};
use crate::proxy::Proxy;
use crate::support::{unique, World, NO_RATE_LIMITS};

const WEB: (&str, &str) = ("WEB_PORT", "0");
const WAIT: Duration = Duration::from_secs(20);

/// A JavaScript string literal of `s`.
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Opens the page at `url` and signs up `name`, typing as a person does
/// (key by key, then Enter in the password field).
fn sign_up(browser: &Browser, url: &str, name: &str) -> Page {
    let mut page = browser.new_page(url);
    page.wait_for("the page connected", "document.body.dataset.connected === 'yes'", WAIT);
    page.type_keys("#login-username", name);
    page.type_text("#login-password", "pw");
    page.click("#signup-button");
    page.wait_for("the contact list after signing up", "document.body.dataset.screen === 'contacts'", WAIT);
    page
}

/// From anywhere, the contact list, then the conversation with `who`.
fn open_conversation(page: &mut Page, who: &str) {
    page.click("#tab-contacts");
    let row = format!("#contact-list li[data-contact={}] button", js(who));
    page.wait_for(&format!("{who} in the contact list"), &format!("!!document.querySelector({})", js(&row)), WAIT);
    page.click(&row);
    page.wait_for(&format!("the conversation with {who}"), "document.body.dataset.screen === 'conversation'", WAIT);
}

/// Whether a message whose text is `text` is shown, confirmed (not
/// pending), exactly once.
fn shown_once(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li.message')].filter(m => m.querySelector('.text')?.textContent === {} && !m.classList.contains('pending')).length === 1",
        js(text)
    )
}

fn count_of(text: &str) -> String {
    format!(
        "[...document.querySelectorAll('#messages li.message')].filter(m => m.querySelector('.text')?.textContent === {}).length",
        js(text)
    )
}

fn send(page: &mut Page, text: &str, key_by_key: bool) {
    if key_by_key {
        page.type_keys("#message-input", text);
    } else {
        page.type_text("#message-input", text);
    }
    page.press_enter();
    page.wait_for(&format!("{text:?} sent and confirmed"), &shown_once(text), WAIT);
    assert_eq!(page.eval("document.querySelector('#message-input').value"), "", "Enter clears the input");
}

/// Nothing the page did went beyond `origin`, and nothing broke its policy.
fn assert_clean(page: &mut Page, origin_port: u16) {
    let errors = page.console_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    let own = [format!("http://127.0.0.1:{origin_port}/"), format!("ws://127.0.0.1:{origin_port}/")];
    let foreign: Vec<String> =
        page.requested_urls().into_iter().filter(|u| !own.iter().any(|o| u.starts_with(o.as_str()))).collect();
    assert!(foreign.is_empty(), "fetched from elsewhere: {foreign:?}");
}

#[test]
fn browsers_on_two_pods_and_a_terminal_user_talk() {
    let w = World::new("web_client_talk");
    let pods = [w.start_server_with(&[WEB, NO_RATE_LIMITS]), w.start_server_with(&[WEB, NO_RATE_LIMITS])];
    let (alice, bob, carol) = (unique("ann"), unique("ben"), unique("cat"));
    let browser = Browser::launch(1280, 900);
    let (port_a, port_b) = (pods[0].web_port.unwrap(), pods[1].web_port.unwrap());
    let mut a = sign_up(&browser, &format!("http://127.0.0.1:{port_a}/"), &alice);
    let mut b = sign_up(&browser, &format!("http://127.0.0.1:{port_b}/"), &bob);
    let mut c = pods[1].connect();
    c.signup(&carol, "pw");

    // Bob is online for Alice (on the other pod).
    a.click("#contact-refresh");
    a.wait_for(
        "Bob shown online",
        &format!("!!document.querySelector('#contact-list li[data-contact={}] .online, #contact-list li.online[data-contact={}]')", js(&bob), js(&bob)),
        WAIT,
    );
    open_conversation(&mut a, &bob);
    send(&mut a, "hello Ben, typed key by key", true);
    // Bob sees an unread count, then the message in the conversation.
    b.click("#contact-refresh");
    b.wait_for(
        "an unread count from Ann",
        &format!(
            "document.querySelector('#contact-list li[data-contact={}] .unread')?.textContent.includes('1')",
            js(&alice)
        ),
        WAIT,
    );
    open_conversation(&mut b, &alice);
    b.wait_for("Ann's message in the history", &format!("{} === 1", count_of("hello Ben, typed key by key")), WAIT);
    send(&mut b, "hi Ann, a whole word at once", false);
    a.wait_for("Ben's answer, live", &format!("{} === 1", count_of("hi Ann, a whole word at once")), WAIT);
    // The terminal user writes to Ann: a notification while she talks to Ben.
    c.open_conversation(&alice);
    c.send("from the terminal");
    c.line();
    open_conversation(&mut a, &carol);
    a.wait_for("the terminal user's message", &format!("{} === 1", count_of("from the terminal")), WAIT);
    // The same text twice is two messages, shown twice.
    for _ in 0..2 {
        c.send("ok");
        c.line();
    }
    a.wait_for("the same text twice, twice", &format!("{} === 2", count_of("ok")), WAIT);
    send(&mut a, "back to the terminal", false);
    let got = c.line();
    assert!(got.contains(&alice) && got.ends_with("back to the terminal"), "{got}");
    // Times are the browser's, not the server's UTC text.
    let time = a.eval("document.querySelector('#messages li.message .time')?.textContent || ''");
    assert!(!time.as_str().unwrap_or_default().ends_with('Z'), "a time shown as UTC text: {time}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-client.png");
    a.screenshot(&shot);
    if let Ok(dir) = std::env::var("CHATP_SCREENSHOT_DIR") {
        std::fs::copy(&shot, PathBuf::from(dir).join("web-client.png")).unwrap();
    }
    assert_clean(&mut a, port_a);
    assert_clean(&mut b, port_b);
}

#[test]
fn a_drained_pod_moves_its_browsers_and_they_resume_without_losing_or_repeating() {
    let w = World::new("web_client_drain");
    let env = [WEB, NO_RATE_LIMITS, ("DRAIN_SECS", "3")];
    let mut pods = [w.start_server_with(&env), w.start_server_with(&env)];
    // A Service in front of both pods' web ports.
    let service = Proxy::balance(pods.iter().map(|p| p.web_port.unwrap()).collect());
    let url = format!("http://127.0.0.1:{}/", service.port);
    let (alice, bob) = (unique("dan"), unique("eve"));
    let browser = Browser::launch(1280, 900);
    let mut a = sign_up(&browser, &url, &alice);
    let mut b = sign_up(&browser, &url, &bob);
    open_conversation(&mut a, &bob);
    open_conversation(&mut b, &alice);
    send(&mut a, "before the drain", false);
    b.wait_for("the first message", &format!("{} === 1", count_of("before the drain")), WAIT);

    // SAFETY: a signal to our own child, as Kubernetes sends it.
    unsafe { libc::kill(pods[0].child.id() as i32, libc::SIGTERM) };
    assert!(pods[0].child.wait().unwrap().success(), "the drained pod exits cleanly");
    for page in [&mut a, &mut b] {
        page.wait_for(
            "connected again, in the conversation",
            "document.body.dataset.connected === 'yes' && document.body.dataset.screen === 'conversation'",
            WAIT,
        );
    }
    send(&mut a, "after the drain", false);
    b.wait_for("the message after the drain", &format!("{} === 1", count_of("after the drain")), WAIT);
    send(&mut b, "answer after the drain", true);
    a.wait_for("the answer", &format!("{} === 1", count_of("answer after the drain")), WAIT);
    for (page, text) in [(&mut a, "before the drain"), (&mut b, "before the drain")] {
        assert_eq!(page.eval(&count_of(text)), 1, "shown once after the resume");
    }
    assert_eq!(a.eval("document.querySelectorAll('#messages li.unconfirmed').length"), 0);
    assert_eq!(a.eval("document.querySelector('#login-view').hidden"), true, "not asked to log in again");
    // The Service sent one of them to each pod: the drained pod's user
    // resumed on the other.
    let resumed = pods[1].log_text();
    assert!(
        [&alice, &bob].iter().any(|u| resumed.contains(&format!("session of {u} resumed"))),
        "nobody resumed on the remaining pod"
    );
}

#[test]
fn hostile_names_and_messages_are_shown_as_text() {
    let w = World::new("web_client_hostile");
    let pod = w.start_server_with(&[WEB, NO_RATE_LIMITS]);
    let port = pod.web_port.unwrap();
    let browser = Browser::launch(1280, 900);
    let viewer = unique("vic");
    let mut page = sign_up(&browser, &format!("http://127.0.0.1:{port}/"), &viewer);
    let hostile_name = format!("<img src=x onerror=alert(1)>{}", &unique("h")[..6]);
    let mut t = pod.connect();
    t.signup(&hostile_name, "pw");
    let messages = [
        "<script>document.title='owned'</script>",
        "<b>bold?</b> <a href=\"javascript:alert(1)\">link</a>",
        "\u{202e}txet desrever\u{202c} and \u{2067}isolate\u{2069}",
        "&lt;not an entity&gt; &amp;",
    ];
    t.open_conversation(&viewer);
    for m in messages {
        t.send(m);
        t.line();
    }
    open_conversation(&mut page, &hostile_name);
    for m in messages {
        page.wait_for(&format!("{m:?} shown as text"), &format!("{} === 1", count_of(m)), WAIT);
    }
    page.click("#tab-groups");
    page.type_text("#group-name", "<i>group</i>");
    page.press_enter();
    page.wait_for(
        "the hostile group name as text",
        "[...document.querySelectorAll('#group-list li')].some(li => li.textContent.includes('<i>group</i>'))",
        WAIT,
    );
    assert_eq!(page.eval("document.title"), "chatp", "no script of a message ran");
    let markup = "#messages img, #messages script, #messages b, #messages a, #group-list i, #contact-list img";
    assert_eq!(page.eval(&format!("document.querySelectorAll({}).length", js(markup))), 0, "markup from a message");
    assert_clean(&mut page, port);
}

#[test]
fn at_360_pixels_and_by_keyboard_alone_the_page_is_usable() {
    let w = World::new("web_client_small");
    let pod = w.start_server_with(&[WEB, NO_RATE_LIMITS]);
    let port = pod.web_port.unwrap();
    let browser = Browser::launch(360, 740);
    let name = unique("kay");
    let mut page = browser.new_page(&format!("http://127.0.0.1:{port}/"));
    page.wait_for("the page connected", "document.body.dataset.connected === 'yes'", WAIT);
    // Every control has a label a screen reader reads.
    let unlabelled = page.eval(
        "[...document.querySelectorAll('input, button')].filter(e => !(e.labels?.length || e.getAttribute('aria-label') || e.textContent.trim())).map(e => e.id)",
    );
    assert_eq!(unlabelled, serde_json::json!([]), "controls without a label");
    // Keyboard only: type the name, Tab to the password, Enter submits
    // (a login of an unknown user is refused in words).
    page.type_keys("#login-username", &name);
    page.press_tab();
    assert_eq!(page.eval("document.activeElement.id"), "login-password");
    page.type_keys("#login-password", "pw");
    page.press_enter();
    page.wait_for("the refusal, said", "document.querySelector('#login-error').textContent.trim().length > 0", WAIT);
    page.eval("document.querySelector('#login-username').value = ''");
    page.type_text("#login-username", &name);
    page.click("#signup-button");
    page.wait_for("signed up", "document.body.dataset.screen === 'contacts'", WAIT);
    let width = page.eval("document.documentElement.scrollWidth");
    assert!(width.as_u64().unwrap() <= 360, "the page scrolls sideways at 360 px: {width}");
    assert_clean(&mut page, port);
}
