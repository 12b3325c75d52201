//! What one CLI process says, as events: its stdout lines, its stderr, and the calls it makes
//! to the hub's tools server.
//!
//! Stdout is read by whoever awaits the next event (a turn, a reset, a warm-up), not by a task
//! of its own: no line crosses a channel or wakes a second task, and while nobody reads, the
//! lines wait in the pipe (a slow client holds the CLI back instead of filling the hub's memory).
//! Stderr is read by a task, since nothing else reads it and a full pipe would block the CLI.

use std::os::fd::{AsRawFd, RawFd};

use bytes::{Buf, BytesMut};
use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::{Decoder, FramedRead};

use crate::provider::{Adapter, CliEvent};

/// What a process reports.
#[derive(Debug)]
pub enum ProcessEvent {
    Cli(CliEvent),
    /// Stdout closed: the process is exiting or gone.
    Closed,
}

/// A pipe's lines, read until the pipe closes: a line over `max` bytes is skipped and invalid
/// UTF-8 is replaced; neither ends the stream (a stopped reader would block the CLI on a full
/// pipe, or read a live process as exited).
pub fn lossy_lines(
    pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    max: usize,
) -> BoxStream<'static, String> {
    // The codec never fails; a read error ends the stream (`FramedRead` ends after it).
    FramedRead::new(pipe, LossyLines::new(max))
        .filter_map(|line| std::future::ready(line.ok()))
        .boxed()
}

/// The line splitting of `lossy_lines`. tokio-util's `LinesCodec` fails on invalid UTF-8 and
/// on an over-long line, and `AnyDelimiterCodec` compares every byte with its delimiter list
/// (≈ 2 % of the hub's CPU under load): this one looks for `\n` with `memchr`, replaces
/// invalid UTF-8 and skips over-long lines without an error.
struct LossyLines {
    max: usize,
    /// Where the search for `\n` goes on: the bytes before it hold none.
    searched: usize,
    /// Inside a line over `max` bytes, dropped up to its end.
    skipping: bool,
}

impl LossyLines {
    fn new(max: usize) -> LossyLines {
        LossyLines {
            max,
            searched: 0,
            skipping: false,
        }
    }
}

impl Decoder for LossyLines {
    type Item = String;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<String>> {
        loop {
            // A line is over-long once `max + 1` bytes hold no newline: look no further.
            let read_to = buf.len().min(self.max.saturating_add(1));
            match memchr::memchr(b'\n', &buf[self.searched..read_to]) {
                Some(offset) => {
                    let end = self.searched + offset;
                    self.searched = 0;
                    let line = buf.split_to(end + 1);
                    if !std::mem::take(&mut self.skipping) {
                        return Ok(Some(lossy(&line[..end])));
                    }
                }
                None if self.skipping || buf.len() > self.max => {
                    self.skipping = true;
                    buf.advance(read_to);
                    self.searched = 0;
                    if buf.is_empty() {
                        return Ok(None);
                    }
                }
                None => {
                    self.searched = read_to;
                    return Ok(None);
                }
            }
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> std::io::Result<Option<String>> {
        if let Some(line) = self.decode(buf)? {
            return Ok(Some(line));
        }
        // The last line, without its newline.
        let rest = buf.split();
        self.searched = 0;
        let skipped = std::mem::take(&mut self.skipping);
        Ok((!skipped && !rest.is_empty()).then(|| lossy(&rest)))
    }
}

/// A line's text without its `\r`; invalid UTF-8 replaced.
fn lossy(line: &[u8]) -> String {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(text) => text.to_owned(),
        Err(_) => String::from_utf8_lossy(line).into_owned(),
    }
}

nix::ioctl_read_bad!(fionread, nix::libc::FIONREAD, nix::libc::c_int);

/// Bytes written to the pipe `fd` and not read yet.
fn unread_bytes(fd: RawFd) -> usize {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int; `fd` is the open pipe the caller reads.
    match unsafe { fionread(fd, &mut n) } {
        Ok(_) => usize::try_from(n).unwrap_or(0),
        Err(_) => 0,
    }
}

pub struct Output {
    adapter: &'static dyn Adapter,
    stdout: BoxStream<'static, String>,
    /// The stdout pipe, open as long as `stdout` lives.
    stdout_fd: RawFd,
    stdout_open: bool,
    stderr: mpsc::UnboundedReceiver<CliEvent>,
    calls: mpsc::UnboundedReceiver<ProcessEvent>,
    /// A call that arrived, held back until the lines printed before it are read.
    held: Option<ProcessEvent>,
}

impl Output {
    /// `stderr` carries the events of the stderr reader; `calls` those of the tools server.
    pub fn new(
        adapter: &'static dyn Adapter,
        stdout: impl tokio::io::AsyncRead + AsRawFd + Unpin + Send + 'static,
        max_line: usize,
        stderr: mpsc::UnboundedReceiver<CliEvent>,
        calls: mpsc::UnboundedReceiver<ProcessEvent>,
    ) -> Output {
        Output {
            adapter,
            stdout_fd: stdout.as_raw_fd(),
            stdout: lossy_lines(stdout, max_line),
            stdout_open: true,
            stderr,
            calls,
            held: None,
        }
    }

