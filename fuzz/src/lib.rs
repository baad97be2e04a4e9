//! Fuzz targets: one per decoder (AMQP frames and content assembly, AMQP method and content
//! header payloads, MQTT 3.1.1 and 5.0 packets, STOMP frames, native frames) and one for the
//! store's recovery from damaged files.
//!
//! Each target takes arbitrary bytes and must neither panic nor loop; where a decoder has a
//! contract (`Ok(None)` consumes nothing, a decoded frame re-encodes), the target checks it.
//! The same functions run three ways:
//! - under AFL++ (`src/bin/*.rs`, built with `cargo afl build --features afl`), for hours;
//! - as a randomized test in CI (`tests/replay.rs`): every file of the committed corpus
//!   (`corpus/<target>/`, captured from real client sessions, plus crashes found and fixed),
//!   mutations of them, and random inputs;
//! - by hand on one input, to reproduce a crash (`tests/replay.rs` reads `JUNCTION_FUZZ_INPUT`).
//!
//! What it is not: a test of meaning. Whether a decoded frame is *right* is the codecs' own
//! golden-vector and property tests' business.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::{Buf, Bytes, BytesMut};

/// A fuzz target: arbitrary bytes in, a panic on a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus directory and binary.
pub const TARGETS: &[(&str, Target)] = &[
    ("amqp_frames", amqp_frames),
    ("amqp_method", amqp_method),
    ("mqtt_v3", mqtt_v3),
    ("mqtt_v5", mqtt_v5),
    ("stomp_frames", stomp_frames),
    ("native_frames", native_frames),
    ("store_recovery", store_recovery),
];

/// At most this many items are decoded from one input (every decoder consumes bytes per item,
/// so this only bounds pathological inputs of empty items).
const MAX_ITEMS: usize = 100_000;

/// AMQP 0-9-1 as a server reads it: an optional protocol header, then frames through the
/// frame decoder (frame-max from the input's first byte) and the connection's content
/// assembler, channels reset after an error as the gateway does.
pub fn amqp_frames(data: &[u8]) {
    use junction_amqp::{parse_protocol_header, Assembler, FrameDecoder, HeaderCheck};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::from(rest);
    if parse_protocol_header(&buf) == HeaderCheck::Supported {
        buf.advance(junction_amqp::PROTOCOL_HEADER_LEN);
    }
    let frame_max = if sel & 1 == 0 { 4096 } else { 131_072 };
    let mut decoder = FrameDecoder::new(frame_max);
    let mut assembler = Assembler::new(u64::from(sel >> 1) << 10);
    for _ in 0..MAX_ITEMS {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before, "a frame was decoded from no bytes");
                let channel = frame.channel;
                if assembler.push(frame).is_err() {
                    assembler.reset_channel(channel);
                }
            }
            Ok(None) => return,
            Err(_) => return,
        }
    }
}

/// One AMQP method frame payload (class, method, arguments) and one content header payload,
/// parsed as the frame decoder parses them (field tables nest, long strings, bit packing).
pub fn amqp_method(data: &[u8]) {
    let channel = 1;
    let _ = junction_amqp::parse_method(channel, data);
    let _ = junction_amqp::ContentHeader::parse(channel, Bytes::copy_from_slice(data));
}

fn mqtt(data: &[u8], version: junction_mqtt::ProtocolVersion) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // Half the inputs are a whole session (CONNECT first, which sets the version), half are
    // packets of an already connected client of `version`.
    let mut decoder = if sel & 1 == 0 {
        junction_mqtt::Decoder::new(64 << 10)
    } else {
        junction_mqtt::Decoder::with_version(version, 64 << 10)
    };
    let mut buf = BytesMut::from(rest);
    for _ in 0..MAX_ITEMS {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(packet)) => {
                assert!(buf.len() < before, "a packet was decoded from no bytes");
                // What was decoded encodes again (the broker echoes fields back).
                let v = decoder.version().unwrap_or(version);
                let mut out = BytesMut::new();
                let _ = junction_mqtt::encode(&packet, v, &mut out);
            }
            Ok(None) => return,
            Err(_) => return,
        }
    }
}

/// MQTT 3.1.1 packets through the server's decoder.
pub fn mqtt_v3(data: &[u8]) {
    mqtt(data, junction_mqtt::ProtocolVersion::V311);
}

/// MQTT 5.0 packets (properties, reason codes) through the server's decoder.
pub fn mqtt_v5(data: &[u8]) {
    mqtt(data, junction_mqtt::ProtocolVersion::V5);
}

