//! What one CLI process says, as events: its stdout lines, its stderr, and the calls it makes
//! to the hub's tools server.
//!
//! Stdout is read by whoever awaits the next event (a turn, a reset, a warm-up), not by a task
//! of its own: no line crosses a channel or wakes a second task, and while nobody reads, the
//! lines wait in the pipe (a slow client holds the CLI back instead of filling the hub's memory).
//! Stderr is read by a task, since nothing else reads it and a full pipe would block the CLI.

use std::os::fd::{AsRawFd, RawFd};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::{AnyDelimiterCodec, AnyDelimiterCodecError, FramedRead};

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
    let mut frames = FramedRead::new(
        pipe,
        AnyDelimiterCodec::new_with_max_length(b"\n".to_vec(), Vec::new(), max),
    );
    async_stream::stream! {
        // After a decoding error `FramedRead` yields one `None` and then reads on; only that
        // `None` is not the end.
        let mut after_error = false;
        loop {
            match frames.next().await {
                Some(Ok(bytes)) => {
                    after_error = false;
                    yield String::from_utf8_lossy(&bytes).trim_end_matches('\r').to_string();
                }
                // The codec drops the rest of the over-long line.
                Some(Err(AnyDelimiterCodecError::MaxChunkLengthExceeded)) => after_error = true,
                Some(Err(AnyDelimiterCodecError::Io(_))) => return,
                None if after_error => after_error = false,
                None => return,
            }
        }
    }
    .boxed()
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