    /// The next event; `Closed` once stdout has ended (and on every call after). Cancel-safe:
    /// an event is taken from its source only when it is returned (or held, see below).
    ///
    /// gemini prints a call's `tool_use` line and only then makes the call, over a socket the
    /// hub may read first; a turn would then wait on a call it has not seen announced. What is
    /// in the pipe when a call arrives was printed before it, so it comes out first.
    pub async fn next(&mut self) -> ProcessEvent {
        loop {
            if self.held.is_some() {
                let line = if !self.stdout_open {
                    None
                } else if unread_bytes(self.stdout_fd) > 0 {
                    Some(self.stdout.next().await)
                } else {
                    // Lines already read from the pipe and not handed out yet.
                    self.stdout.next().now_or_never()
                };
                match line {
                    Some(Some(line)) => match self.adapter.parse_stdout(&line) {
                        Some(event) => return ProcessEvent::Cli(event),
                        None => continue,
                    },
                    Some(None) => self.stdout_open = false,
                    None => {}
                }
                return self.held.take().expect("held");
            }
            if !self.stdout_open {
                return ProcessEvent::Closed;
            }
            tokio::select! {
                biased;
                line = self.stdout.next() => match line {
                    Some(line) => {
                        if let Some(event) = self.adapter.parse_stdout(&line) {
                            return ProcessEvent::Cli(event);
                        }
                    }
                    None => {
                        self.stdout_open = false;
                        return ProcessEvent::Closed;
                    }
                },
                Some(event) = self.stderr.recv() => return ProcessEvent::Cli(event),
                Some(call) = self.calls.recv() => self.held = Some(call),
            }
        }
    }

