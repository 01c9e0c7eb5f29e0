//! An OAuth account (`[account.oauth]`) through the engine against the lab over HTTPS: the
//! first cycle signs in with the device flow (the code goes to the prompt, the test approves
//! it through the lab from another thread), later cycles use the stored tokens, an expired
//! or refused access token is refreshed silently and the rotated refresh token is stored, a
//! denied or expired sign-in, a refused refresh token and an unusable tokens file give clear
//! errors that park the account, and a stop ends a sign-in that waits for approval.
#![cfg(feature = "lab")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, Once};

use common::client;
use common::lab::Lab;
use common::setup::TempDir;
use easync::config::Config;
use easync::engine::account::{Account, EngineError, Summary};
use easync::engine::enroll::{SignInError, SignInPrompt};
use easync::engine::reaction::Reaction;
use easync::lab;
use easync::store::credentials::{CredentialStore, OAUTH_TOKENS_FILE};
use easync::transport::{self, oauth};
use serde_json::Value;

const CLIENT_ID: &str = "easync-lab-client";

/// Every log line of the client side (the lab's own lines are left out), to prove that no
/// token is ever logged.
static LOG_LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("easync::lab") {
            return;
        }
        let line = format!("{} {}: {}", record.level(), record.target(), record.args());
        LOG_LINES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(line);
    }

    fn flush(&self) {}
}

fn capture_logs() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        log::set_logger(&Capture).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

