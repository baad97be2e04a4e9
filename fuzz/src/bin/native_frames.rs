//! AFL++ entry point of [`junction_fuzz::native_frames`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/native_frames -o <out> target/debug/native_frames` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::native_frames(data));
}
