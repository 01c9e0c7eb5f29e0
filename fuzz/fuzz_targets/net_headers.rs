//! Small network decoders on any bytes: the autodiscover XML answer, DNS SRV answers, the
//! Retry-After header, the OPTIONS headers (MS-ASProtocolVersions and -Commands, then the
//! negotiation) and the OAuth server's JSON answers (device authorization, tokens, errors).
//! Servers and resolvers are not trusted; no input may panic.
#![no_main]

use easync::eas::version::{ServerInfo, SUPPORTED};
use easync::transport::{autodiscover, oauth, parse_retry_after};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => drop(autodiscover::parse_response(rest)),
        1 => drop(autodiscover::parse_srv_answer(0x1234, rest)),
        2 => drop(parse_retry_after(&String::from_utf8_lossy(rest))),
        3 => {
            // The two header values, one per line.
            let text = String::from_utf8_lossy(rest);
            let (versions, commands) = text.split_once('\n').unwrap_or((&text, ""));
            let info = ServerInfo::from_headers(Some(versions), Some(commands));
            if let Ok(chosen) = info.negotiate(None) {
                assert!(SUPPORTED.contains(&chosen) && info.versions.contains(&chosen));
            }
        }
        _ => {
            let (authorization, tokens, error) = oauth::fuzz_answer(rest);
            if let Ok(a) = authorization {
                assert!(!a.user_code.is_empty() && !a.verification_uri.is_empty());
                assert!(a.expires_in.as_secs() <= 86_400 && a.interval.as_secs() <= 300);
            }
            if let Ok(t) = tokens {
                assert!(!t.access.expose().is_empty());
            }
            drop(error.map(|e| e.to_string()));
        }
    }
});
