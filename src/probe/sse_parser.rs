//! A small incremental parser for `text/event-stream` bodies (the fields MCP uses: event, data, id).

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent (as the SSE spec says).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// Feeds raw body chunks and yields complete events; chunks may split lines and UTF-8 sequences.
#[derive(Debug, Default)]
pub struct SseParser {
    pending: Vec<u8>,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    saw_field: bool,
}

impl SseParser {
    /// A parser with no buffered input.
    pub fn new() -> Self {
        Self::default()
    }

    /// Consumes a chunk of the body and returns the events it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        self.pending.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
            let mut line: Vec<u8> = self.pending.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            if let Some(event) = self.take_line(&line) {
                events.push(event);
            }
        }
        events
    }

    fn take_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            // A comment, used by servers as keep-alive.
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            // `retry` and unknown fields do not matter to a probe.
            _ => return None,
        }
        self.saw_field = true;
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        if !self.saw_field {
            return None;
        }
        self.saw_field = false;
        let event = self.event.take().unwrap_or_else(|| "message".to_owned());
        let data = std::mem::take(&mut self.data).join("\n");
        let id = self.id.take();
        Some(SseEvent { event, data, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_endpoint_then_message() {
        let mut parser = SseParser::new();
        let events = parser.push(
            b"event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n: ping\n\nevent: message\ndata: {\"a\":1}\n\n",
        );
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, "endpoint");
        assert_eq!(events[0].data, "/messages/?session_id=abc");
        assert_eq!(events[1].event, "message");
        assert_eq!(events[1].data, "{\"a\":1}");
    }

    #[test]
    fn handles_chunks_split_anywhere() {
        let body = "event: message\ndata: {\"text\":\"zeit \u{e4}\"}\nid: 7\n\n";
        let bytes = body.as_bytes();
        for split in 1..bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..split]);
            events.extend(parser.push(&bytes[split..]));
            assert_eq!(events.len(), 1, "split at {split}");
            assert_eq!(events[0].data, "{\"text\":\"zeit \u{e4}\"}");
            assert_eq!(events[0].id.as_deref(), Some("7"));
        }
    }

    #[test]
    fn joins_multiline_data_and_defaults_event_name() {
        let mut parser = SseParser::new();
        let events = parser.push(b"data: a\ndata: b\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                event: "message".into(),
                data: "a\nb".into(),
                id: None
            }]
        );
    }

    #[test]
    fn comments_alone_dispatch_nothing() {
        let mut parser = SseParser::new();
        assert!(parser.push(b": keep-alive\n\n\n").is_empty());
    }
}
