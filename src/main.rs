//! The EL2 image's entry point. The real program exists only for `aarch64-unknown-none`
//! (see `arch::aarch64::boot`); on the host this binary just says how to build the image.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
use granite as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("granite is an EL2 image: build it with scripts/build.sh (target aarch64-unknown-none)");
    std::process::exit(2);
}
