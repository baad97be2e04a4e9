//! Unit tests: golden bytes, error cases, streaming, property tests, topics.

mod errors;
mod golden;
mod interop;
mod roundtrip;
mod topics;

use bytes::BytesMut;

use crate::{DecodeError, Decoder, Packet, ProtocolVersion, DEFAULT_MAX_PACKET_SIZE};

/// A decoder past the CONNECT of version `v`.
pub(super) fn connected(v: ProtocolVersion) -> Decoder {
    Decoder::with_version(v, DEFAULT_MAX_PACKET_SIZE)
}

/// Decodes every packet in `bytes`; fails if bytes are left over.
pub(super) fn decode_all(dec: &mut Decoder, bytes: &[u8]) -> Result<Vec<Packet>, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(p) = dec.decode(&mut buf)? {
        out.push(p);
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(out)
}

/// Decodes exactly one packet from `bytes` with `dec`.
pub(super) fn decode_one(dec: &mut Decoder, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut all = decode_all(dec, bytes)?;
    assert_eq!(all.len(), 1, "expected one packet");
    Ok(all.remove(0))
}

/// Encodes one packet.
pub(super) fn enc(p: &Packet, v: ProtocolVersion) -> Vec<u8> {
    let mut out = BytesMut::new();
    crate::encode(p, v, &mut out).unwrap();
    out.to_vec()
}