fn logged_lines_containing(needle: &str) -> Vec<String> {
    LOG_LINES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn start_lab(tune: impl FnOnce(&mut lab::Config)) -> Lab {
    let mut config = lab::Config {
        items: 4,
        ..Lab::default_config()
    };
    // The engine polls every `interval` seconds: keep the tests short.
    config.oauth.interval = 1;
    tune(&mut config);
    Lab::start(config)
}

/// A configuration with `[account.oauth]` pointing at the lab, and its data directory.
struct OAuthSetup {
    dir: TempDir,
    config_path: PathBuf,
}

impl OAuthSetup {
    fn new(lab: &Lab, tag: &str) -> OAuthSetup {
        let dir = TempDir::new(tag);
        let user = lab.handle.user().to_string();
        let email = if user.contains('@') {
            user.clone()
        } else {
            format!("{user}@example.com")
        };
        let text = format!(
            "[account]\nemail = {email:?}\nuser = {user:?}\nserver = {:?}\n\n\
             [account.oauth]\nclient_id = {CLIENT_ID:?}\n\
             device_authorization_endpoint = {:?}\ntoken_endpoint = {:?}\n\n\
             [tls]\nca_file = {:?}\n\n[storage]\ndata_dir = {:?}\n\n\
             [sync]\nmail_age = \"all\"\ncalendar_age = \"all\"\n\n\
             [device]\ndevice_id = {:?}\n",
            lab.handle.https_url().expect("https listener"),
            lab.handle.oauth_device_url().expect("device endpoint"),
            lab.handle.oauth_token_url().expect("token endpoint"),
            lab.ca_file.display().to_string(),
            dir.0.join("data").display().to_string(),
            client::device_id(tag),
        );
        let config_path = dir.0.join("easync.toml");
        std::fs::write(&config_path, text).unwrap();
        OAuthSetup { dir, config_path }
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn config(&self) -> Config {
        let text = std::fs::read_to_string(&self.config_path).unwrap();
        Config::parse(&text, &self.config_path.display().to_string(), None)
            .unwrap_or_else(|e| panic!("the test configuration loads: {e}"))
    }

    fn store(&self) -> CredentialStore {
        CredentialStore::new(&self.data())
    }

    fn tokens_path(&self) -> PathBuf {
        self.store().oauth_path()
    }

    /// An account whose sign-in prompt sends the prompt to the returned receiver.
    fn account(&self) -> (Account, Receiver<SignInPrompt>) {
        let (tx, rx) = mpsc::channel();
        let mut account = Account::new(self.config());
        account.set_sign_in_prompt(Box::new(move |p: &SignInPrompt| {
            let _ = tx.send(p.clone());
        }));
        (account, rx)
    }

    /// One cycle, with `decide` applied to the code the prompt shows (from another
    /// thread, while the engine polls). Returns the cycle's result and the prompt.
    fn run_deciding(
        &self,
        lab: &Lab,
        decide: fn(&lab::Handle, &str) -> Result<(), String>,
    ) -> (Result<Summary, EngineError>, SignInPrompt) {
        let (mut account, prompts) = self.account();
        std::thread::scope(|s| {
            let decider = s.spawn(move || {
                let prompt = prompts.recv().expect("the sign-in prompt is shown");
                decide(&lab.handle, &prompt.user_code).expect("the lab knows the code");
                prompt
            });
            let result = account.run_once(&mut |_| {});
            (result, decider.join().unwrap())
        })
    }

    /// Signs in (approved) and checks the cycle went through.
    fn sign_in(&self, lab: &Lab) -> Summary {
        let (result, _) = self.run_deciding(lab, lab::Handle::oauth_approve);
        result.unwrap_or_else(|e| panic!("the first cycle signs in and syncs: {e}"))
    }

    /// One cycle that must not ask for a sign-in.
    fn run_without_prompt(&self) -> Result<Summary, EngineError> {
        let (mut account, prompts) = self.account();
        let result = account.run_once(&mut |_| {});
        assert!(
            prompts.try_recv().is_err(),
            "stored tokens are used without a new sign-in"
        );
        result
    }

    fn tokens_file(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.tokens_path()).unwrap()).unwrap()
    }

    /// Rewrites a field of the stored tokens (keeping the file's mode).
    fn edit_tokens(&self, edit: impl FnOnce(&mut Value)) {
        let mut file = self.tokens_file();
        edit(&mut file);
        std::fs::write(self.tokens_path(), serde_json::to_vec(&file).unwrap()).unwrap();
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn synced_mails(summary: &Summary) -> u64 {
    summary
        .classes
        .get(&easync::config::SyncClass::Email)
        .map_or(0, |c| c.added)
}

fn field(file: &Value, name: &str) -> String {
    file[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} in {file}"))
        .to_string()
}

#[test]
fn the_first_cycle_signs_in_and_later_ones_use_the_stored_tokens() {
    capture_logs();
    let lab = start_lab(|_| {});
    let setup = OAuthSetup::new(&lab, "oauthfirst");

    let (result, prompt) = setup.run_deciding(&lab, lab::Handle::oauth_approve);
    let summary = result.unwrap_or_else(|e| panic!("the first cycle signs in and syncs: {e}"));
    assert!(synced_mails(&summary) > 0, "{summary}");
    assert!(
        prompt.verification_uri.starts_with("https://")
            && prompt.verification_uri.contains("/oauth2/verify"),
        "{prompt:?}"
    );
    assert!(prompt.message.contains(&prompt.user_code), "{prompt:?}");
    assert!(prompt.expires_in.as_secs() > 0);

    // The tokens are in the credential store, private, and are what the lab issued.
    let store = setup.store();
    assert_eq!(mode(store.dir()), 0o700);
    assert_eq!(mode(&setup.tokens_path()), 0o600);
    assert_eq!(setup.tokens_path().file_name().unwrap(), OAUTH_TOKENS_FILE);
    let file = setup.tokens_file();
    let access = field(&file, "access_token");
    let refresh = field(&file, "refresh_token");
    assert!(access.starts_with("lab-access-"), "{access}");
    assert!(refresh.starts_with("lab-refresh-"), "{refresh}");
    assert_eq!(file["format"], 1);

    // The second cycle runs on the stored tokens alone (the config has no password).
    let second = setup
        .run_without_prompt()
        .unwrap_or_else(|e| panic!("the second cycle uses the stored tokens: {e}"));
    assert_eq!(
        synced_mails(&second),
        0,
        "nothing new on the server: {second}"
    );
    assert_eq!(field(&setup.tokens_file(), "access_token"), access);

    // Neither token ever reached the log (the capture holds every client line).
    assert!(!LOG_LINES.lock().unwrap().is_empty(), "the capture works");
    assert_eq!(logged_lines_containing(&access), Vec::<String>::new());
    assert_eq!(logged_lines_containing(&refresh), Vec::<String>::new());
}

#[test]
fn an_expired_access_token_is_refreshed_and_the_rotated_tokens_are_stored() {
    capture_logs();
    let lab = start_lab(|_| {});
    let setup = OAuthSetup::new(&lab, "oauthrefresh");
    setup.sign_in(&lab);
    let before = setup.tokens_file();

    // Expired by the clock: refreshed before the first request.
    setup.edit_tokens(|f| f["expires_at"] = Value::from(0));
    setup
        .run_without_prompt()
        .unwrap_or_else(|e| panic!("an expired token is refreshed silently: {e}"));
    let after = setup.tokens_file();
    assert_ne!(
        field(&after, "refresh_token"),
        field(&before, "refresh_token")
    );
    assert_ne!(
        field(&after, "access_token"),
        field(&before, "access_token")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(after["expires_at"].as_u64().unwrap() > now, "{after}");
    assert_eq!(mode(&setup.tokens_path()), 0o600);

    // Refused by the server (401) though not expired by the clock: refreshed once and the
    // request sent again.
    setup.edit_tokens(|f| f["access_token"] = Value::from("not-a-lab-token"));
    setup
        .run_without_prompt()
        .unwrap_or_else(|e| panic!("a 401 leads to a silent refresh: {e}"));
    let again = setup.tokens_file();
    assert_ne!(
        field(&again, "refresh_token"),
        field(&after, "refresh_token")
    );
    assert!(field(&again, "access_token").starts_with("lab-access-"));

    for token in [&before, &after, &again]
        .iter()
        .flat_map(|f| [field(f, "access_token"), field(f, "refresh_token")])
    {
        assert_eq!(logged_lines_containing(&token), Vec::<String>::new());
    }
}

#[test]
fn a_refused_refresh_token_asks_for_a_new_sign_in_and_keeps_the_old_tokens() {
    let lab = start_lab(|_| {});
    let setup = OAuthSetup::new(&lab, "oauthrefused");
    setup.sign_in(&lab);
    let signed_in = setup.tokens_file();
    // Rotate once, then put the spent refresh token back (a restored backup, say).
    setup.edit_tokens(|f| f["expires_at"] = Value::from(0));
    setup.run_without_prompt().expect("refreshed");
    setup.edit_tokens(|f| {
        f["expires_at"] = Value::from(0);
        f["refresh_token"] = signed_in["refresh_token"].clone();
    });

    let e = setup
        .run_without_prompt()
        .expect_err("the lab refuses a spent refresh token");
    let message = e.to_string();
    assert!(
        matches!(&e, EngineError::SignIn(SignInError::Refused { .. })),
        "{e:?}"
    );
    assert!(message.contains("sign in again"), "{message}");
    assert!(message.contains("invalid_grant"), "{message}");
    assert!(
        matches!(e.reaction(), Some(Reaction::NeedsCredentials { .. })),
        "parked until someone signs in"
    );
    // Set aside, not deleted.
    let store = setup.store();
    assert!(!setup.tokens_path().exists());
    let kept: Value =
        serde_json::from_slice(&std::fs::read(store.refused_oauth_path()).unwrap()).unwrap();
    assert_eq!(kept["refresh_token"], signed_in["refresh_token"]);
    assert!(message.contains(&store.refused_oauth_path().display().to_string()));

    // The next attempt signs in afresh.
    let summary = setup.sign_in(&lab);
    assert_eq!(synced_mails(&summary), 0, "the store was kept: {summary}");
    assert!(setup.tokens_path().exists());
}

#[test]
fn a_denied_or_expired_sign_in_is_a_clear_error_that_parks_the_account() {
    let lab = start_lab(|_| {});
    let setup = OAuthSetup::new(&lab, "oauthdenied");

    let (result, _) = setup.run_deciding(&lab, lab::Handle::oauth_deny);
    let e = result.expect_err("a denied sign-in fails the cycle");
    assert!(
        matches!(
            &e,
            EngineError::SignIn(SignInError::Flow(oauth::Error::Denied))
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("sign in again"), "{e}");
    assert!(matches!(
        e.reaction(),
        Some(Reaction::NeedsCredentials { .. })
    ));
    assert!(!setup.tokens_path().exists(), "nothing stored");

    let (result, _) = setup.run_deciding(&lab, lab::Handle::oauth_expire);
    let e = result.expect_err("an expired code fails the cycle");
    assert!(
        matches!(
            &e,
            EngineError::SignIn(SignInError::Flow(oauth::Error::Expired))
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("sign-in again"), "{e}");
    assert!(matches!(
        e.reaction(),
        Some(Reaction::NeedsCredentials { .. })
    ));
    assert!(!setup.tokens_path().exists());
}

#[test]
fn a_stop_ends_a_sign_in_waiting_for_approval() {
    // Should the cancel not reach the wait, the code expires after a minute and the
    // assertion below fails.
    let lab = start_lab(|c| c.oauth.expires_in = 60);
    let setup = OAuthSetup::new(&lab, "oauthstop");
    let (mut account, prompts) = setup.account();
    let interrupter = account.interrupter();
    let result = std::thread::scope(|s| {
        s.spawn(move || {
            prompts.recv().expect("the sign-in prompt is shown");
            interrupter.cancel_all();
        });
        account.run_once(&mut |_| {})
    });
    let e = result.expect_err("stopped");
    assert!(
        matches!(e, EngineError::Transport(transport::Error::Cancelled)),
        "{e:?}"
    );
    assert!(!setup.tokens_path().exists());
}

#[test]
fn unusable_stored_tokens_are_refused_and_left_in_place() {
    let lab = start_lab(|_| {});
    let setup = OAuthSetup::new(&lab, "oauthunusable");
    let store = setup.store();
    std::fs::create_dir_all(store.dir()).unwrap();
    for (bytes, mode) in [
        (
            &b"{\"format\":1,\"access_token\":\"a\",\"expires_at\":1}"[..],
            0o644,
        ),
        (b"{\"format\":1,\"access_tok", 0o600),
    ] {
        std::fs::write(setup.tokens_path(), bytes).unwrap();
        std::fs::set_permissions(setup.tokens_path(), std::fs::Permissions::from_mode(mode))
            .unwrap();
        let e = setup
            .run_without_prompt()
            .expect_err("unusable tokens stop the cycle");
        assert!(
            matches!(&e, EngineError::SignIn(SignInError::Credentials(_))),
            "{e:?}"
        );
        let message = e.to_string();
        assert!(message.contains("sign in again"), "{message}");
        assert!(
            message.contains(&setup.tokens_path().display().to_string()),
            "{message}"
        );
        assert!(matches!(
            e.reaction(),
            Some(Reaction::NeedsCredentials { .. })
        ));
        assert_eq!(
            std::fs::read(setup.tokens_path()).unwrap(),
            bytes,
            "left as it was"
        );
    }
}
