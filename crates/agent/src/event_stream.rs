//! The one `text/event-stream` parser of the project (agent and probe), incremental and
//! bounded: an event that grows past the limit is refused with an error instead of buffered, so
//! a server cannot make its client hold memory without bound.
//!
//! `sse-stream` (already in the tree through rmcp) has no size limit, hence this module
//! (decision 0405).

/// Largest event the parser buffers by default (1 MiB), counting its field lines.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One dispatched server-sent event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, `message` when absent (as the SSE specification says).
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, if any.
    pub id: Option<String>,
}

/// An event (or a single line) grew past the parser's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream event exceeded {limit} bytes; the stream was refused")]
pub struct EventTooLarge {
    /// The limit in bytes.
    pub limit: usize,
}

/// Feeds raw body chunks and yields complete events; chunks may split lines and UTF-8
/// sequences anywhere.
#[derive(Debug)]
pub struct SseParser {
    limit: usize,
    /// Bytes of the line not yet terminated.
    pending: Vec<u8>,
    /// Bytes taken by the fields of the event being built.
    event_bytes: usize,
    event: Option<String>,
    data: Vec<String>,
    id: Option<String>,
    saw_field: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with the default limit, [`MAX_EVENT_BYTES`].
    pub fn new() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }

    /// A parser that refuses events larger than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            pending: Vec::new(),
            event_bytes: 0,
            event: None,
            data: Vec::new(),
            id: None,
            saw_field: false,
        }
    }

    /// Consumes a chunk of the body and returns the events it completed, or an error once the
    /// event being built passes the limit (the parser keeps nothing of it).
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, EventTooLarge> {
        let mut events = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            let (line, tail) = rest.split_at(end);
            rest = &tail[1..];
            self.pending.extend_from_slice(line);
            self.check()?;
            let mut line = std::mem::take(&mut self.pending);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if let Some(event) = self.take_line(&String::from_utf8_lossy(&line)) {
                events.push(event);
            }
        }
        self.pending.extend_from_slice(rest);
        self.check()?;
        Ok(events)
    }

    fn check(&mut self) -> Result<(), EventTooLarge> {
        if self.event_bytes + self.pending.len() > self.limit {
            *self = Self::with_limit(self.limit);
            return Err(EventTooLarge { limit: self.limit });
        }
        Ok(())
    }

    fn take_line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            // A comment, used by servers as keep-alive.
            return None;
        }
        self.event_bytes += line.len() + 1;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => self.data.push(value.to_owned()),
            "id" => self.id = Some(value.to_owned()),
            // `retry` and unknown fields matter to no MCP client here.
            _ => return None,
        }
        self.saw_field = true;
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        self.event_bytes = 0;
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
    fn parses_endpoint_then_message_with_crlf_and_comments() {
        let mut parser = SseParser::new();
        let events = parser
            .push(b"event: endpoint\r\ndata: /messages/?session_id=abc\r\n\r\n: ping\n\nevent: message\ndata: {\"a\":\ndata: 1}\n\nevent: mess")
            .unwrap();
        assert_eq!(
            events,
            [
                SseEvent {
                    event: "endpoint".into(),
                    data: "/messages/?session_id=abc".into(),
                    id: None,
                },
                SseEvent {
                    event: "message".into(),
                    data: "{\"a\":\n1}".into(),
                    id: None,
                },
            ]
        );
        assert_eq!(parser.pending, b"event: mess");
    }

    #[test]
    fn handles_chunks_split_anywhere_including_inside_utf8() {
        let body = "event: message\ndata: {\"text\":\"grüße 🌍\"}\nid: 7\n\n";
        let bytes = body.as_bytes();
        for split in 1..bytes.len() {
            let mut parser = SseParser::new();
            let mut events = parser.push(&bytes[..split]).unwrap();
            events.extend(parser.push(&bytes[split..]).unwrap());
            assert_eq!(events.len(), 1, "split at {split}");
            assert_eq!(events[0].data, "{\"text\":\"grüße 🌍\"}");
            assert_eq!(events[0].id.as_deref(), Some("7"));
        }
    }

    #[test]
    fn joins_multiline_data_and_defaults_the_event_name() {
        let mut parser = SseParser::new();
        let events = parser.push(b"data: a\ndata: b\n\n").unwrap();
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
        assert!(parser.push(b": keep-alive\n\n\n").unwrap().is_empty());
    }

    #[test]
    fn an_endless_line_is_refused_not_buffered() {
        let mut parser = SseParser::with_limit(1024);
        let chunk = vec![b'x'; 256];
        let mut pushes = 0;
        let error = loop {
            pushes += 1;
            assert!(pushes <= 5, "the parser kept buffering past its limit");
            match parser.push(&chunk) {
                Ok(events) => assert!(events.is_empty()),
                Err(error) => break error,
            }
        };
        assert_eq!(error, EventTooLarge { limit: 1024 });
        assert!(error.to_string().contains("exceeded 1024 bytes"), "{error}");
        assert!(parser.pending.capacity() <= 1024 + 256);
        assert!(parser.pending.is_empty());
    }

    #[test]
    fn an_endless_event_of_many_short_lines_is_refused() {
        let mut parser = SseParser::with_limit(1024);
        let error = (0..100)
            .find_map(|_| {
                parser
                    .push(b"data: 0123456789012345678901234567890\n")
                    .err()
            })
            .expect("refused before 100 lines of 38 bytes");
        assert_eq!(error.limit, 1024);
    }

    #[test]
    fn an_event_just_under_the_limit_passes_and_the_count_restarts_per_event() {
        let mut parser = SseParser::with_limit(1024);
        let mut big = b"data: ".to_vec();
        big.extend(vec![b'y'; 1000]);
        big.extend(b"\n\n");
        for _ in 0..3 {
            let events = parser.push(&big).unwrap();
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].data.len(), 1000);
        }
    }
}
