//! The admin JSON API (see the table in the module docs of `lab`): state, items, folders,
//! policy, wipe, faults, the CA certificate and client certificates.

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Value as Json, json};

use super::Lab;
use super::http::{self, Request, Response};
use super::model::{Attachment, Class, Prop, iso_time, props_from_json, set_prop};
use super::state::{Fault, NewItem};
use crate::wbxml::Tag;

/// Handles one admin request.
pub fn handle(lab: &Lab, req: &Request) -> Response {
    match route(lab, req) {
        Ok(r) => r,
        Err((status, message)) => Response::json(status, &json!({ "error": message })),
    }
}

type Answer = Result<Response, (u16, String)>;

fn bad(message: impl Into<String>) -> (u16, String) {
    (400, message.into())
}

fn body<T: for<'de> Deserialize<'de>>(req: &Request) -> Result<T, (u16, String)> {
    let text = if req.body.is_empty() {
        &b"{}"[..]
    } else {
        &req.body[..]
    };
    serde_json::from_slice(text).map_err(|e| bad(format!("the JSON body is not valid: {e}")))
}

fn ok(value: Json) -> Answer {
    Ok(Response::json(200, &value))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttachmentJson {
    name: String,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    base64: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemJson {
    folder: String,
    #[serde(default)]
    props: Option<Json>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    html: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    attachments: Vec<AttachmentJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeJson {
    #[serde(default)]
    props: Option<Json>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FolderJson {
    name: String,
    #[serde(default)]
    parent: Option<String>,
    #[serde(default, rename = "type")]
    folder_type: Option<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyJson {
    #[serde(default)]
    settings: Option<serde_json::Map<String, Json>>,
    #[serde(default)]
    require_full_compliance: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WipeJson {
    #[serde(default)]
    device_id: Option<String>,
    #[serde(default)]
    account_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientCertJson {
    common_name: String,
}

/// A mail with the usual properties, for the admin shortcut fields and tests.
pub fn mail_item(
    lab: &Lab,
    folder_id: &str,
    subject: &str,
    from: Option<&str>,
    to: Option<&str>,
    body: &str,
) -> NewItem {
    let user = lab.config.users[0].0.clone();
    NewItem {
        folder_id: folder_id.to_string(),
        props: vec![
            Prop::text(
                "To",
                to.map(str::to_string)
                    .unwrap_or_else(|| format!("<{user}>")),
            ),
            Prop::text("From", from.unwrap_or("\"Lab Admin\" <admin@example.com>")),
            Prop::text("Subject", subject),
            Prop::text("DateReceived", iso_time(lab.now())),
            Prop::text("Importance", "1"),
            Prop::text("Read", "0"),
            Prop::text("MessageClass", "IPM.Note"),
        ],
        body: body.to_string(),
        ..NewItem::default()
    }
}

/// Refuses policy settings that are not EASProvisionDoc elements.
pub fn check_policy(settings: &[(String, String)]) -> Result<(), String> {
    for (name, _) in settings {
        let known = Tag::by_name("Provision", name).is_some_and(|t| {
            !matches!(
                t.name(),
                Some(
                    "Provision"
                        | "Policies"
                        | "Policy"
                        | "PolicyType"
                        | "PolicyKey"
                        | "Data"
                        | "Status"
                        | "RemoteWipe"
                        | "EASProvisionDoc"
                        | "AccountOnlyRemoteWipe"
                )
            )
        });
        if !known {
            return Err(format!(
                "{name:?} is not a policy setting of MS-ASPROV EASProvisionDoc"
            ));
        }
    }
    Ok(())
}

fn json_text(v: &Json) -> Result<String, String> {
    Ok(match v {
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        other => {
            return Err(format!(
                "policy values must be strings, numbers or booleans, not {other}"
            ));
        }
    })
}

fn new_item(lab: &Lab, j: ItemJson) -> Result<(NewItem, i64), String> {
    let class = {
        let st = lab.shared.lock();
        st.folder(&j.folder)
            .ok_or_else(|| format!("no folder {:?}", j.folder))?
            .class()
            .ok_or_else(|| format!("folder {:?} holds no items", j.folder))?
    };
    let mut item = if class == Class::Email {
        mail_item(
            lab,
            &j.folder,
            j.subject.as_deref().unwrap_or("(no subject)"),
            j.from.as_deref(),
            j.to.as_deref(),
            "",
        )
    } else {
        let mut props = Vec::new();
        if let Some(s) = &j.subject {
            props.push(Prop::text(
                if class == Class::Contacts {
                    "FileAs"
                } else {
                    "Subject"
                },
                s.clone(),
            ));
        }
        NewItem {
            folder_id: j.folder.clone(),
            props,
            ..NewItem::default()
        }
    };
    if let Some(p) = &j.props {
        for prop in props_from_json(p)? {
            set_prop(&mut item.props, prop);
        }
    }
    item.body = j.body.unwrap_or_default();
    item.html = j.html;
    for a in j.attachments {
        let data = match (a.data, a.base64) {
            (Some(d), None) => d.into_bytes(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| format!("attachment {:?}: base64 is not valid: {e}", a.name))?,
            (None, None) => Vec::new(),
            (Some(_), Some(_)) => {
                return Err(format!(
                    "attachment {:?}: give data or base64, not both",
                    a.name
                ));
            }
        };
        item.attachments.push(Attachment {
            name: a.name,
            content_type: a
                .content_type
                .unwrap_or_else(|| "application/octet-stream".into()),
            data,
            inline: false,
        });
    }
    let time = super::model::prop_text(&item.props, "DateReceived")
        .or_else(|| super::model::prop_text(&item.props, "EndTime"))
        .and_then(super::model::parse_iso)
        .unwrap_or_else(|| lab.now());
    Ok((item, time))
}

fn route(lab: &Lab, req: &Request) -> Answer {
    let path = req.path.trim_end_matches('/');
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| http::percent_decode(s).unwrap_or_else(|| s.to_string()))
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method.as_str(), seg.as_slice()) {
        ("GET", ["state"]) => ok(lab.shared.lock().to_json()),
        ("GET", ["ca.pem"]) => Ok(Response::new(200)
            .with_body("application/x-pem-file", lab.ca_pem().as_bytes().to_vec())),
        ("POST", ["client-cert"]) => {
            let j: ClientCertJson = body(req)?;
            let (cert, key) = lab
                .issue_client_cert(&j.common_name)
                .map_err(|e| (500, e.to_string()))?;
            ok(json!({"cert_pem": cert, "key_pem": key}))
        }
        ("GET", ["items"]) => {
            let folder = req
                .query
                .as_deref()
                .and_then(http::parse_query)
                .and_then(|q| q.into_iter().find(|(k, _)| k == "folder").map(|(_, v)| v));
            let st = lab.shared.lock();
            let items: Vec<Json> = st
                .items
                .values()
                .filter(|i| folder.as_ref().is_none_or(|f| &i.folder_id == f))
                .map(|i| i.to_json())
                .collect();
            ok(json!({ "items": items }))
        }
        ("POST", ["items"]) => {
            let j: ItemJson = body(req)?;
            let (item, time) = new_item(lab, j).map_err(bad)?;
            let id = lab.change(|s| s.add_item(item, time)).map_err(bad)?;
            ok(json!({ "server_id": id }))
        }
        ("PUT", ["items", id]) => {
            let j: ChangeJson = body(req)?;
            let props = match &j.props {
                Some(p) => props_from_json(p).map_err(bad)?,
                None => Vec::new(),
            };
            lab.change(|s| s.change_item(id, props, j.body))
                .map_err(|e| (404, e))?;
            ok(json!({}))
        }
        ("DELETE", ["items", id]) => {
            lab.change(|s| s.delete_item(id)).map_err(|e| (404, e))?;
            ok(json!({}))
        }
        ("POST", ["folders"]) => {
            let j: FolderJson = body(req)?;
            let ty = j.folder_type.unwrap_or(12);
            if !matches!(ty, 1 | 12..=17) {
                return Err(bad(format!(
                    "folder type {ty} cannot be created: use 1 or 12 to 17"
                )));
            }
            let parent = j.parent.unwrap_or_else(|| "0".into());
            let id = lab
                .change(|s| s.add_folder(&parent, &j.name, ty))
                .map_err(bad)?;
            ok(json!({ "server_id": id }))
        }
        ("PUT", ["folders", id]) => {
            let j: FolderJson = body(req)?;
            let parent = match j.parent {
                Some(p) => p,
                None => lab
                    .shared
                    .lock()
                    .folder(id)
                    .map(|f| f.parent_id.clone())
                    .ok_or((404, format!("no folder {id:?}")))?,
            };
            lab.change(|s| s.update_folder(id, &parent, &j.name))
                .map_err(bad)?;
            ok(json!({}))
        }
        ("DELETE", ["folders", id]) => {
            lab.change(|s| s.delete_folder(id)).map_err(|e| (404, e))?;
            ok(json!({}))
        }
        ("PUT", ["policy"]) => {
            let j: PolicyJson = body(req)?;
            if let Some(settings) = j.settings {
                let mut list = Vec::new();
                for (k, v) in &settings {
                    list.push((k.clone(), json_text(v).map_err(bad)?));
                }
                check_policy(&list).map_err(bad)?;
                lab.change(|s| s.set_policy(list));
            }
            if let Some(full) = j.require_full_compliance {
                lab.change(|s| s.policy.require_full_compliance = full);
            }
            ok(json!({ "generation": lab.shared.lock().policy.generation }))
        }
        ("POST", ["wipe"]) => {
            let j: WipeJson = body(req)?;
            let n = lab
                .change(|s| s.request_wipe(j.device_id.as_deref(), j.account_only))
                .map_err(|e| (404, e))?;
            ok(json!({ "devices": n }))
        }
        ("POST", ["faults"]) => {
            let f: Fault = body(req)?;
            if f.count == 0 {
                return Err(bad("count must be at least 1"));
            }
            if let Some(c) = &f.command {
                if crate::eas::Command::from_name(c).is_none() {
                    return Err(bad(format!("unknown command {c:?}")));
                }
            }
            lab.change(|s| s.faults.push(f));
            ok(json!({}))
        }
        ("DELETE", ["faults"]) => {
            lab.change(|s| s.faults.clear());
            ok(json!({}))
        }
        (
            _,
            [
                "state" | "ca.pem" | "client-cert" | "items" | "folders" | "policy" | "wipe"
                | "faults",
                ..,
            ],
        ) => Err((
            405,
            format!("{} is not allowed on {}", req.method, req.path),
        )),
        _ => Err((404, format!("no admin endpoint {}", req.path))),
    }
}