    /// Drops what the process said while nobody listened (it sat idle), as far as it has
    /// arrived, without waiting.
    pub fn drain(&mut self) {
        while self.stderr.try_recv().is_ok() {}
        while self.calls.try_recv().is_ok() {}
        self.held = None;
        while self.stdout_open
            && let Some(line) = self.stdout.next().now_or_never()
        {
            self.stdout_open = line.is_some();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderKind;

    #[tokio::test]
    async fn lines_go_on_past_an_overlong_line_and_invalid_utf8() {
        let mut input = Vec::new();
        input.extend_from_slice(b"first\n");
        input.extend(std::iter::repeat_n(b'x', 70 * 1024));
        input.extend_from_slice(b"\nbad \xff\xfe bytes\r\n");
        input.extend(std::iter::repeat_n(b'y', 200 * 1024));
        input.extend_from_slice(b"\nlast\n");
        let lines: Vec<String> = lossy_lines(std::io::Cursor::new(input), 64 * 1024)
            .collect()
            .await;
        assert_eq!(lines, ["first", "bad \u{fffd}\u{fffd} bytes", "last"]);
    }

    /// The codec fed `input` in pieces of `piece` bytes, then told the input ended.
    fn split(input: &[u8], piece: usize, max: usize) -> Vec<String> {
        let mut codec = LossyLines::new(max);
        let mut buf = BytesMut::new();
        let mut lines = Vec::new();
        for chunk in input.chunks(piece) {
            buf.extend_from_slice(chunk);
            while let Some(line) = codec.decode(&mut buf).unwrap() {
                lines.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf).unwrap() {
            lines.push(line);
        }
        lines
    }

    #[test]
    fn lines_split_the_same_however_the_pipe_delivers_them() {
        // max 8: "12345678" fits, "123456789" is skipped, however the bytes arrive.
        let input = b"a\r\n\nexactly8\n123456789\nx\xffy\n123456789012345678\r\nlast".as_slice();
        for piece in [1, 2, 3, 5, 8, 9, 64] {
            assert_eq!(
                split(input, piece, 8),
                ["a", "", "exactly8", "x\u{fffd}y", "last"],
                "pieces of {piece}"
            );
        }
        // A line without its newline at the end: kept when it fits, skipped when it is too long.
        assert_eq!(split(b"ok\nunfinished", 4, 16), ["ok", "unfinished"]);
        assert_eq!(split(b"ok\nfar too long to fit", 4, 8), ["ok"]);
        assert!(split(b"", 1, 8).is_empty());
    }

    #[tokio::test]
    async fn what_an_idle_process_printed_is_dropped_before_its_next_turn() {
        use std::io::Write;
        let (read, write) = nix::unistd::pipe().unwrap();
        let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(read).unwrap();
        let (_calls_tx, calls) = mpsc::unbounded_channel();
        let (stderr_tx, stderr) = mpsc::unbounded_channel();
        let mut output = Output::new(ProviderKind::Claude.adapter(), stdout, 1024, stderr, calls);
        let mut pipe = std::fs::File::from(write);
        // A late answer, printed while nobody listened: it must not end the next turn.
        writeln!(
            pipe,
            r#"{{"type":"result","subtype":"success","is_error":false,"result":"stale"}}"#
        )
        .unwrap();
        stderr_tx
            .send(CliEvent::Failure(crate::provider::Failure::Crashed(
                "old".into(),
            )))
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        output.drain();
        writeln!(
            pipe,
            r#"{{"type":"system","subtype":"init","session_id":"new","apiKeySource":"none"}}"#
        )
        .unwrap();
        let ProcessEvent::Cli(CliEvent::Started { session_id, .. }) = output.next().await else {
            panic!("the stale line came out")
        };
        assert_eq!(session_id.as_deref(), Some("new"));
    }

    #[tokio::test]
    async fn a_call_over_http_comes_after_the_lines_printed_before_it() {
        use std::io::Write;
        for _ in 0..20 {
            let (read, write) = nix::unistd::pipe().unwrap();
            let stdout = tokio::net::unix::pipe::Receiver::from_owned_fd(read).unwrap();
            let (calls_tx, calls) = mpsc::unbounded_channel();
            let (_stderr_tx, stderr) = mpsc::unbounded_channel();
            let mut output =
                Output::new(ProviderKind::Gemini.adapter(), stdout, 1024, stderr, calls);
            // The CLI prints its calls, then makes the first: the call can reach the hub
            // before the pipe is seen readable.
            let mut pipe = std::fs::File::from(write);
            for (id, city) in [("a", "Oslo"), ("b", "Rome")] {
                writeln!(pipe, r#"{{"type":"tool_use","tool_name":"mcp_hub_f","tool_id":"{id}","parameters":{{"city":"{city}"}}}}"#).unwrap();
            }
            calls_tx
                .send(ProcessEvent::Cli(CliEvent::ToolCallWaiting {
                    request_id: "r".into(),
                    rpc_id: serde_json::Value::from(1),
                    tool_use_id: None,
                    name: "f".into(),
                    arguments: serde_json::json!({"city": "Oslo"}),
                }))
                .unwrap();
            drop(pipe);
            let mut order = Vec::new();
            loop {
                order.push(match output.next().await {
                    ProcessEvent::Cli(CliEvent::ToolUse { id, .. }) => id,
                    ProcessEvent::Cli(CliEvent::ToolCallWaiting { .. }) => "call".into(),
                    ProcessEvent::Closed => break,
                    other => panic!("{other:?}"),
                });
            }
            assert_eq!(order, ["a", "b", "call"]);
            assert!(matches!(output.next().await, ProcessEvent::Closed));
        }
    }
}