/// STOMP frames of a version chosen by the first byte, with small limits so that the limit
/// checks are reached; decoded frames are encoded again.
pub fn stomp_frames(data: &[u8]) {
    use junction_stomp::{Decoder, Item, Limits, Version};
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let version = match sel % 3 {
        0 => Version::V1_0,
        1 => Version::V1_1,
        _ => Version::V1_2,
    };
    let limits = Limits {
        max_frame_bytes: 64 << 10,
        max_header_section_bytes: 8 << 10,
        max_headers: 64,
        max_header_bytes: 1024,
        max_body_bytes: 32 << 10,
    };
    let mut decoder = Decoder::with_limits(version, limits);
    let mut buf = BytesMut::from(rest);
    for _ in 0..MAX_ITEMS {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(Item::Frame(frame))) => {
                assert!(buf.len() < before, "a frame was decoded from no bytes");
                let mut out = BytesMut::new();
                let _ = junction_stomp::encode(&frame, version, &mut out);
            }
            Ok(Some(Item::Heartbeat)) => assert!(buf.len() < before, "an empty heart-beat"),
            Ok(None) => return,
            Err(_) => return,
        }
    }
}

/// Native protocol frames; each decoded frame is encoded and decoded again to the same frame.
pub fn native_frames(data: &[u8]) {
    let mut decoder = junction_native::Decoder::new(64 << 10);
    let mut buf = BytesMut::from(data);
    for _ in 0..MAX_ITEMS {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(buf.len() < before, "a frame was decoded from no bytes");
                let mut out = BytesMut::new();
                if junction_native::encode(&frame, &mut out).is_ok() {
                    let mut again = junction_native::Decoder::new(u32::MAX);
                    let back = again.decode(&mut out).expect("re-encoded frame decodes");
                    assert_eq!(back.as_ref(), Some(&frame), "re-encoded frame differs");
                }
            }
            Ok(None) => return,
            Err(_) => return,
        }
    }
}

/// A small valid store (two queues, a few segments' worth of records, a clean close), made
/// once per process; each input is applied to a copy of it.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = scratch().expect("a scratch directory");
            let store =
                junction_store::Store::open(store_config(dir.path())).expect("template store");
            for i in 0..60u32 {
                let q = junction_store::QueueKey::new(i % 2, 0);
                let body = vec![i as u8; 40 + (i as usize * 13) % 300];
                let key = format!("k{i}");
                let keys: [&[u8]; 1] = [key.as_bytes()];
                store
                    .append(&junction_store::AppendRequest {
                        targets: &[q],
                        keys: &keys,
                        body: &body,
                        ..Default::default()
                    })
                    .expect("template append");
            }
            store.close().expect("template close");
            dir
        })
        .path()
}

fn scratch() -> std::io::Result<tempfile::TempDir> {
    // tmpfs when there is one: this target writes a store per input.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return Ok(d);
        }
    }
    tempfile::tempdir()
}

fn store_config(dir: &Path) -> junction_store::StoreConfig {
    let mut cfg = junction_store::StoreConfig::tiny(dir);
    cfg.flush = junction_store::FlushMode::Async;
    cfg
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files(&p, out);
        } else if p.file_name().is_some_and(|n| n != "LOCK") {
            out.push(p);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), target)?;
        }
    }
    Ok(())
}

/// Store recovery from damaged files: the input is a list of patches
/// `file u8 | offset u16 | len u8 | len bytes` applied to a copy of a valid store (len 0
/// truncates the file at the offset). Opening must fail cleanly or recover; a recovered store
/// serves every queue it lists without panicking, and takes and serves a new record.
pub fn store_recovery(data: &[u8]) {
    let Ok(work) = scratch() else { return };
    let dir = work.path().join("store");
    if copy_dir(template(), &dir).is_err() {
        return;
    }
    let mut list = Vec::new();
    files(&dir, &mut list);
    let mut input = data;
    while input.len() >= 4 && !list.is_empty() {
        let file = &list[usize::from(input[0]) % list.len()];
        let offset = u64::from(u16::from_le_bytes([input[1], input[2]]));
        let len = usize::from(input[3]);
        input = &input[4..];
        let bytes = &input[..len.min(input.len())];
        input = &input[bytes.len()..];
        let _ = patch(file, offset, bytes);
    }
    let Ok(store) = junction_store::Store::open(store_config(&dir)) else {
        return;
    };
    for q in store.queues() {
        let Some((mut from, end)) = store.queue_range(q) else {
            continue;
        };
        for _ in 0..1000 {
            if from >= end {
                break;
            }
            match store.read(q, from, 64) {
                Ok(batch) if batch.next_offset > from => from = batch.next_offset,
                _ => break,
            }
        }
    }
    let q = junction_store::QueueKey::new(7, 0);
    let appended = store.append(&junction_store::AppendRequest {
        targets: &[q],
        body: b"after recovery",
        ..Default::default()
    });
    if let Ok(a) = appended {
        let batch = store
            .read(q, a.queue_offsets[0], 1)
            .expect("a record appended after recovery reads back");
        let first = batch.messages.first().expect("the appended record");
        assert_eq!(&first.record.body[..], b"after recovery");
    }
    let _ = store.close();
}

fn patch(file: &Path, offset: u64, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(file)?;
    if bytes.is_empty() {
        return f.set_len(offset);
    }
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)
}
