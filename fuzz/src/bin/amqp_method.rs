//! AFL++ entry point of [`junction_fuzz::amqp_method`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/amqp_method -o <out> target/debug/amqp_method` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::amqp_method(data));
}
