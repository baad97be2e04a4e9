//! Frames in, bytes out.
//!
//! Every encoder validates first and writes after, so on error `out` is unchanged.

use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::gen_properties;
use amq_protocol::protocol::{gen_class, AMQPClass, BasicProperties};
use bytes::{BufMut, Bytes, BytesMut};

use crate::error::EncodeError;
use crate::{
    BASIC_CLASS_ID, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
    FRAME_OVERHEAD,
};

/// The heartbeat frame: type 8, channel 0, size 0, frame-end.
pub const HEARTBEAT_FRAME: [u8; 8] = [FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END];

/// Method ids of the content-bearing basic methods the server sends.
const DELIVER: u16 = 60;
const GET_OK: u16 = 71;
const RETURN: u16 = 50;

fn frame_len(payload: usize) -> Result<u32, EncodeError> {
    u32::try_from(payload)
        .ok()
        .filter(|n| *n <= u32::MAX - FRAME_OVERHEAD)
        .ok_or(EncodeError::PayloadTooLarge(payload))
}

fn put_frame_header(out: &mut BytesMut, frame_type: u8, channel: u16, size: u32) {
    out.put_u8(frame_type);
    out.put_u16(channel);
    out.put_u32(size);
}

fn short_str(field: &'static str, s: &str) -> Result<u8, EncodeError> {
    u8::try_from(s.len()).map_err(|_| EncodeError::ShortStringTooLong {
        field,
        len: s.len(),
    })
}

fn put_short_str(out: &mut BytesMut, len: u8, s: &str) {
    out.put_u8(len);
    out.put_slice(s.as_bytes());
}

/// The largest body payload per frame under `frame_max` (0: no limit).
fn body_chunk(frame_max: u32) -> Result<usize, EncodeError> {
    match frame_max {
        0 => Ok((u32::MAX - FRAME_OVERHEAD) as usize),
        n if n <= FRAME_OVERHEAD => Err(EncodeError::FrameMaxTooSmall(n)),
        n => Ok((n - FRAME_OVERHEAD) as usize),
    }
}

/// Serializes a method's payload (class id, method id, arguments) with amq-protocol.
pub fn method_payload(method: &AMQPClass) -> Result<Vec<u8>, EncodeError> {
    let ctx = gen_class(method)(WriteContext::from(Vec::new()))
        .map_err(|e| EncodeError::Generation(e.to_string()))?;
    Ok(ctx.into_inner().0)
}

/// Writes a method frame.
pub fn encode_method(
    channel: u16,
    method: &AMQPClass,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let payload = method_payload(method)?;
    let size = frame_len(payload.len())?;
    out.reserve(payload.len() + FRAME_OVERHEAD as usize);
    put_frame_header(out, FRAME_METHOD, channel, size);
    out.put_slice(&payload);
    out.put_u8(FRAME_END);
    Ok(())
}

/// Writes a heartbeat frame ([`HEARTBEAT_FRAME`]).
pub fn encode_heartbeat(out: &mut BytesMut) {
    out.put_slice(&HEARTBEAT_FRAME);
}

/// Writes a content header frame carrying `raw_header` unchanged (a
/// [`ContentHeader::raw`](crate::ContentHeader::raw) or the output of
/// [`encode_header_from_properties`]), then the body in frames of at most `frame_max - 8`
/// payload octets (`frame_max` 0: one frame). A zero-size body gets no body frame.
///
/// The header frame is not split (the protocol cannot): like RabbitMQ, it is written even
/// if it is larger than `frame_max`.
pub fn encode_content(
    channel: u16,
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let plan = ContentPlan::new(raw_header, body, frame_max)?;
    out.reserve(plan.len);
    plan.write(channel, raw_header, body, out);
    Ok(())
}

/// A validated content encoding: header size and body chunking.
struct ContentPlan {
    header_size: u32,
    chunk: usize,
    /// Octets the header and body frames take.
    len: usize,
}

impl ContentPlan {
    fn new(raw_header: &[u8], body: &[u8], frame_max: u32) -> Result<Self, EncodeError> {
        let header_size = frame_len(raw_header.len())?;
        let chunk = body_chunk(frame_max)?;
        let frames = body.len().div_ceil(chunk);
        let len = raw_header.len() + FRAME_OVERHEAD as usize + body.len() + frames * 8;
        Ok(ContentPlan {
            header_size,
            chunk,
            len,
        })
    }

    fn write(&self, channel: u16, raw_header: &[u8], body: &[u8], out: &mut BytesMut) {
        put_frame_header(out, FRAME_HEADER, channel, self.header_size);
        out.put_slice(raw_header);
        out.put_u8(FRAME_END);
        for piece in body.chunks(self.chunk) {
            // piece.len() <= chunk <= u32::MAX - 8
            put_frame_header(out, FRAME_BODY, channel, piece.len() as u32);
            out.put_slice(piece);
            out.put_u8(FRAME_END);
        }
    }
}

/// Encodes a content header payload (class id, weight 0, body size, property flags and
/// list) from parsed properties, for a message that did not arrive over AMQP. The result
/// is what [`encode_content`] and [`encode_delivery`] take as `raw_header`.
pub fn encode_header_from_properties(
    class_id: u16,
    body_size: u64,
    properties: &BasicProperties,
) -> Result<Bytes, EncodeError> {
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&class_id.to_be_bytes());
    head.extend_from_slice(&0u16.to_be_bytes());
    head.extend_from_slice(&body_size.to_be_bytes());
    let ctx = gen_properties(properties)(WriteContext::from(head))
        .map_err(|e| EncodeError::Generation(e.to_string()))?;
    Ok(Bytes::from(ctx.into_inner().0))
}

