//! The lab's Autodiscover service (MS-OXDSCLI POX, mobilesync schema) at
//! `/autodiscover/autodiscover.xml` on the ActiveSync listeners, so that discovery runs
//! against real HTTP(S).
//!
//! An authenticated POST for an address gets the MobileSync URL (by default the lab's own
//! HTTPS endpoint), unless [`Settings`] redirects it: `redirect_addr` answers
//! `<Action><Redirect>` with another address, `redirect_url` answers the Outlook-schema
//! `redirectUrl` form with another Autodiscover URL. Redirects apply only on the standard
//! path; any other path ending in `/autodiscover.xml` always answers with the settings (a
//! redirect target). An unauthenticated GET on the plain-HTTP listener answers 302 to
//! [`Settings::http_redirect`] when set. A request without an address gets ErrorCode 600, one
//! asking for another response schema 601.

use super::http::{Request, Response};
use super::{EAS_PATH, Lab, protocol};

/// The standard Autodiscover path.
pub const PATH: &str = "/autodiscover/autodiscover.xml";
const RESPONSE_SCHEMA: &str =
    "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006";

/// How the lab's Autodiscover answers.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// (address asked, address to redirect to): answered with `<Redirect>`.
    pub redirect_addr: Vec<(String, String)>,
    /// (address asked, Autodiscover URL): answered with Action `redirectUrl`.
    pub redirect_url: Vec<(String, String)>,
    /// Where the unauthenticated HTTP GET redirects (302), if anywhere.
    pub http_redirect: Option<String>,
    /// The MobileSync URL to announce; `None`: the lab's HTTPS endpoint.
    pub eas_url: Option<String>,
    /// Addresses answered with an HTML page instead of XML (a web server in the way).
    pub html_for: Vec<String>,
}

/// Whether this path is an Autodiscover endpoint.
pub fn serves(path: &str) -> bool {
    path.len() >= "/autodiscover.xml".len()
        && path.to_ascii_lowercase().ends_with("/autodiscover.xml")
}

fn xml(body: String) -> Response {
    Response::new(200).with_body("text/xml; charset=utf-8", body.into_bytes())
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The text of the first `<name>` element (any prefix), unescaped for the basic entities.
fn element(doc: &str, name: &str) -> Option<String> {
    let open = doc.find(&format!("{name}>"))?;
    let start = open + name.len() + 1;
    let len = doc[start..].find('<')?;
    Some(
        doc[start..start + len]
            .trim()
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

fn envelope(inner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Autodiscover \
         xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\
         <Response xmlns=\"{RESPONSE_SCHEMA}\">{inner}</Response></Autodiscover>"
    )
}

fn error_answer(code: u32, message: &str) -> Response {
    xml(format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<Autodiscover \
         xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006\">\
         <Response><Error Time=\"00:00:00\" Id=\"1\"><ErrorCode>{code}</ErrorCode><Message>\
         {message}</Message><DebugData /></Error></Response></Autodiscover>"
    ))
}

/// Answers one Autodiscover request.
pub fn handle(lab: &Lab, req: &Request) -> Response {
    let settings = &lab.config.autodiscover;
    if req.method == "GET" {
        return match (&settings.http_redirect, req.secure) {
            (Some(to), false) => Response::new(302).with_header("Location", to.clone()),
            _ => Response::text(404, "no Autodiscover redirect here"),
        };
    }
    if req.method != "POST" {
        return Response::text(405, "Autodiscover takes POST");
    }
    if let Err(challenge) = protocol::authenticate(lab, req) {
        return challenge;
    }
    let doc = String::from_utf8_lossy(&req.body);
    let Some(address) = element(&doc, "EMailAddress").filter(|a| a.contains('@')) else {
        return error_answer(600, "Invalid Request");
    };
    if element(&doc, "AcceptableResponseSchema").as_deref() != Some(RESPONSE_SCHEMA) {
        return error_answer(601, "The requested schema is not available");
    }
    if settings
        .html_for
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&address))
    {
        return Response::new(200).with_body(
            "text/html",
            b"<html><body><h1>Welcome</h1><p>It works!</body></html>".to_vec(),
        );
    }
    if req.path.eq_ignore_ascii_case(PATH) {
        let rule = |rules: &[(String, String)]| {
            rules
                .iter()
                .find(|(from, _)| from.eq_ignore_ascii_case(&address))
                .map(|(_, to)| escape(to))
        };
        if let Some(to) = rule(&settings.redirect_addr) {
            return xml(envelope(&format!(
                "<Action><Redirect>{to}</Redirect></Action>"
            )));
        }
        if let Some(to) = rule(&settings.redirect_url) {
            return xml(envelope(&format!(
                "<Account><Action>redirectUrl</Action><RedirectUrl>{to}</RedirectUrl></Account>"
            )));
        }
    }
    let url = settings
        .eas_url
        .clone()
        .unwrap_or_else(|| match lab.https_addr {
            Some(addr) => format!("https://{addr}{EAS_PATH}"),
            None => format!(
                "https://{}{EAS_PATH}",
                req.header("Host").unwrap_or("127.0.0.1")
            ),
        });
    let url = escape(&url);
    xml(envelope(&format!(
        "<Culture>en:us</Culture><User><DisplayName>Lab User</DisplayName><EMailAddress>{}\
         </EMailAddress></User><Action><Settings><Server><Type>MobileSync</Type><Url>{url}</Url>\
         <Name>{url}</Name></Server></Settings></Action>",
        escape(&address)
    )))
}
