//! easync-lab: the reference EAS server (placeholder until the lab lands).
fn main() {}
