//! Cross-pod envelopes: how a notice travels on a pod's channel and on the
//! broadcast channel, readable by pods that predate message ids.

use crate::protocol::{self, MessageKind, Notification};

use super::Notice;

/// Marks the id element of an envelope; no username holds a `:`, so pods
/// that predate ids take it for a recipient that is not theirs and ignore it.
const ID_MARK: &str = "#id:";

pub(super) fn id_tag(n: &Notice) -> Option<String> {
    n.id.map(|id| format!("{ID_MARK}{}:{id}", n.kind.as_str()))
}

fn parse_id_tag(tag: &str) -> Option<(MessageKind, i64)> {
    let (kind, id) = tag.strip_prefix(ID_MARK)?.split_once(':')?;
    Some((MessageKind::parse(kind)?, id.parse().ok()?))
}

/// Encodes a notice for named recipients: the line, one name per line
/// (neither can hold a `\n`), then the id element.
pub fn encode_direct(n: &Notice, recipients: &[&str]) -> String {
    let mut s = String::with_capacity(n.line.len() + 32 + recipients.iter().map(|r| r.len() + 1).sum::<usize>());
    s.push_str(&n.line);
    for r in recipients {
        s.push('\n');
        s.push_str(r);
    }
    if let Some(tag) = id_tag(n) {
        s.push('\n');
        s.push_str(&tag);
    }
    s
}

/// Decodes [`encode_direct`]: (notice, recipients). `kind` is the kind a
/// pod without ids would mean.
pub fn decode_direct(payload: &str) -> Option<(Notice, Vec<&str>)> {
    let mut parts = payload.split('\n');
    let line = parts.next()?;
    let mut id = None;
    let mut recipients = Vec::new();
    for p in parts.filter(|r| !r.is_empty()) {
        match parse_id_tag(p) {
            Some(tag) => id = Some(tag),
            None => recipients.push(p),
        }
    }
    if recipients.is_empty() {
        return None;
    }
    let kind = match (id, protocol::parse_notification(line)) {
        (Some((kind, _)), _) => kind,
        (None, Some(Notification::GroupMessage { .. })) => MessageKind::Group,
        (None, _) => MessageKind::Private,
    };
    Some((Notice { kind, id: id.map(|(_, i)| i), line: line.to_string() }, recipients))
}

/// Encodes a broadcast: origin pod (with the id element after a `#`, which
/// pods without ids take as another pod's name), sender, line.
pub fn encode_broadcast(origin_pod: &str, sender: &str, n: &Notice) -> String {
    match n.id {
        Some(id) => format!("{origin_pod}#{id}\n{sender}\n{}", n.line),
        None => format!("{origin_pod}\n{sender}\n{}", n.line),
    }
}

/// Decodes [`encode_broadcast`]: (origin pod, sender, notice).
pub fn decode_broadcast(payload: &str) -> Option<(&str, &str, Notice)> {
    let mut parts = payload.splitn(3, '\n');
    let (origin, sender, line) = (parts.next()?, parts.next()?, parts.next()?);
    let (origin, id) = match origin.rsplit_once('#') {
        Some((pod, id)) => (pod, id.parse().ok()),
        None => (origin, None),
    };
    Some((origin, sender, Notice { kind: MessageKind::Broadcast, id, line: line.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol;

    #[test]
    fn envelopes_round_trip() {
        let n = Notice { kind: MessageKind::Private, id: Some(42), line: "MESSAGE:a:x:y".into() };
        let p = encode_direct(&n, &["bob", "c d"]);
        assert_eq!(decode_direct(&p), Some((n.clone(), vec!["bob", "c d"])));
        assert_eq!(decode_direct("line only"), None);
        // From a pod without ids: the kind is read off the line.
        let payload = format!("{}\nbob", protocol::group_message("g", "a", "hi"));
        let old = decode_direct(&payload).unwrap();
        assert_eq!((old.0.kind, old.0.id), (MessageKind::Group, None));
        let b = Notice { kind: MessageKind::Broadcast, id: Some(7), line: "BROADCAST:ann:hi:1".into() };
        assert_eq!(decode_broadcast(&encode_broadcast("pod-1", "ann", &b)), Some(("pod-1", "ann", b.clone())));
        let old = decode_broadcast("pod-1\nann\nBROADCAST:ann:hi:1").unwrap();
        assert_eq!(old.2.id, None);
    }
}
