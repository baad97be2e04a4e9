//! The frame layer: bytes in, [`Frame`]s out.

use amq_protocol::frame::parsing::parse_content_header;
use amq_protocol::protocol::{parse_class, AMQPClass, BasicProperties};
use bytes::{Buf, Bytes, BytesMut};

use crate::error::{FrameError, FrameKind};
use crate::nesting::{self, Cursor};
use crate::{
    BASIC_CLASS_ID, CONNECTION_CLASS_ID, FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEADER_LEN,
    FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD,
};

/// One decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The channel number (0 for the connection itself and for heartbeats).
    pub channel: u16,
    /// What the frame carries.
    pub payload: FramePayload,
}

/// The payload of a [`Frame`], by frame type.
// A frame moves by value once; boxing the header would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum FramePayload {
    /// Type 1: a method, parsed by amq-protocol.
    Method(AMQPClass),
    /// Type 2: a content header.
    Header(ContentHeader),
    /// Type 3: a slice of content body, zero-copy from the input buffer.
    Body(Bytes),
    /// Type 8: a heartbeat (always on channel 0, empty).
    Heartbeat,
}

impl FramePayload {
    /// The kind of frame this payload came in.
    #[must_use]
    pub fn kind(&self) -> FrameKind {
        match self {
            FramePayload::Method(_) => FrameKind::Method,
            FramePayload::Header(_) => FrameKind::Header,
            FramePayload::Body(_) => FrameKind::Body,
            FramePayload::Heartbeat => FrameKind::Heartbeat,
        }
    }
}

/// A content header frame's payload.
///
/// ```text
/// class-id u16 | weight u16 (0) | body-size u64 | property-flags u16 | property list
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ContentHeader {
    /// The class of the content: always 60 (basic) in 0-9-1.
    pub class_id: u16,
    /// Total size of the body that follows in body frames.
    pub body_size: u64,
    /// The basic properties, parsed.
    pub properties: BasicProperties,
    /// The whole header payload exactly as received (class id to the last property). Store
    /// it and hand it to [`encode_content`](crate::encode_content) /
    /// [`encode_delivery`](crate::encode_delivery) to re-send it without re-encoding.
    pub raw: Bytes,
}

impl ContentHeader {
    /// Parses a content header payload (everything between the frame header and the frame
    /// end), keeping `raw` as the stored bytes. Errors name `channel`.
    pub fn parse(channel: u16, raw: Bytes) -> Result<ContentHeader, FrameError> {
        let mut cur = Cursor::new(&raw);
        let (Ok(class_id), Ok(weight), Ok(_body_size)) = (cur.u16(), cur.u16(), cur.take(8)) else {
            return Err(FrameError::Truncated {
                channel,
                kind: FrameKind::Header,
                detail: "content header shorter than 12 octets",
            });
        };
        if class_id != BASIC_CLASS_ID {
            return Err(FrameError::UnexpectedFrame {
                channel,
                expected: "a content header for class 60 (basic)",
                got: FrameKind::Header,
                class_id: 0,
                method_id: 0,
            });
        }
        let syntax = |reason: String| FrameError::Syntax {
            channel,
            what: "content header",
            class_id,
            method_id: 0,
            reason,
        };
        if weight != 0 {
            return Err(syntax(format!("weight is {weight}, must be 0")));
        }
        let props = raw.get(12..).unwrap_or_default();
        nesting::check_basic_properties(props).map_err(|e| syntax(e.reason().into()))?;
        let (rest, parsed) = parse_content_header(raw.as_ref())
            .map_err(|e| syntax(format!("bad properties: {e}")))?;
        if !rest.is_empty() {
            return Err(syntax(format!(
                "{} octets after the property list",
                rest.len()
            )));
        }
        Ok(ContentHeader {
            class_id,
            body_size: parsed.body_size,
            properties: parsed.properties,
            raw,
        })
    }
}

