//! Small network decoders on any bytes: the autodiscover XML answer, DNS SRV answers and the
//! Retry-After header. Servers and resolvers are not trusted; no input may panic.
#![no_main]

use easync::transport::{autodiscover, parse_retry_after};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => drop(autodiscover::parse_response(rest)),
        1 => drop(autodiscover::parse_srv_answer(0x1234, rest)),
        _ => drop(parse_retry_after(&String::from_utf8_lossy(rest))),
    }
});
