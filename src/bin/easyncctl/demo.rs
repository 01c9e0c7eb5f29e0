//! `easyncctl demo`: the whole product in under a minute, on loopback. It starts easync-lab
//! in-process with a seeded mailbox and a security policy, writes a configuration for it
//! into a fresh demo folder, runs the daemon's engine (the same runner `easyncd` runs)
//! against it, shows the initial sync as it goes, has the lab deliver a new mail and shows
//! it arrive by push, then says where the data is and how to look at it.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use easync::config::Config;
use easync::engine::account::Account;
use easync::engine::runner::{Event, Runner, Step};
use easync::lab::{self, seed::folder};

pub const USAGE: &str = "\
usage: easyncctl demo [--dir DIR] [--items N]

  Runs easync against the bundled reference server on loopback: a seeded mailbox (mail,
  contacts, calendar, tasks, notes) and a security policy, the initial sync with progress,
  a new mail delivered by push, and where the data landed.

  --dir DIR    the demo folder, recreated on each run (default ./easync-demo)
  --items N    mails in the seeded mailbox, plus N/2 contacts and N/4 events, tasks and
               notes (default 300)";

/// Marks a folder the demo made, so a re-run only ever removes its own folder.
const MARKER: &str = ".easync-demo";
/// How long the demo waits for each stage before it gives up.
const STAGE_LIMIT: Duration = Duration::from_secs(60);

pub struct Options {
    pub dir: PathBuf,
    pub items: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dir: PathBuf::from("easync-demo"),
            items: 300,
        }
    }
}

