//! AFL++ entry point of [`junction_fuzz::stomp_frames`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/stomp_frames -o <out> target/debug/stomp_frames` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::stomp_frames(data));
}
