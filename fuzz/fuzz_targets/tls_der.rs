//! The DER walkers on any bytes: the server's certificate chain is network input, read for
//! SPKI pinning (`subject_public_key_info`, `tls::spki_pin`) and explained by `easyncctl
//! diagnose` (`x509::parse`, `format_time`). None may panic; what they return comes
//! out of the input.
#![no_main]

use easync::transport::der::{subject_public_key_info, x509};
use easync::transport::tls::spki_pin;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let spki = subject_public_key_info(data);
    if let Some(spki) = spki {
        // The SPKI is a slice of the certificate, never a copy or a stray pointer.
        let start = spki.as_ptr() as usize - data.as_ptr() as usize;
        assert!(start + spki.len() <= data.len());
        assert_eq!(spki.first(), Some(&0x30));
    }
    assert_eq!(spki_pin(data).is_some(), spki.is_some());
    if let Some(summary) = x509::parse(data) {
        for seconds in [summary.not_before, summary.not_after]
            .into_iter()
            .flatten()
        {
            assert!(x509::format_time(seconds).ends_with(" UTC"));
        }
        let text: usize = summary.names.iter().map(String::len).sum();
        assert!(summary.subject.len() + summary.issuer.len() + text <= 4 * data.len() + 64);
    }
});
