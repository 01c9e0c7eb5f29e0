//! Build script: asks the linker to pack the binaries' relative relocations (DT_RELR) on
//! glibc targets. easyncd is a position-independent executable whose relocation table was
//! a sixth of its size on aarch64; packed, it is a few kilobytes, and the loader has less
//! to do at start. Needs binutils 2.38+ (older ones ignore the option) and glibc 2.36+ on
//! the device (a linker whose sysroot lacks it leaves the relocations as they are).
//! `EASYNC_RELR=0` turns it off.

fn main() {
    println!("cargo:rerun-if-env-changed=EASYNC_RELR");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if glibc && var("EASYNC_RELR") != "0" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
