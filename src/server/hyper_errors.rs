//! JSON bodies for the answers hyper writes by itself. A request head hyper cannot parse (a
//! target over its 64 KiB limit: 414; headers over its buffer: 431; not HTTP: 400) is
//! answered by hyper before any route or middleware runs, with an empty body. Every error of
//! this API is `{"error": {"code", "message"}}`, so the connection's writer swaps such an
//! answer for one with that body.
//!
//! Hyper writes such an answer as one head with `content-length: 0` and then closes the
//! connection; no answer of ours has that shape (every 4xx of ours is JSON), so nothing else
//! is ever touched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::api::ErrorCode;

/// A connection whose hyper-made error answers carry our JSON error body.
pub struct JsonParseErrors<T> {
    inner: T,
    /// The answer written instead, how much of it is out, and the length hyper asked for.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<T> JsonParseErrors<T> {
    pub fn new(inner: T) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// Our answer for hyper's own error head `head`, if that is what it is.
fn replacement(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let status = text.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let lower = text.to_ascii_lowercase();
    if !text.ends_with("\r\n\r\n")
        || !lower.contains("\r\ncontent-length: 0\r\n")
        || lower.contains("\r\ncontent-type:")
    {
        return None;
    }
    let (reason, code, message) = match status {
        "400" => (
            "Bad Request",
            ErrorCode::BadRequest,
            "the request is not well-formed HTTP",
        ),
        "414" => (
            "URI Too Long",
            ErrorCode::UriTooLong,
            "the request target is too long",
        ),
        "431" => (
            "Request Header Fields Too Large",
            ErrorCode::HeadersTooLarge,
            "the request headers are too large",
        ),
        _ => return None,
    };
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<T: AsyncWrite + Unpin> JsonParseErrors<T> {
    /// Writes the rest of a replacement; then reports hyper's bytes as written.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, done, asked)) = &mut self.pending else {
            unreachable!("only called with a replacement pending")
        };
        while *done < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        let asked = *asked;
        self.pending = None;
        Poll::Ready(Ok(asked))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for JsonParseErrors<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none()
            && let Some(bytes) = replacement(buf)
        {
            self.pending = Some((bytes, 0, buf.len()));
        }
        if self.pending.is_some() {
            return self.poll_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Hyper's own answer is a head alone, so it is the only non-empty slice.
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        if self.pending.is_none()
            && let (Some(head), None) = (nonempty.next(), nonempty.next())
            && let Some(bytes) = replacement(head)
        {
            self.pending = Some((bytes, 0, head.len()));
        }
        if self.pending.is_some() {
            return self.poll_pending(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hyper_s_empty_error_heads_are_replaced() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        let ours = replacement(hyper_414).unwrap();
        let text = String::from_utf8(ours).unwrap();
        assert!(text.starts_with("HTTP/1.1 414 "), "{text}");
        assert!(text.ends_with(
            r#"{"error":{"code":"uri_too_long","message":"the request target is too long"}}"#
        ));
        let json_404 = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert!(replacement(json_404).is_none());
        assert!(replacement(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").is_none());
    }
}