/// Whether `(class_id, method_id)` is a method of AMQP 0-9-1 (with RabbitMQ's extensions:
/// exchange-to-exchange bindings, confirms, `basic.nack`, `connection.blocked`,
/// `connection.update-secret`).
#[must_use]
pub fn is_known_method(class_id: u16, method_id: u16) -> bool {
    let methods: &[u16] = match class_id {
        10 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51, 60, 61, 70, 71],
        20 => &[10, 11, 20, 21, 40, 41],
        30 => &[10, 11],
        40 => &[10, 11, 20, 21, 30, 31, 40, 51],
        50 => &[10, 11, 20, 21, 30, 31, 40, 41, 50, 51],
        60 => &[
            10, 11, 20, 21, 30, 31, 40, 50, 60, 70, 71, 72, 80, 90, 100, 110, 111, 120,
        ],
        85 => &[10, 11],
        90 => &[10, 11, 20, 21, 30, 31],
        _ => &[],
    };
    methods.contains(&method_id)
}

/// Parses a method frame's payload (class id, method id, arguments) with amq-protocol.
///
/// Errors: [`FrameError::Truncated`] (501) under 4 octets, [`FrameError::NotImplemented`]
/// (540) for an unknown class or method id, [`FrameError::Syntax`] (502) for arguments that
/// do not parse (including octets left over and tables nested deeper than
/// [`MAX_TABLE_DEPTH`](crate::MAX_TABLE_DEPTH)), and [`FrameError::CommandInvalid`] (503)
/// for a connection-class method on a channel other than 0.
pub fn parse_method(channel: u16, payload: &[u8]) -> Result<AMQPClass, FrameError> {
    let mut cur = Cursor::new(payload);
    let (Ok(class_id), Ok(method_id)) = (cur.u16(), cur.u16()) else {
        return Err(FrameError::Truncated {
            channel,
            kind: FrameKind::Method,
            detail: "method payload shorter than 4 octets",
        });
    };
    if !is_known_method(class_id, method_id) {
        return Err(FrameError::NotImplemented {
            channel,
            class_id,
            method_id,
        });
    }
    if class_id == CONNECTION_CLASS_ID && channel != 0 {
        return Err(FrameError::CommandInvalid {
            channel,
            class_id,
            method_id,
            reason: "connection methods must use channel 0",
        });
    }
    let syntax = |reason: String| FrameError::Syntax {
        channel,
        what: "method",
        class_id,
        method_id,
        reason,
    };
    nesting::check_method(class_id, method_id, payload.get(4..).unwrap_or_default())
        .map_err(|e| syntax(e.reason().into()))?;
    match parse_class(payload) {
        Ok(([], method)) => Ok(method),
        Ok((rest, _)) => Err(syntax(format!(
            "{} octets after the last argument",
            rest.len()
        ))),
        Err(e) => Err(syntax(e.to_string())),
    }
}

/// The most [`FrameDecoder::decode`] reserves ahead for a partly received frame.
const MAX_RESERVE: usize = 1 << 20;

/// Splits a byte stream into frames, checking each 7-octet frame header against the
/// negotiated frame-max before buffering its payload.
///
/// Feed it the bytes read after the protocol header; call [`FrameDecoder::decode`] until it
/// returns `Ok(None)`, then read more. Set [`FrameDecoder::frame_max`] from `connection.tune-ok`.
///
/// ```
/// use bytes::BytesMut;
/// use junction_amqp::{FrameDecoder, FramePayload};
/// let mut dec = FrameDecoder::new(131_072);
/// let mut buf = BytesMut::from(&[8u8, 0, 0, 0, 0, 0, 0, 0xCE][..]);
/// let frame = dec.decode(&mut buf).unwrap().unwrap();
/// assert_eq!(frame.payload, FramePayload::Heartbeat);
/// assert!(buf.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The negotiated frame-max: the largest frame in octets, header and frame-end
    /// included; 0 means no limit (the spec's meaning; a server should not agree to it).
    ///
    /// Like RabbitMQ, the decoder allows 8 octets of slack for clients that count only the
    /// payload: a payload of up to `frame_max` octets is accepted, anything larger is
    /// [`FrameError::FrameTooLarge`]. The encoders stay strict (`frame_max - 8`).
    pub frame_max: u32,
}

