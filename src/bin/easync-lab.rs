//! `easync-lab`: the reference Exchange ActiveSync server for tests and OEM CI (`serve`),
//! and small clients of a running lab's admin API (`state`, `add-item`, `set-policy`,
//! `wipe`, `fault`, `clear-faults`, `client-cert`).

use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::ExitCode;

use easync::lab::{self, Config, EmptySync, Server};
use easync::wbxml::ProtocolVersion;

const USAGE: &str = "\
usage: easync-lab serve [OPTIONS]
       easync-lab state        --admin ADDR
       easync-lab add-item     --admin ADDR [--folder ID] [--subject S] [--body TEXT] [--json FILE|-]
       easync-lab set-policy   --admin ADDR [FILE.json|-] [--require-full-compliance true|false]
       easync-lab wipe         --admin ADDR [--device ID] [--account-only]
       easync-lab fault        --admin ADDR KIND [--count N] [--command CMD] [--location URL]
                                [--retry-after SECONDS|HTTP-DATE] [--delay-ms N] [--size N]
       easync-lab clear-faults --admin ADDR
       easync-lab client-cert  --admin ADDR --cn NAME

serve: a reference Exchange ActiveSync server (EAS 12.1, 14.0, 14.1, 16.0, 16.1) on
loopback, all state in memory. It prints one line per listener, `http ADDR`, `https ADDR`,
`admin ADDR` (and `ca FILE` with --cert-out), then serves until SIGTERM or SIGINT (or, with
--exit-on-stdin-eof, until standard input closes).

