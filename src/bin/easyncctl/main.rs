//! `easyncctl`: the command line of easync.
//!
//! It carries the D-Bus client commands ([`client`]: status, sync, folders, policy,
//! enroll, wipe-status ...), `diagnose` (the troubleshooting checks, no daemon needed), the
//! demo (`demo`, builds with the lab only) and the offline tools, `wbxml decode` and
//! `wbxml encode`.

#[cfg(feature = "dbus")]
mod client;
#[cfg(feature = "lab")]
mod demo;
mod diagnose;

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use easync::wbxml::{self, ProtocolVersion};

const USAGE: &str = "\
usage: easyncctl status|sync|folders|policy|enroll|... (D-Bus client, see below)
       easyncctl diagnose [--config FILE] [--json] [--timeout SECONDS]
       easyncctl demo [--dir DIR] [--items N]
       easyncctl wbxml decode [--protocol VERSION] [-o OUT] [FILE|-]
       easyncctl wbxml encode [-o OUT] [FILE|-]

  demo           easync against the bundled reference server on loopback, in under a
                 minute (`easyncctl demo --help` for more)
  diagnose       check DNS, TCP, TLS, the password, the policy and push against the
                 configured server, saying what to do about each problem (no daemon needed;
                 `easyncctl diagnose --help` for more)
  wbxml decode   print an EAS WBXML document (a request or response body) as XML
  wbxml encode   turn such XML back into WBXML (byte-identical for EAS documents)

options:
  --protocol V   refuse tags that do not exist in EAS protocol version V (12.1 ... 16.1)
  -o, --output F write to F instead of standard output
  -h, --help     this text

FILE defaults to standard input; `-` also means standard input.
Exit status: 0 done, 1 the input was refused (the message says where and why), 2 usage.";

/// Whether the command line names a D-Bus client command (options may come first).
#[cfg(feature = "dbus")]
fn is_client_command() -> bool {
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--bus") => {
                args.next();
            }
            Some("--json") => {}
            Some(word) => return client::COMMANDS.contains(&word),
            None => return false,
        }
    }
    false
}

enum Command {
    Decode,
    Encode,
}

struct Args {
    command: Command,
    input: Option<String>,
    output: Option<String>,
    protocol: Option<ProtocolVersion>,
}

fn main() -> ExitCode {
    if std::env::args_os().nth(1).is_some_and(|a| a == "demo") {
        return demo_main();
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "diagnose") {
        return diagnose::main(std::env::args_os().skip(2));
    }
    #[cfg(feature = "dbus")]
    if is_client_command() {
        return client::main(std::env::args_os().skip(1).collect());
    }
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            #[cfg(feature = "dbus")]
            println!("\nD-Bus client commands:\n{}", client::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("easyncctl: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("easyncctl: {message}");
            ExitCode::from(1)
        }
    }
}

fn parse_args() -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut words: Vec<String> = Vec::new();
    let mut output = None;
    let mut protocol = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Short('o') | Long("output") => {
                output = Some(string(parser.value().map_err(|e| e.to_string())?)?);
            }
            Long("protocol") => {
                let v = string(parser.value().map_err(|e| e.to_string())?)?;
                protocol = Some(ProtocolVersion::parse(&v).ok_or_else(|| {
                    format!("unknown protocol version `{v}`: use 2.5, 12.0, 12.1, 14.0, 14.1, 16.0 or 16.1")
                })?);
            }
            Value(v) => words.push(string(v)?),
            other => return Err(other.unexpected().to_string()),
        }
    }
    let mut words = words.into_iter();
    let command = match (words.next().as_deref(), words.next().as_deref()) {
        (Some("wbxml"), Some("decode")) => Command::Decode,
        (Some("wbxml"), Some("encode")) => Command::Encode,
        (None, _) => return Err("no command given".into()),
        (Some(a), b) => {
            return Err(format!(
                "unknown command `{a}{}`",
                b.map(|b| format!(" {b}")).unwrap_or_default()
            ));
        }
    };
    let input = words.next();
    if let Some(extra) = words.next() {
        return Err(format!(
            "unexpected argument `{extra}`: give one input file"
        ));
    }
    if protocol.is_some() && matches!(command, Command::Encode) {
        return Err("--protocol applies to `wbxml decode` only".into());
    }
    Ok(Some(Args {
        command,
        input: input.filter(|f| f != "-"),
        output,
        protocol,
    }))
}