pub fn run(options: &Options) -> Result<(), String> {
    let started = Instant::now();
    let dir = &options.dir;
    fresh_dir(dir)?;
    let dir = fs::canonicalize(dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let mut lab_config = lab::Config::default();
    let loopback = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    lab_config.http = None;
    lab_config.https = loopback;
    lab_config.admin = loopback;
    lab_config.items = options.items;
    let policy_settings = lab_config.policy.len();
    let server =
        lab::Server::start(lab_config).map_err(|e| format!("the lab server did not start: {e}"))?;
    let url = server
        .https_url()
        .ok_or("the lab server has no HTTPS listener")?;
    say(&format!(
        "easync-lab is serving a seeded mailbox at {url}\n  ({} mails, {} contacts, {} events, tasks and notes each, and a security policy of \
         {policy_settings} settings, which easync acknowledges as not applied: the demo configures no policy hooks, see board/hooks/)",
        options.items,
        options.items / 2,
        options.items / 4
    ));

    let config_path = write_config(&dir, &url, server.user(), &server.ca_pem())?;
    let config = Config::load(&config_path).map_err(|e| e.to_string())?;
    let data = config.data_dir().to_path_buf();
    say(&format!(
        "configuration: {} (data in {})",
        config_path.display(),
        data.display()
    ));

    let (events_tx, events) = mpsc::channel();
    let (runner, handle) = Runner::new(Account::new(config), move |event| {
        let _ = events_tx.send(event);
    });
    let engine = std::thread::spawn(move || runner.run());
    let result = watch(&events, &server, &data, started);
    handle.stop();
    for _ in 0..100 {
        if engine.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        handle.cancel_again();
    }
    let _ = engine.join();
    drop(server);
    let arrived = result?;
    explain(&dir, &data, &arrived, started.elapsed());
    Ok(())
}

/// Prints the events of the initial sync and the push; the file the pushed mail became.
fn watch(
    events: &mpsc::Receiver<Event>,
    server: &lab::Handle,
    data: &Path,
    started: Instant,
) -> Result<PathBuf, String> {
    let next = || {
        events
            .recv_timeout(STAGE_LIMIT)
            .map_err(|_| "the demo got no news from the engine for a minute: giving up".to_string())
    };
    say("initial sync:");
    let mut shown: Vec<(String, u64)> = Vec::new();
    loop {
        match next()? {
            Event::Progress(p) => {
                // One line per step forward of a folder; empty folders stay quiet.
                let last = shown.iter_mut().find(|(f, _)| *f == p.folder);
                match last {
                    Some((_, done)) if *done == p.done => continue,
                    Some((_, done)) => *done = p.done,
                    None if p.done == 0 => continue,
                    None => shown.push((p.folder.clone(), p.done)),
                }
                let of = p.estimated.map(|e| format!(" of ~{e}")).unwrap_or_default();
                say(&format!(
                    "  {:<9} {:<16} {:>5}{of} items",
                    p.class.as_str(),
                    p.folder,
                    p.done
                ));
            }
            Event::Synced(summary) => {
                say(&format!(
                    "initial sync done in {:.1} s:",
                    started.elapsed().as_secs_f64()
                ));
                for line in summary.to_string().lines().skip(1) {
                    say(line);
                }
                break;
            }
            Event::Failed { message, .. } => return Err(format!("the sync failed: {message}")),
            _ => {}
        }
    }
    // The engine is about to park in a Ping: give it a moment to be on the wire, then
    // have the server deliver a mail.
    loop {
        if let Event::Begin(Step::Push) = next()? {
            break;
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let subject = "Welcome to easync: this mail came by push";
    say("the device is parked in a Ping; the server delivers a new mail now ...");
    let delivered = Instant::now();
    server
        .add_mail(
            folder::INBOX,
            subject,
            "Delivered by easync-lab, pushed to easyncd.",
        )
        .map_err(|e| format!("the lab did not take the new mail: {e}"))?;
    loop {
        match next()? {
            Event::Pushed(outcome) if outcome.added() > 0 => {
                let file = find_mail(data, subject).ok_or(
                    "the push round reported the mail but its file is not in the Inbox: a bug",
                )?;
                say(&format!(
                    "pushed: it arrived {} ms after delivery as {}",
                    delivered.elapsed().as_millis(),
                    file.display()
                ));
                return Ok(file);
            }
            Event::Failed { message, .. } => return Err(format!("the push failed: {message}")),
            _ => {}
        }
    }
}

/// Where the data is and how to look at it.
fn explain(dir: &Path, data: &Path, arrived: &Path, took: Duration) {
    let rel = |p: &Path| {
        p.strip_prefix(std::env::current_dir().unwrap_or_default())
            .unwrap_or(p)
            .display()
            .to_string()
    };
    let mut lines = vec![
        format!(
            "done in {:.1} s. The data is in {}:",
            took.as_secs_f64(),
            rel(data)
        ),
        format!(
            "  mail      {}/mail/<folder>/{{cur,new}}   (Maildir: mutt -f {}/mail/Inbox)",
            rel(data),
            rel(data)
        ),
        format!(
            "  contacts  {}/contacts/<folder>/*.vcf  (vCard 4.0: khard)",
            rel(data)
        ),
        format!(
            "  calendar  {}/calendar/<folder>/*.ics  (iCalendar: khal)",
            rel(data)
        ),
        format!(
            "  tasks     {}/tasks/<folder>/*.ics     (VTODO: todoman)",
            rel(data)
        ),
        format!("  notes     {}/notes/<folder>/*.txt", rel(data)),
        format!(
            "  state     {}/state/ (sync keys, policy key; private)",
            rel(data)
        ),
        format!("the pushed mail: cat {}", rel(arrived)),
        format!(
            "the configuration the demo used: {}/easync.toml (its server, the demo's lab, has stopped)",
            rel(dir)
        ),
    ];
    lines.push(
        "run the daemon on a real account: see board/easync.toml and `easyncd --help`".into(),
    );
    for line in lines {
        say(&line);
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Makes `dir` empty: removes it first if an earlier demo made it; refuses anything else.
fn fresh_dir(dir: &Path) -> Result<(), String> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let ours = dir.join(MARKER).is_file();
            let empty = fs::read_dir(dir)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !ours && !empty {
                return Err(format!(
                    "{} exists and was not made by the demo; remove it or pass --dir",
                    dir.display()
                ));
            }
            fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
        }
        Ok(_) => {
            return Err(format!(
                "{} exists and is not a folder; pass --dir",
                dir.display()
            ));
        }
        Err(_) => {}
    }
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    fs::write(
        dir.join(MARKER),
        "made by `easyncctl demo`; removed by its next run\n",
    )
    .map_err(|e| format!("writing in {}: {e}", dir.display()))
}

/// The demo's configuration, password file and lab CA; the configuration's path.
fn write_config(dir: &Path, url: &str, user: &str, ca_pem: &str) -> Result<PathBuf, String> {
    let io = |what: &Path, e: std::io::Error| format!("writing {}: {e}", what.display());
    let password = dir.join("password");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&password)
        .and_then(|mut f| f.write_all(b"labpass"))
        .map_err(|e| io(&password, e))?;
    let ca = dir.join("lab-ca.pem");
    fs::write(&ca, ca_pem).map_err(|e| io(&ca, e))?;
    let text = format!(
        "# Written by `easyncctl demo` for its loopback lab server.\n\
         [account]\nemail = {user:?}\nuser = {user:?}\npassword_file = {password:?}\nserver = {url:?}\n\n\
         [tls]\nca_file = {ca:?}\n\n[storage]\ndata_dir = {data:?}\n\n\
         [sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\n\n\
         [device]\ndevice_id = \"easyncdemo0001\"\nmodel = \"easync demo\"\n",
        password = password.display().to_string(),
        ca = ca.display().to_string(),
        data = dir.join("data").display().to_string(),
    );
    let path = dir.join("easync.toml");
    fs::write(&path, text).map_err(|e| io(&path, e))?;
    Ok(path)
}

/// The Inbox message file containing `subject`.
fn find_mail(data: &Path, subject: &str) -> Option<PathBuf> {
    let inbox = data.join("mail").join("Inbox");
    ["new", "cur"].iter().find_map(|sub| {
        fs::read_dir(inbox.join(sub)).ok()?.flatten().find_map(|e| {
            let text = fs::read(e.path()).ok()?;
            let needle = subject.as_bytes();
            text.windows(needle.len())
                .any(|w| w == needle)
                .then(|| e.path())
        })
    })
}