impl Default for FrameDecoder {
    /// A decoder for the start of a connection, before tuning: frame-max is the spec's
    /// minimum, [`FRAME_MIN_SIZE`](crate::FRAME_MIN_SIZE).
    fn default() -> Self {
        FrameDecoder::new(crate::FRAME_MIN_SIZE)
    }
}

impl FrameDecoder {
    /// A decoder accepting frames up to `frame_max` octets (0: no limit).
    #[must_use]
    pub fn new(frame_max: u32) -> Self {
        FrameDecoder { frame_max }
    }

    /// The largest payload accepted (see [`FrameDecoder::frame_max`]).
    #[must_use]
    pub fn max_payload(&self) -> u32 {
        if self.frame_max == 0 {
            u32::MAX - FRAME_OVERHEAD
        } else {
            self.frame_max
        }
    }

    /// Decodes one frame from the front of `buf`, removing its bytes.
    ///
    /// Returns `Ok(None)` when `buf` does not yet hold a whole frame (nothing is removed;
    /// once the header is known, capacity for the rest of the frame, up to 1 MiB, is
    /// reserved). A bad frame
    /// type is refused from its first octet and an oversized frame from its 7-octet header.
    /// Never panics, whatever the input.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(&frame_type) = buf.first() else {
            return Ok(None);
        };
        let kind = match frame_type {
            FRAME_METHOD => FrameKind::Method,
            FRAME_HEADER => FrameKind::Header,
            FRAME_BODY => FrameKind::Body,
            FRAME_HEARTBEAT => FrameKind::Heartbeat,
            _ => return Err(FrameError::UnknownFrameType { frame_type }),
        };
        let Some(&[_, c0, c1, s0, s1, s2, s3]) = buf.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let channel = u16::from_be_bytes([c0, c1]);
        let size = u32::from_be_bytes([s0, s1, s2, s3]);
        if size > self.max_payload() {
            return Err(FrameError::FrameTooLarge {
                channel,
                size,
                frame_max: self.frame_max,
            });
        }
        if kind == FrameKind::Heartbeat && (channel != 0 || size != 0) {
            return Err(FrameError::InvalidHeartbeat { channel, size });
        }
        // size <= u32::MAX - 8, so the whole frame length fits a u32 and so a usize.
        let size = size as usize;
        let total = FRAME_HEADER_LEN + size + 1;
        if buf.len() < total {
            // Capped: with frame-max 0 a header may declare 4 GiB that never comes.
            buf.reserve((total - buf.len()).min(MAX_RESERVE));
            return Ok(None);
        }
        let found = buf.get(total - 1).copied().unwrap_or_default();
        if found != FRAME_END {
            return Err(FrameError::BadFrameEnd { channel, found });
        }
        buf.advance(FRAME_HEADER_LEN);
        let payload = buf.split_to(size).freeze();
        buf.advance(1);
        let payload = match kind {
            FrameKind::Method => FramePayload::Method(parse_method(channel, &payload)?),
            FrameKind::Header => FramePayload::Header(ContentHeader::parse(channel, payload)?),
            FrameKind::Body => FramePayload::Body(payload),
            FrameKind::Heartbeat => FramePayload::Heartbeat,
        };
        Ok(Some(Frame { channel, payload }))
    }

    /// Call when the peer closed the stream: an error if `buf` holds part of a frame.
    pub fn check_eof(&self, buf: &[u8]) -> Result<(), FrameError> {
        if buf.is_empty() {
            return Ok(());
        }
        let channel = match buf.get(1..3) {
            Some(&[a, b]) => u16::from_be_bytes([a, b]),
            _ => 0,
        };
        let kind = match buf.first() {
            Some(&FRAME_METHOD) => FrameKind::Method,
            Some(&FRAME_HEADER) => FrameKind::Header,
            Some(&FRAME_BODY) => FrameKind::Body,
            Some(&FRAME_HEARTBEAT) => FrameKind::Heartbeat,
            Some(&frame_type) => return Err(FrameError::UnknownFrameType { frame_type }),
            None => return Ok(()),
        };
        Err(FrameError::Truncated {
            channel,
            kind,
            detail: "the stream ended inside the frame",
        })
    }
}
