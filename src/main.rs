//! The `junction` command.

fn main() {}