/// Writes a method frame built by `fields` with a known payload length, then the content.
#[allow(clippy::too_many_arguments)]
fn method_and_content(
    channel: u16,
    method_id: u16,
    args_len: usize,
    fields: impl FnOnce(&mut BytesMut),
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let payload_len = 4 + args_len;
    let size = frame_len(payload_len)?;
    let plan = ContentPlan::new(raw_header, body, frame_max)?;
    out.reserve(payload_len + FRAME_OVERHEAD as usize + plan.len);
    put_frame_header(out, FRAME_METHOD, channel, size);
    out.put_u16(BASIC_CLASS_ID);
    out.put_u16(method_id);
    let before = out.len();
    fields(out);
    debug_assert_eq!(out.len() - before, args_len);
    out.put_u8(FRAME_END);
    plan.write(channel, raw_header, body, out);
    Ok(())
}

/// Writes `basic.deliver` + content header + body frames in one go, without building an
/// amq-protocol method: the fast path for pushing messages to consumers. `raw_header` goes
/// out unchanged; the body is split by `frame_max` as in [`encode_content`].
#[allow(clippy::too_many_arguments)]
pub fn encode_delivery(
    channel: u16,
    consumer_tag: &str,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let ct = short_str("consumer-tag", consumer_tag)?;
    let ex = short_str("exchange", exchange)?;
    let rk = short_str("routing-key", routing_key)?;
    let args_len = 1 + consumer_tag.len() + 8 + 1 + 1 + exchange.len() + 1 + routing_key.len();
    let fields = |out: &mut BytesMut| {
        put_short_str(out, ct, consumer_tag);
        out.put_u64(delivery_tag);
        out.put_u8(u8::from(redelivered));
        put_short_str(out, ex, exchange);
        put_short_str(out, rk, routing_key);
    };
    method_and_content(
        channel, DELIVER, args_len, fields, raw_header, body, frame_max, out,
    )
}

/// Writes `basic.get-ok` + content header + body frames (see [`encode_delivery`]).
#[allow(clippy::too_many_arguments)]
pub fn encode_get_ok(
    channel: u16,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &str,
    routing_key: &str,
    message_count: u32,
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let ex = short_str("exchange", exchange)?;
    let rk = short_str("routing-key", routing_key)?;
    let args_len = 8 + 1 + 1 + exchange.len() + 1 + routing_key.len() + 4;
    let fields = |out: &mut BytesMut| {
        out.put_u64(delivery_tag);
        out.put_u8(u8::from(redelivered));
        put_short_str(out, ex, exchange);
        put_short_str(out, rk, routing_key);
        out.put_u32(message_count);
    };
    method_and_content(
        channel, GET_OK, args_len, fields, raw_header, body, frame_max, out,
    )
}

/// Writes `basic.return` + content header + body frames, for a mandatory message that
/// could not be routed (reply code 312 NO_ROUTE, text `"NO_ROUTE"` in RabbitMQ).
#[allow(clippy::too_many_arguments)]
pub fn encode_return(
    channel: u16,
    reply_code: u16,
    reply_text: &str,
    exchange: &str,
    routing_key: &str,
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let rt = short_str("reply-text", reply_text)?;
    let ex = short_str("exchange", exchange)?;
    let rk = short_str("routing-key", routing_key)?;
    let args_len = 2 + 1 + reply_text.len() + 1 + exchange.len() + 1 + routing_key.len();
    let fields = |out: &mut BytesMut| {
        out.put_u16(reply_code);
        put_short_str(out, rt, reply_text);
        put_short_str(out, ex, exchange);
        put_short_str(out, rk, routing_key);
    };
    method_and_content(
        channel, RETURN, args_len, fields, raw_header, body, frame_max, out,
    )
}

/// Writes any method followed by content (for content-bearing methods the fast paths do
/// not cover).
pub fn encode_method_with_content(
    channel: u16,
    method: &AMQPClass,
    raw_header: &Bytes,
    body: &Bytes,
    frame_max: u32,
    out: &mut BytesMut,
) -> Result<(), EncodeError> {
    let payload = method_payload(method)?;
    let size = frame_len(payload.len())?;
    let plan = ContentPlan::new(raw_header, body, frame_max)?;
    out.reserve(payload.len() + FRAME_OVERHEAD as usize + plan.len);
    put_frame_header(out, FRAME_METHOD, channel, size);
    out.put_slice(&payload);
    out.put_u8(FRAME_END);
    plan.write(channel, raw_header, body, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FRAME_HEADER_LEN;

    #[test]
    fn frame_header_len_matches() {
        let mut out = BytesMut::new();
        put_frame_header(&mut out, FRAME_METHOD, 1, 2);
        assert_eq!(out.len(), FRAME_HEADER_LEN);
    }

    #[test]
    fn errors_leave_out_untouched() {
        let mut out = BytesMut::from(&b"xy"[..]);
        let long = "k".repeat(256);
        let err = encode_delivery(
            1,
            &long,
            1,
            false,
            "",
            "q",
            &Bytes::new(),
            &Bytes::new(),
            4096,
            &mut out,
        );
        assert_eq!(
            err,
            Err(EncodeError::ShortStringTooLong {
                field: "consumer-tag",
                len: 256
            })
        );
        let err = encode_content(1, &Bytes::new(), &Bytes::from_static(b"a"), 8, &mut out);
        assert_eq!(err, Err(EncodeError::FrameMaxTooSmall(8)));
        assert_eq!(&out[..], b"xy");
    }
}
