//! Reassembly of published content: `basic.publish` + one content header + body frames.

use std::collections::HashMap;

use amq_protocol::protocol::{basic, AMQPClass};
use bytes::{Bytes, BytesMut};

use crate::decode::{ContentHeader, Frame, FramePayload};
use crate::error::{FrameError, FrameKind};
use crate::{BASIC_CLASS_ID, BASIC_PUBLISH_METHOD_ID};

/// RabbitMQ's default `max_message_size`: 128 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// A published message, reassembled.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// The `basic.publish` method that started it.
    pub method: basic::Publish,
    /// Its content header, with the raw bytes as received.
    pub header: ContentHeader,
    /// The body: the single body frame's bytes (no copy) when there was one, else the body
    /// frames concatenated; empty for a zero-size body.
    pub body: Bytes,
}

/// What a [`ContentAssembler`] produced from a frame.
// Frames and messages move by value once each; boxing would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Assembled {
    /// A method without content, passed through.
    Method(AMQPClass),
    /// A complete published message.
    Content(Content),
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Default)]
enum State {
    /// Waiting for a method.
    #[default]
    Idle,
    /// After `basic.publish`: waiting for its content header.
    Header(basic::Publish),
    /// After the content header: waiting for `header.body_size` body octets.
    Body {
        method: basic::Publish,
        header: ContentHeader,
        received: u64,
        chunks: Vec<Bytes>,
    },
}

/// Reassembles the content of `basic.publish` on one channel.
///
/// Feed it the frames of its channel in order ([`ContentAssembler::push`]). After a
/// `basic.publish` it expects exactly one content header, then body frames until the
/// header's body size has arrived (none for a zero-size body). Frames of other channels
/// and heartbeats may arrive in between on the connection; they are not this assembler's
/// business. See [`Assembler`] for the whole connection.
#[derive(Debug, Clone)]
pub struct ContentAssembler {
    channel: u16,
    max_message_size: u64,
    state: State,
}

impl ContentAssembler {
    /// An idle assembler for `channel` refusing bodies over `max_message_size` octets
    /// (`u64::MAX`: no limit).
    #[must_use]
    pub fn new(channel: u16, max_message_size: u64) -> Self {
        ContentAssembler {
            channel,
            max_message_size,
            state: State::Idle,
        }
    }

    /// Whether no content is in progress.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle)
    }

    /// Drops any content in progress (when the channel closes).
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Takes the next frame payload of this channel.
    ///
    /// Returns `Ok(None)` while content is incomplete (and for heartbeats, which are
    /// ignored). Errors: [`FrameError::UnexpectedFrame`] (505) for a frame of the wrong type
    /// for the state, [`FrameError::BodyTooLong`] (501) when body frames overrun the
    /// declared size, [`FrameError::MessageTooLarge`] (channel error, 406) when the header
    /// declares more than the maximum message size. After an error the assembler is idle.
    pub fn push(&mut self, payload: FramePayload) -> Result<Option<Assembled>, FrameError> {
        let result = self.step(payload);
        if result.is_err() {
            self.state = State::Idle;
        }
        result
    }

    fn unexpected(&self, expected: &'static str, got: FrameKind) -> FrameError {
        let (class_id, method_id) = match self.state {
            State::Idle => (0, 0),
            _ => (BASIC_CLASS_ID, BASIC_PUBLISH_METHOD_ID),
        };
        FrameError::UnexpectedFrame {
            channel: self.channel,
            expected,
            got,
            class_id,
            method_id,
        }
    }

    fn step(&mut self, payload: FramePayload) -> Result<Option<Assembled>, FrameError> {
        let got = payload.kind();
        match (std::mem::take(&mut self.state), payload) {
            (state, FramePayload::Heartbeat) => {
                self.state = state;
                Ok(None)
            }
            (State::Idle, FramePayload::Method(method)) => match method {
                AMQPClass::Basic(basic::AMQPMethod::Publish(publish)) => {
                    self.state = State::Header(publish);
                    Ok(None)
                }
                other => Ok(Some(Assembled::Method(other))),
            },
            (State::Idle, _) => Err(self.unexpected("a method frame", got)),
            (State::Header(method), FramePayload::Header(header)) => {
                if header.body_size > self.max_message_size {
                    return Err(FrameError::MessageTooLarge {
                        channel: self.channel,
                        size: header.body_size,
                        max: self.max_message_size,
                    });
                }
                if header.body_size == 0 {
                    return Ok(Some(Assembled::Content(Content {
                        method,
                        header,
                        body: Bytes::new(),
                    })));
                }
                self.state = State::Body {
                    method,
                    header,
                    received: 0,
                    chunks: Vec::new(),
                };
                Ok(None)
            }
            (state @ State::Header(_), _) => {
                self.state = state;
                Err(self.unexpected("a content header frame", got))
            }
            (
                State::Body {
                    method,
                    header,
                    received,
                    mut chunks,
                },
                FramePayload::Body(chunk),
            ) => {
                let received = received.saturating_add(chunk.len() as u64);
                if received > header.body_size {
                    return Err(FrameError::BodyTooLong {
                        channel: self.channel,
                        declared: header.body_size,
                        received,
                    });
                }
                if !chunk.is_empty() {
                    chunks.push(chunk);
                }
                if received < header.body_size {
                    self.state = State::Body {
                        method,
                        header,
                        received,
                        chunks,
                    };
                    return Ok(None);
                }
                let body = concat(chunks, received);
                Ok(Some(Assembled::Content(Content {
                    method,
                    header,
                    body,
                })))
            }
            (state @ State::Body { .. }, _) => {
                self.state = state;
                Err(self.unexpected("a content body frame", got))
            }
        }
    }
}

