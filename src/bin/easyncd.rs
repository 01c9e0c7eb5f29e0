//! `easyncd`: the easync daemon. Today it runs one full sync cycle and exits (`--once`),
//! optionally followed by one push round (`--push`); the long-running mode (push for ever,
//! periodic resync, uploads) is not built yet.

use std::path::PathBuf;
use std::process::ExitCode;

use easync::config::{self, Config};
use easync::engine::account::{Account, Progress};

const USAGE: &str = "\
usage: easyncd [--config FILE] --once [--push]

  --once          run one full cycle (negotiate, provision, folder sync, sync every selected
                  folder into the data directory) and exit
  --push          with --once: then wait for one push (Ping) round, sync what changed and
                  print what arrived
  --config FILE   the configuration (default /etc/easync/easync.toml)
  -v, --verbose   log more (repeat for debug)
  -h, --help      this text

The long-running mode (push, periodic resync, upload of local changes) is not built yet:
without --once easyncd says so and exits with status 2.
Exit status: 0 the cycle (and push round) completed, 1 it failed (the message says what to do), 2 usage.";

struct Args {
    config: PathBuf,
    once: bool,
    push: bool,
    verbosity: u8,
}

/// Log lines on stderr (warnings and errors unless -v).
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!(
                "easyncd: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            );
        }
    }

    fn flush(&self) {}
}

static LOGGER: StderrLog = StderrLog;

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("easyncd: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match args.verbosity {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    });
    if !args.once {
        eprintln!(
            "easyncd: the long-running mode is not built yet; run `easyncd --once` for one \
             sync cycle"
        );
        return ExitCode::from(2);
    }
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("easyncd: {e}");
            return ExitCode::from(1);
        }
    };
    let mut account = Account::new(config);
    let mut print_progress = |p: Progress| {
        let of = p.estimated.map(|e| format!(" of ~{e}")).unwrap_or_default();
        eprintln!("{} {}: {}{of} items", p.class.as_str(), p.folder, p.done);
    };
    match account.run_once(&mut print_progress) {
        Ok(summary) => print!("{summary}"),
        Err(e) => {
            eprintln!("easyncd: {e}");
            return ExitCode::from(1);
        }
    }
    if args.push {
        match account.push_once(&mut print_progress) {
            Ok(outcome) => print!("{outcome}"),
            Err(e) => {
                eprintln!("easyncd: push: {e}");
                return ExitCode::from(1);
            }
        }
    }
    ExitCode::SUCCESS
}

fn parse_args() -> Result<Option<Args>, String> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut args = Args {
        config: PathBuf::from(config::DEFAULT_PATH),
        once: false,
        push: false,
        verbosity: 0,
    };
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('h') | Long("help") => return Ok(None),
            Long("once") => args.once = true,
            Long("push") => args.push = true,
            Short('v') | Long("verbose") => args.verbosity = args.verbosity.saturating_add(1),
            Short('c') | Long("config") => {
                args.config = parser.value().map_err(|e| e.to_string())?.into();
            }
            other => return Err(other.unexpected().to_string()),
        }
    }
    if args.push && !args.once {
        return Err("--push needs --once (one push round after the cycle)".into());
    }
    Ok(Some(args))
}