serve options:
  --http ADDR | off         ActiveSync over HTTP (default 127.0.0.1:0, a free port)
  --https ADDR | off        ActiveSync over HTTPS with a certificate from the lab CA for
                            127.0.0.1 and localhost (default 127.0.0.1:0)
  --admin ADDR | off        the admin JSON API (default 127.0.0.1:0)
  --cert-out FILE           write the lab CA certificate (PEM) there for clients to trust
  --capture DIR             write every ActiveSync response body into DIR (wire captures,
                            fuzzing seeds)
  --require-client-cert     HTTPS needs a client certificate from the lab CA (see client-cert)
  --seed N                  seed of the generated mailbox, keys and ids (default 1)
  --items N                 N mails, N/2 contacts, N/4 events, tasks and notes (default 20)
  --versions LIST           announced versions, e.g. 14.1,16.1 (default 12.1,14.0,14.1,16.0,16.1)
  --user U --password P     an account (repeatable; default lab@example.com / labpass); the
                            first user's name is the mailbox address
  --token T                 a valid OAuth bearer token (repeatable)
  --expired-token T         a token answered with 401 invalid_token (repeatable)
  --policy FILE.json        the policy: a JSON object of EASProvisionDoc settings, e.g.
                            {\"DevicePasswordEnabled\": 1}; {} means no policy (Policy Status 2)
  --require-full-compliance answer a partial acknowledgement (2, 3) with Provision Status 139
  --no-device-information   do not require DeviceInformation in Provision on 14.1+ (165)
  --min-heartbeat S         Ping/Sync heartbeat bounds in seconds (default 60 and 3540)
  --max-heartbeat S
  --max-folders N           most folders in one Ping (default 300)
  --no-gzip                 never compress responses
  --empty-sync MODE         never | contacts-calendar | always: an empty body for an unchanged
                            Sync (default never)
  --missing-device-id-status N   HTTP status without DeviceId (default 400; SOGo: 500)
  --exit-on-stdin-eof       stop when standard input closes

admin API (on the admin listener; ADDR above is HOST:PORT or http://HOST:PORT):
  GET /state                the policy, devices (keys, acks, DeviceInformation, wipe),
                            folders with item counts, pending faults
  GET /ca.pem               the lab CA certificate
  POST /client-cert         {\"common_name\"} -> {\"cert_pem\", \"key_pem\"}
  GET /items[?folder=ID]    items as JSON
  POST /items               {\"folder\", \"subject\"?, \"from\"?, \"to\"?, \"body\"?, \"html\"?,
                            \"props\"?: {...}, \"attachments\"?: [{\"name\", \"data\"|\"base64\"}]}
  PUT /items/{id}           {\"props\"?, \"body\"?}      DELETE /items/{id}
  POST /folders             {\"name\", \"parent\"?, \"type\"?}
  PUT /folders/{id}         {\"name\", \"parent\"?}      DELETE /folders/{id}
  PUT /policy               {\"settings\"?: {...}, \"require_full_compliance\"?: bool}
  POST /wipe                {\"device_id\"?, \"account_only\"?: bool}
  POST /faults              {\"kind\", \"count\"?, \"command\"?, \"location\"?, \"retry_after\"?, \"delay_ms\"?, \"size\"?}
  DELETE /faults

fault kinds: retry-with (449), redirect (451 + X-MS-Location; default target the lab's alias
path /lab-alias/Microsoft-Server-ActiveSync), throttle (503 + Retry-After), server-error
(500), slow (delay), reset (half the body, then close), truncate (a valid WBXML prefix),
garbage (junk bytes with 200), captive-portal (200 with an HTML sign-in page), empty (200
without a body). Hostile ones, each with its --size default: huge-string (a 1 GB string),
huge-string-table (1 GB), deep-nesting (10,000 levels), many-folders (FolderSync, 100,000),
many-adds (Sync, 1,000,000 Adds), huge-server-id (Sync, 1 MB), endless-more (Sync:
MoreAvailable without progress), ping-loop (Ping: Status 2, nothing changed), sync-key-reset
(Sync: Status 3), stall (half the body, then silence for --delay-ms, default 600000),
truncated-gzip (half the compressed body).

Default folders (ServerId = type): 2 Inbox, 3 Drafts, 4 Deleted Items, 5 Sent Items,
6 Outbox, 7 Tasks, 8 Calendar, 9 Contacts, 10 Notes, 12 Projects (user mail folder).

Exit status: 0 done, 1 failure (the message says why), 2 usage.";

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return if args.is_empty() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        };
    }
    let command = args.remove(0);
    let result = match command.as_str() {
        "serve" => serve(args),
        "state" | "add-item" | "set-policy" | "wipe" | "fault" | "clear-faults" | "client-cert" => {
            admin_command(&command, args)
        }
        other => Err(Failure::Usage(format!("unknown command `{other}`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("easync-lab: {m}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Run(m)) => {
            eprintln!("easync-lab: {m}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Run(String),
}

fn usage(e: impl ToString) -> Failure {
    Failure::Usage(e.to_string())
}

fn parser(args: Vec<String>) -> lexopt::Parser {
    lexopt::Parser::from_args(args)
}

fn value(p: &mut lexopt::Parser) -> Result<String, Failure> {
    p.value()
        .map_err(usage)?
        .into_string()
        .map_err(|_| usage("an argument is not valid UTF-8"))
}

fn number<T: std::str::FromStr>(p: &mut lexopt::Parser, what: &str) -> Result<T, Failure> {
    let v = value(p)?;
    v.parse()
        .map_err(|_| usage(format!("{what} must be a number, not `{v}`")))
}

fn address(text: &str) -> Result<Option<SocketAddr>, Failure> {
    if text == "off" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        usage(format!(
            "`{text}` is not an address like 127.0.0.1:8080 (or `off`)"
        ))
    })
}

fn serve(args: Vec<String>) -> Result<(), Failure> {
    use lexopt::prelude::*;
    let mut config = Config::default();
    let mut users: Vec<(String, String)> = Vec::new();
    let mut pending_user: Option<String> = None;
    let mut exit_on_eof = false;
    let mut p = parser(args);
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Long("http") => config.http = address(&value(&mut p)?)?,
            Long("https") => config.https = address(&value(&mut p)?)?,
            Long("admin") => config.admin = address(&value(&mut p)?)?,
            Long("cert-out") => config.cert_out = Some(PathBuf::from(value(&mut p)?)),
            Long("capture") => config.capture_dir = Some(PathBuf::from(value(&mut p)?)),
            Long("require-client-cert") => config.require_client_cert = true,
            Long("seed") => config.seed = number(&mut p, "--seed")?,
            Long("items") => config.items = number(&mut p, "--items")?,
            Long("versions") => {
                let list = value(&mut p)?;
                config.versions = list
                    .split(',')
                    .map(|v| {
                        ProtocolVersion::parse(v)
                            .filter(|v| *v >= ProtocolVersion::V12_1)
                            .ok_or_else(|| {
                                usage(format!(
                                    "unsupported version `{v}`: use 12.1, 14.0, 14.1, 16.0, 16.1"
                                ))
                            })
                    })
                    .collect::<Result<_, _>>()?;
            }
            Long("user") => pending_user = Some(value(&mut p)?),
            Long("password") => {
                let user = pending_user
                    .take()
                    .ok_or_else(|| usage("--password must follow --user"))?;
                users.push((user, value(&mut p)?));
            }
            Long("token") => config.bearer_tokens.push(value(&mut p)?),
            Long("expired-token") => config.expired_tokens.push(value(&mut p)?),
            Long("policy") => {
                let path = value(&mut p)?;
                config.policy = read_policy_file(&path)?;
            }
            Long("require-full-compliance") => config.require_full_compliance = true,
            Long("no-device-information") => config.require_device_information = false,
            Long("min-heartbeat") => config.ping_min_heartbeat = number(&mut p, "--min-heartbeat")?,
            Long("max-heartbeat") => config.ping_max_heartbeat = number(&mut p, "--max-heartbeat")?,
            Long("max-folders") => config.ping_max_folders = number(&mut p, "--max-folders")?,
            Long("no-gzip") => config.gzip = false,
            Long("empty-sync") => {
                config.empty_sync = match value(&mut p)?.as_str() {
                    "never" => EmptySync::Never,
                    "contacts-calendar" => EmptySync::ContactsCalendar,
                    "always" => EmptySync::Always,
                    other => {
                        return Err(usage(format!(
                            "--empty-sync: `{other}` is not never, contacts-calendar or always"
                        )));
                    }
                }
            }
            Long("missing-device-id-status") => {
                config.missing_device_id_status = number(&mut p, "--missing-device-id-status")?
            }
            Long("exit-on-stdin-eof") => exit_on_eof = true,
            other => return Err(usage(other.unexpected())),
        }
    }
    if pending_user.is_some() {
        return Err(usage("--user needs a --password after it"));
    }
    if !users.is_empty() {
        config.users = users;
    }
    if config.ping_min_heartbeat == 0 || config.ping_min_heartbeat > config.ping_max_heartbeat {
        return Err(usage("the heartbeat bounds must satisfy 1 <= min <= max"));
    }
    let cert_out = config.cert_out.clone();
    let handle = Server::start(config).map_err(|e| Failure::Run(e.to_string()))?;
    let mut out = io::stdout().lock();
    let print = |out: &mut io::StdoutLock, kind: &str, addr: Option<SocketAddr>| {
        if let Some(a) = addr {
            let _ = writeln!(out, "{kind} {a}");
        }
    };
    print(&mut out, "http", handle.http_addr());
    print(&mut out, "https", handle.https_addr());
    print(&mut out, "admin", handle.admin_addr());
    if let Some(path) = cert_out {
        let _ = writeln!(out, "ca {}", path.display());
    }
    let _ = out.flush();
    drop(out);
    if exit_on_eof {
        let mut sink = Vec::new();
        let _ = io::stdin().lock().read_to_end(&mut sink);
        handle.shutdown();
    } else {
        let mut handle = handle;
        handle.wait();
    }
    Ok(())
}

fn read_input(path: &str) -> Result<Vec<u8>, Failure> {
    if path == "-" {
        let mut buf = Vec::new();
        io::stdin()
            .lock()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::Run(format!("reading standard input: {e}")))?;
        return Ok(buf);
    }
    std::fs::read(path).map_err(|e| Failure::Run(format!("reading {path}: {e}")))
}

fn read_policy_file(path: &str) -> Result<Vec<(String, String)>, Failure> {
    let bytes = read_input(path)?;
    let json: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| Failure::Run(format!("{path} is not valid JSON: {e}")))?;
    let Some(map) = json.as_object() else {
        return Err(Failure::Run(format!(
            "{path} must hold a JSON object of policy settings"
        )));
    };
    let mut out = Vec::new();
    for (k, v) in map {
        let text = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => if *b { "1" } else { "0" }.to_string(),
            _ => {
                return Err(Failure::Run(format!(
                    "{path}: {k} must be a string, number or boolean"
                )));
            }
        };
        out.push((k.clone(), text));
    }
    Ok(out)
}

/// A one-shot HTTP/1.1 request to the admin API; returns (status, body).
fn admin_request(
    admin: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Result<(u16, String), Failure> {
    let host = admin.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host)
        .map_err(|e| Failure::Run(format!("cannot reach the lab admin API at {host}: {e}")))?;
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| Failure::Run(format!("sending to {host}: {e}")))?;
    let mut reader = io::BufReader::new(stream);
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .map_err(|e| Failure::Run(e.to_string()))?;
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Failure::Run(format!("{host} did not answer HTTP: {status_line:?}")))?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .map_err(|e| Failure::Run(e.to_string()))?
            == 0
            || line.trim().is_empty()
        {
            break;
        }
    }
    let mut rest = String::new();
    reader
        .read_to_string(&mut rest)
        .map_err(|e| Failure::Run(e.to_string()))?;
    Ok((status, rest))
}

fn admin_command(command: &str, args: Vec<String>) -> Result<(), Failure> {
    use lexopt::prelude::*;
    use serde_json::json;
    let mut p = parser(args);
    let mut admin = std::env::var("EASYNC_LAB_ADMIN").ok();
    let mut words: Vec<String> = Vec::new();
    let mut opts: std::collections::BTreeMap<&'static str, String> = Default::default();
    let mut flags: Vec<&'static str> = Vec::new();
    while let Some(arg) = p.next().map_err(usage)? {
        match arg {
            Long("admin") => admin = Some(value(&mut p)?),
            Long(
                name @ ("folder"
                | "subject"
                | "body"
                | "json"
                | "device"
                | "count"
                | "command"
                | "location"
                | "retry-after"
                | "delay-ms"
                | "size"
                | "cn"
                | "require-full-compliance"),
            ) => {
                let key: &'static str = match name {
                    "folder" => "folder",
                    "subject" => "subject",
                    "body" => "body",
                    "json" => "json",
                    "device" => "device",
                    "count" => "count",
                    "command" => "command",
                    "location" => "location",
                    "retry-after" => "retry-after",
                    "delay-ms" => "delay-ms",
                    "size" => "size",
                    "cn" => "cn",
                    _ => "require-full-compliance",
                };
                opts.insert(key, value(&mut p)?);
            }
            Long("account-only") => flags.push("account-only"),
            Value(v) => words.push(
                v.into_string()
                    .map_err(|_| usage("an argument is not valid UTF-8"))?,
            ),
            other => return Err(usage(other.unexpected())),
        }
    }
    let admin = admin.ok_or_else(|| {
        usage("give the admin address with --admin HOST:PORT (or EASYNC_LAB_ADMIN)")
    })?;
    let num = |k: &str| -> Result<Option<u64>, Failure> {
        opts.get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| usage(format!("--{k} must be a number")))
            })
            .transpose()
    };
    let (method, path, body) = match command {
        "state" => ("GET", "/state", None),
        "clear-faults" => ("DELETE", "/faults", None),
        "add-item" => {
            let body = match opts.get("json") {
                Some(f) => serde_json::from_slice(&read_input(f)?)
                    .map_err(|e| Failure::Run(format!("the item JSON is not valid: {e}")))?,
                None => json!({
                    "folder": opts.get("folder").cloned().unwrap_or_else(|| lab::seed::folder::INBOX.to_string()),
                    "subject": opts.get("subject").cloned().unwrap_or_else(|| "Message from easync-lab".into()),
                    "body": opts.get("body").cloned().unwrap_or_default(),
                }),
            };
            ("POST", "/items", Some(body))
        }
        "set-policy" => {
            let mut body = serde_json::Map::new();
            if let Some(file) = words.first() {
                let settings = read_policy_file(file)?;
                body.insert(
                    "settings".into(),
                    settings
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect::<serde_json::Map<_, _>>()
                        .into(),
                );
            }
            if let Some(v) = opts.get("require-full-compliance") {
                let on = match v.as_str() {
                    "true" | "1" | "yes" => true,
                    "false" | "0" | "no" => false,
                    _ => return Err(usage("--require-full-compliance takes true or false")),
                };
                body.insert("require_full_compliance".into(), on.into());
            }
            if body.is_empty() {
                return Err(usage(
                    "set-policy needs a policy file (or -) or --require-full-compliance",
                ));
            }
            ("PUT", "/policy", Some(serde_json::Value::Object(body)))
        }
        "wipe" => (
            "POST",
            "/wipe",
            Some(
                json!({"device_id": opts.get("device"), "account_only": flags.contains(&"account-only")}),
            ),
        ),
        "fault" => {
            let kind = words.first().ok_or_else(|| {
                usage("fault needs a KIND (see --help for the list: retry-with, redirect, throttle, ...)")
            })?;
            let mut f = json!({"kind": kind, "count": num("count")?.unwrap_or(1)});
            for (opt, field) in [
                ("command", "command"),
                ("location", "location"),
                ("retry-after", "retry_after"),
            ] {
                if let Some(v) = opts.get(opt) {
                    f[field] = json!(v);
                }
            }
            if let Some(d) = num("delay-ms")? {
                f["delay_ms"] = json!(d);
            }
            if let Some(n) = num("size")? {
                f["size"] = json!(n);
            }
            ("POST", "/faults", Some(f))
        }
        "client-cert" => {
            let cn = opts
                .get("cn")
                .ok_or_else(|| usage("client-cert needs --cn NAME"))?;
            ("POST", "/client-cert", Some(json!({"common_name": cn})))
        }
        _ => return Err(usage(format!("unknown command `{command}`"))),
    };
    let (status, text) = admin_request(&admin, method, path, body.as_ref())?;
    if command == "client-cert" && status == 200 {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Failure::Run(e.to_string()))?;
        print!(
            "{}{}",
            v["cert_pem"].as_str().unwrap_or(""),
            v["key_pem"].as_str().unwrap_or("")
        );
        return Ok(());
    }
    print!("{text}");
    if status == 200 {
        Ok(())
    } else {
        Err(Failure::Run(format!("the lab answered HTTP {status}")))
    }
}