/// Joins body chunks: the only chunk as it is, or one copy into an exact-size buffer.
fn concat(mut chunks: Vec<Bytes>, total: u64) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut body = BytesMut::with_capacity(usize::try_from(total).unwrap_or(0));
    for chunk in &chunks {
        body.extend_from_slice(chunk);
    }
    body.freeze()
}

/// What an [`Assembler`] produced from a frame.
// Frames and messages move by value once each; boxing would add an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A method without content.
    Method {
        /// Its channel.
        channel: u16,
        /// The method.
        method: AMQPClass,
    },
    /// A complete published message.
    Content {
        /// Its channel.
        channel: u16,
        /// The message.
        content: Content,
    },
    /// A heartbeat.
    Heartbeat,
}

/// Reassembles content for a whole connection: one [`ContentAssembler`] per channel with
/// content in progress, so frames of different channels may interleave.
///
/// Channel 0 carries only methods (and heartbeats): a content header or body on it is
/// [`FrameError::UnexpectedFrame`], and methods on it are passed through as they are (a
/// `basic.publish` on channel 0 is the gateway's to refuse, with 504 CHANNEL_ERROR as
/// RabbitMQ does).
#[derive(Debug, Clone)]
pub struct Assembler {
    max_message_size: u64,
    channels: HashMap<u16, ContentAssembler>,
}

impl Default for Assembler {
    /// An assembler with RabbitMQ's default maximum message size,
    /// [`DEFAULT_MAX_MESSAGE_SIZE`].
    fn default() -> Self {
        Assembler::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}

impl Assembler {
    /// An assembler refusing bodies over `max_message_size` octets (`u64::MAX`: no limit).
    #[must_use]
    pub fn new(max_message_size: u64) -> Self {
        Assembler {
            max_message_size,
            channels: HashMap::new(),
        }
    }

    /// Takes the next decoded frame. See [`ContentAssembler::push`] for the errors; after
    /// one, that channel's assembler is idle.
    pub fn push(&mut self, frame: Frame) -> Result<Option<Event>, FrameError> {
        let channel = frame.channel;
        match frame.payload {
            FramePayload::Heartbeat => Ok(Some(Event::Heartbeat)),
            FramePayload::Method(method) if channel == 0 => {
                Ok(Some(Event::Method { channel, method }))
            }
            other if channel == 0 => Err(FrameError::UnexpectedFrame {
                channel,
                expected: "a method frame (channel 0 carries no content)",
                got: other.kind(),
                class_id: 0,
                method_id: 0,
            }),
            payload => {
                let max = self.max_message_size;
                let assembler = self
                    .channels
                    .entry(channel)
                    .or_insert_with(|| ContentAssembler::new(channel, max));
                let result = assembler.push(payload);
                if assembler.is_idle() {
                    self.channels.remove(&channel);
                }
                Ok(result?.map(|assembled| match assembled {
                    Assembled::Method(method) => Event::Method { channel, method },
                    Assembled::Content(content) => Event::Content { channel, content },
                }))
            }
        }
    }

    /// Drops any content in progress on `channel` (when it closes).
    pub fn reset_channel(&mut self, channel: u16) {
        self.channels.remove(&channel);
    }

    /// Whether `channel` has no content in progress.
    #[must_use]
    pub fn is_idle(&self, channel: u16) -> bool {
        !self.channels.contains_key(&channel)
    }
}
