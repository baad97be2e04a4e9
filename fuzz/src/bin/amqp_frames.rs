//! AFL++ entry point of [`junction_fuzz::amqp_frames`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/amqp_frames -o <out> target/debug/amqp_frames` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::amqp_frames(data));
}