fn string(value: std::ffi::OsString) -> Result<String, String> {
    value
        .into_string()
        .map_err(|v| format!("argument `{}` is not valid UTF-8", v.to_string_lossy()))
}

fn run(args: &Args) -> Result<(), String> {
    let name = args.input.as_deref().unwrap_or("standard input");
    let input: Box<dyn Read> = match &args.input {
        Some(path) => Box::new(File::open(path).map_err(|e| format!("cannot open {path}: {e}"))?),
        None => Box::new(io::stdin().lock()),
    };
    let output: Box<dyn Write> = match &args.output {
        Some(path) => {
            Box::new(File::create(path).map_err(|e| format!("cannot create {path}: {e}"))?)
        }
        None => Box::new(io::stdout().lock()),
    };
    let mut output = BufWriter::with_capacity(64 * 1024, output);
    match args.command {
        Command::Decode => decode(input, &mut output, args.protocol, name),
        Command::Encode => encode(input, &mut output, name),
    }?;
    output
        .flush()
        .map_err(|e| format!("writing the output failed: {e}"))
}

fn decode(
    input: Box<dyn Read>,
    output: &mut impl Write,
    protocol: Option<ProtocolVersion>,
    name: &str,
) -> Result<(), String> {
    let config = wbxml::Config {
        version: protocol,
        ..wbxml::Config::default()
    };
    let mut reader = wbxml::Reader::<_, 65536, 64>::with_config(wbxml::FromStd(input), config);
    wbxml::xml::decode::decode(&mut reader, output).map_err(|e| match e {
        wbxml::xml::decode::DecodeError::Wbxml(wbxml::Error::Io(e)) => {
            format!("reading {name} failed: {e}")
        }
        wbxml::xml::decode::DecodeError::Wbxml(e) => {
            format!("{name}: {e}; the input is not an EAS WBXML document or is damaged")
        }
        e @ wbxml::xml::decode::DecodeError::Unrepresentable { .. } => format!("{name}: {e}"),
        wbxml::xml::decode::DecodeError::Output(e) => format!("writing the XML failed: {e}"),
    })
}

#[cfg(feature = "xml")]
fn encode(input: Box<dyn Read>, output: &mut impl Write, name: &str) -> Result<(), String> {
    let input = io::BufReader::with_capacity(64 * 1024, input);
    wbxml::xml::encode::encode(input, wbxml::FromStd(output))
        .map(|_| ())
        .map_err(|e| format!("{name}: {e}"))
}

#[cfg(not(feature = "xml"))]
fn encode(_: Box<dyn Read>, _: &mut impl Write, _: &str) -> Result<(), String> {
    Err("this build has no XML support (built without the `xml` feature): use a host build".into())
}

#[cfg(feature = "lab")]
fn demo_main() -> ExitCode {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(std::env::args_os().skip(2));
    let mut options = demo::Options::default();
    let parsed: Result<bool, String> = (|| {
        while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
            match arg {
                Short('h') | Long("help") => return Ok(false),
                Long("dir") => options.dir = parser.value().map_err(|e| e.to_string())?.into(),
                Long("items") => {
                    let v = string(parser.value().map_err(|e| e.to_string())?)?;
                    options.items = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or(format!("--items {v}: give a number from 1 to 100000"))?;
                }
                other => return Err(other.unexpected().to_string()),
            }
        }
        Ok(true)
    })();
    match parsed {
        Ok(false) => {
            println!("{}", demo::USAGE);
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("easyncctl demo: {message}\n\n{}", demo::USAGE);
            ExitCode::from(2)
        }
        Ok(true) => match demo::run(&options) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("easyncctl demo: {message}");
                ExitCode::from(1)
            }
        },
    }
}

#[cfg(not(feature = "lab"))]
fn demo_main() -> ExitCode {
    eprintln!(
        "easyncctl demo: this build has no lab server (built without the `lab` feature): \
         run the demo from a host build"
    );
    ExitCode::from(1)
}
