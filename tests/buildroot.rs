//! The Buildroot BR2_EXTERNAL tree in board/buildroot/ (the easync package, its defconfig
//! and board files). Buildroot itself is not available offline, so this checks statically
//! what its `utils/check-package` and a build would catch: the coding style of the manual
//! (the `.mk` header, prefixes, indentation and assignments; `Config.in` indentation,
//! attribute order and help text; the hash file format), that every file the package
//! installs exists and lands where the unit, the bus and the configuration expect it, that
//! the versions agree with Cargo.toml, and that the defconfig selects the package. GNU make
//! runs the `.mk`'s install and vendoring hooks with Buildroot's few definitions stubbed;
//! the board's post-build script runs on the resulting target directory; kconfiglib (PyPI)
//! parses the `Config.in` files as Buildroot's kconfig does, and shellcheck lints the
//! script (tests/run.sh installs make, shellcheck and kconfiglib).

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PACKAGE_MK: &str = "package/easync/easync.mk";
const PACKAGE_CONFIG_IN: &str = "package/easync/Config.in";
const PACKAGE_HASH: &str = "package/easync/easync.hash";
const DEFCONFIG: &str = "configs/easync_qemu_aarch64_virt_defconfig";
const POST_BUILD: &str = "board/qemu-aarch64-virt/post-build.sh";
const DEVICE_FEATURES: &str = "--no-default-features --features device";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn tree(path: &str) -> PathBuf {
    repo("board/buildroot").join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn tool_available(program: &str, probe: &[&str]) -> bool {
    Command::new(program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success())
}

// ---------------------------------------------------------------------------------------
// The rules of utils/check-package (utils/checkpackagelib/lib*.py), ported for the files
// of this tree. Each checker returns the problems found, "file:line: what".
// ---------------------------------------------------------------------------------------

/// Rules every checked file type shares: no trailing whitespace, a newline at the end, no
/// empty last line, no two consecutive empty lines, ASCII only.
fn common_problems(name: &str, text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if !text.ends_with('\n') {
        problems.push(format!("{name}: missing newline at end of file"));
    }
    if text.ends_with("\n\n") {
        problems.push(format!("{name}: empty last line"));
    }
    let mut previous_empty = false;
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        if line.ends_with(' ') || line.ends_with('\t') {
            problems.push(format!("{name}:{lineno}: trailing whitespace"));
        }
        if !line.is_ascii() {
            problems.push(format!("{name}:{lineno}: non-ASCII characters"));
        }
        let empty = line.trim().is_empty();
        if empty && previous_empty {
            problems.push(format!("{name}:{lineno}: consecutive empty lines"));
        }
        previous_empty = empty;
    }
    problems
}

/// The name of a `NAME =`, `NAME +=`, `NAME :=` or `NAME ?=` assignment at the start of
/// the line, with the operator and what surrounds it.
fn assignment(line: &str) -> Option<(&str, &str, &str, &str)> {
    let name_end = line
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(line.len());
    if name_end == 0 {
        return None;
    }
    let (name, rest) = line.split_at(name_end);
    let trimmed = rest.trim_start_matches([' ', '\t']);
    let before = &rest[..rest.len() - trimmed.len()];
    let operator = ["+=", ":=", "?=", "="]
        .into_iter()
        .find(|op| trimmed.starts_with(op))?;
    Some((name, before, operator, &trimmed[operator.len()..]))
}

fn is_make_conditional(line: &str) -> bool {
    let first = line.split_whitespace().next().unwrap_or("");
    ["ifdef", "ifeq", "ifndef", "ifneq", "else", "elif", "endif"].contains(&first)
}

/// A makefile rule line (`target: ...`), as check-package's Indent sees one.
fn is_make_target(line: &str) -> bool {
    let head_end = line.find(['#', ' ', '\t']).unwrap_or(line.len());
    let head = &line[..head_end];
    head.len() > 1
        && head.ends_with(':')
        && line[head.len()..]
            .chars()
            .next()
            .is_some_and(char::is_whitespace)
}

fn ends_with_backslash(line: &str) -> bool {
    !line.starts_with('#') && line.ends_with('\\')
}

/// check-package's lib_mk rules plus the manual's "Writing rules" for a package `.mk`.
fn mk_problems(name: &str, package: &str, text: &str) -> Vec<String> {
    let prefix = format!("{}_", package.to_uppercase().replace('-', "_"));
    let lines: Vec<&str> = text.lines().collect();
    let mut problems = common_problems(name, text);

    // Header: 80 hashes, "#", "# package", "#", 80 hashes, a blank line.
    let hashes = "#".repeat(80);
    let package_line = format!("# {package}");
    let header = [
        hashes.as_str(),
        "#",
        package_line.as_str(),
        "#",
        hashes.as_str(),
        "",
    ];
    for (index, expected) in header.iter().enumerate() {
        if lines.get(index).map(|l| l.trim_end()) != Some(*expected) {
            problems.push(format!(
                "{name}:{}: header line should be {expected:?}",
                index + 1
            ));
        }
    }

    let mut in_define = false;
    let mut after_backslash = false;
    let mut in_target = false;
    let mut previous_backslash_line: Option<usize> = None;
    let mut unconditional: BTreeSet<String> = BTreeSet::new();
    let mut depth = 0usize;
    for (index, &line) in lines.iter().enumerate() {
        let lineno = index + 1;
        let trimmed = line.trim_start();
        let comment = trimmed.starts_with('#');

        // Indent: tabs inside define/endef, after a backslash and in rule bodies only.
        if trimmed.starts_with("define ") {
            in_define = true;
        } else if trimmed == "endef" || trimmed.starts_with("endef ") {
            in_define = false;
        } else {
            let mut expect_tabs = in_define || after_backslash || in_target;
            if !after_backslash && is_make_conditional(line) {
                expect_tabs = false;
            }
            if is_make_target(line) {
                in_target = true;
            } else if line.trim().is_empty() {
                in_target = false;
            } else if !(in_define && comment) {
                if expect_tabs && !line.starts_with('\t') {
                    problems.push(format!("{name}:{lineno}: expected indent with tabs"));
                }
                if !expect_tabs && line.starts_with('\t') {
                    problems.push(format!("{name}:{lineno}: unexpected indent with tabs"));
                }
            }
        }
        after_backslash = ends_with_backslash(line);

        // A backslash must not continue onto an empty line, and has one space before it.
        if line.trim().is_empty() {
            if let Some(previous) = previous_backslash_line {
                problems.push(format!("{name}:{previous}: remove trailing backslash"));
            }
        }
        previous_backslash_line = ends_with_backslash(line).then_some(lineno);
        if ends_with_backslash(line) {
            let body = &line[..line.len() - 1];
            if body.ends_with("  ") || body.ends_with('\t') || body.ends_with("\t ") {
                problems.push(format!(
                    "{name}:{lineno}: use only one space before backslash"
                ));
            }
        }
        if comment {
            continue;
        }

        let first = trimmed.split_whitespace().next().unwrap_or("");
        if first == "ifdef" || first == "ifndef" {
            problems.push(format!("{name}:{lineno}: use ifeq/ifneq ($(SYMBOL),y)"));
        }
        if line
            .match_indices("${")
            .any(|(i, _)| i == 0 || !line[..i].ends_with('$'))
        {
            problems.push(format!(
                "{name}:{lineno}: use $() to delimit variables, not ${{}}"
            ));
        }
        if matches!(first, "ifeq" | "ifneq" | "ifdef" | "ifndef") {
            depth += 1;
        } else if first == "endif" {
            depth = depth.saturating_sub(1);
        }

        // Variables are the package's own (check-package's "possible typo"): PACKAGE_...
        let declared_name = match trimmed.strip_prefix("define ") {
            Some(rest) => Some(rest.trim()),
            None if !line.starts_with('\t') => assignment(line).map(|(variable, ..)| variable),
            None => None,
        };
        if let Some(variable) = declared_name.filter(|v| v.contains('_')) {
            if !variable.contains(prefix.as_str()) {
                problems.push(format!(
                    "{name}:{lineno}: variable not properly prefixed: {variable} -> {prefix}XXXX"
                ));
            }
        }

        if let Some((variable, before, operator, after)) = assignment(line) {
            if before != " "
                || !(after.is_empty() || after.starts_with(' ') && !after.starts_with("  "))
            {
                problems.push(format!(
                    "{name}:{lineno}: assignment: one space before and after {operator}"
                ));
            }
            let value = after.trim();
            if variable == format!("{prefix}SOURCE")
                && value == format!("{package}-$({prefix}VERSION).tar.gz")
            {
                problems.push(format!("{name}:{lineno}: remove default value of _SOURCE"));
            }
            for (suffix, default) in [
                ("INSTALL_TARGET", "YES"),
                ("INSTALL_STAGING", "NO"),
                ("INSTALL_IMAGES", "NO"),
                ("REDISTRIBUTE", "YES"),
            ] {
                if depth == 0 && variable.ends_with(suffix) && value == default {
                    problems.push(format!("{name}:{lineno}: useless default value"));
                }
            }
            let overriding = operator != "+=" && operator != "?=";
            if depth == 0 && overriding && !unconditional.insert(variable.to_string()) {
                problems.push(format!(
                    "{name}:{lineno}: unconditional override of variable {variable}"
                ));
            }
        }
    }

    // The package declaration opens the file, in the manual's order.
    let declared: Vec<(usize, &str)> = lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| assignment(l).map(|(v, ..)| (i, v)))
        .collect();
    let order = ["VERSION", "SITE", "SOURCE", "LICENSE", "LICENSE_FILES"];
    let mut last = None;
    for (step, suffix) in order.iter().enumerate() {
        let wanted = format!("{prefix}{suffix}");
        if let Some(position) = declared.iter().position(|(_, v)| *v == wanted) {
            if position != last.map_or(0, |l: usize| l + 1) {
                problems.push(format!(
                    "{name}:{}: {wanted} out of order: {} first",
                    declared[position].0 + 1,
                    order[..=step].join(", ")
                ));
            }
            last = Some(position);
        } else if !matches!(*suffix, "SOURCE" | "LICENSE_FILES") {
            problems.push(format!("{name}: {wanted} is missing"));
        }
    }
    problems
}

fn is_help_text(line: &str) -> bool {
    line.starts_with("\t  ")
}

/// check-package's lib_config rules for a `Config.in`, plus: every `config` has help.
fn config_in_problems(name: &str, text: &str) -> Vec<String> {
    const INDENTED: [&str; 7] = [
        "bool", "default", "depends", "help", "prompt", "select", "string",
    ];
    const NOT_INDENTED: [&str; 10] = [
        "choice",
        "comment",
        "config",
        "endchoice",
        "endif",
        "endmenu",
        "if",
        "menu",
        "menuconfig",
        "source",
    ];
    let order = |attribute: &str| match attribute {
        "bool" | "prompt" | "string" => Some(1),
        "default" => Some(2),
        "depends" => Some(3),
        "select" => Some(4),
        "help" => Some(5),
        _ => None,
    };
    let mut problems = common_problems(name, text);
    let mut in_help = false;
    let mut state = 0;
    let mut open_config: Option<(usize, bool)> = None;
    let close = |open: &mut Option<(usize, bool)>, problems: &mut Vec<String>| {
        if let Some((lineno, false)) = open.take() {
            problems.push(format!("{name}:{lineno}: config without help text"));
        }
    };
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let entry = line.split_whitespace().next().unwrap_or("");
        if in_help && !NOT_INDENTED.contains(&entry) {
            let text = line.strip_prefix("\t  ");
            let url_only = ["http://", "https://", "git://"]
                .iter()
                .any(|s| line.trim().starts_with(s))
                && !line.trim().contains(' ');
            if !(text.is_some_and(|t| t.chars().count() <= 62) || url_only) {
                problems.push(format!(
                    "{name}:{lineno}: help text: <tab><2 spaces><62 chars>"
                ));
            }
            continue;
        }
        if is_help_text(line) {
            continue;
        }
        if NOT_INDENTED.contains(&entry) {
            in_help = false;
            state = 0;
            close(&mut open_config, &mut problems);
            if entry == "config" || entry == "menuconfig" {
                open_config = Some((lineno, false));
            }
            if !line.starts_with(entry) {
                problems.push(format!("{name}:{lineno}: {entry} should not be indented"));
            }
            continue;
        }
        if INDENTED.contains(&entry) && !line.starts_with(&format!("\t{entry}")) {
            problems.push(format!("{name}:{lineno}: should be indented with one tab"));
        }
        if let Some(rank) = order(entry) {
            if state > rank {
                problems.push(format!(
                    "{name}:{lineno}: attributes order: type, default, depends on, select, help"
                ));
            }
            state = rank;
        }
        if line.trim() == "help" {
            in_help = true;
            if let Some((_, has_help)) = open_config.as_mut() {
                *has_help = true;
            }
        }
    }
    close(&mut open_config, &mut problems);
    problems
}

/// check-package's lib_hash rules: `type  hex  file`, two spaces apart, a known type with
/// a hash of its length.
fn hash_problems(name: &str, text: &str) -> Vec<String> {
    let mut problems = common_problems(name, text);
    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            problems.push(format!("{name}:{lineno}: expected three fields"));
            continue;
        }
        let length = match fields[0] {
            "md5" => 32,
            "sha1" => 40,
            "sha224" => 56,
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => {
                problems.push(format!("{name}:{lineno}: unexpected type of hash"));
                continue;
            }
        };
        if fields[1].len() != length || !fields[1].chars().all(|c| c.is_ascii_hexdigit()) {
            problems.push(format!(
                "{name}:{lineno}: hash size does not match type ({length} hex digits)"
            ));
        }
        if line != format!("{}  {}  {}", fields[0], fields[1], fields[2]) {
            problems.push(format!(
                "{name}:{lineno}: separation does not match expectation"
            ));
        }
    }
    problems
}

fn assert_clean(problems: Vec<String>) {
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------
// The package's .mk, read as make would: continuation lines joined.
// ---------------------------------------------------------------------------------------

/// The value of `VARIABLE = ...` (continuations joined, whitespace collapsed).
fn mk_value(mk: &str, variable: &str) -> Option<String> {
    let joined = mk.replace("\\\n", " ");
    joined.lines().find_map(|line| {
        let (name, _, operator, value) = assignment(line)?;
        (name == variable && operator == "=")
            .then(|| value.split_whitespace().collect::<Vec<_>>().join(" "))
    })
}

/// One `$(INSTALL)` of a file from the source tree: mode, source below `$(@D)/` and
/// destination below `$(TARGET_DIR)`.
#[derive(Debug)]
struct Install {
    mode: String,
    source: String,
    destination: String,
}

fn installs(mk: &str) -> Vec<Install> {
    let joined = mk.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines().filter(|l| l.contains("$(INSTALL)")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mode = words
            .windows(2)
            .find(|w| w[0] == "-m")
            .map(|w| w[1].to_string())
            .unwrap_or_default();
        let source = words.iter().find_map(|w| w.strip_prefix("$(@D)/"));
        let destination = words.iter().find_map(|w| w.strip_prefix("$(TARGET_DIR)"));
        if let (Some(source), Some(destination)) = (source, destination) {
            found.push(Install {
                mode,
                source: source.to_string(),
                destination: destination.to_string(),
            });
        }
    }
    found
}

fn cargo_toml() -> toml::Table {
    read(&repo("Cargo.toml"))
        .parse()
        .expect("Cargo.toml parses")
}

/// The features a feature list turns on, following `feature = [...]` entries.
fn enabled_features(cargo: &toml::Table, roots: &[&str]) -> BTreeSet<String> {
    let features = cargo["features"].as_table().expect("[features]");
    let mut enabled = BTreeSet::new();
    let mut pending: Vec<String> = roots.iter().map(|s| s.to_string()).collect();
    while let Some(feature) = pending.pop() {
        if !enabled.insert(feature.clone()) {
            continue;
        }
        if let Some(list) = features.get(&feature).and_then(|v| v.as_array()) {
            pending.extend(
                list.iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| !s.starts_with("dep:") && !s.contains('/'))
                    .map(str::to_string),
            );
        }
    }
    enabled
}

/// Runs GNU make on the package's `.mk` with the few Buildroot definitions it uses
/// stubbed, as Buildroot would include it; `rules` are appended, `vars` set first.
fn make_with_mk(dir: &Path, vars: &str, rules: &str, goals: &[&str]) -> std::process::Output {
    let stub = format!(
        "{vars}\nINSTALL := install\n\
         github = https://github.com/$(1)/$(2)/archive/$(3)\n\
         cargo-package :=\n\
         define sep\n\n\nendef\n\
         include {mk}\n\
         print-%:\n\t@echo '$*=$($*)'\n\
         {rules}",
        mk = tree(PACKAGE_MK).display()
    );
    std::fs::write(dir.join("stub.mk"), stub).unwrap();
    Command::new("make")
        .args(["-s", "-f", "stub.mk"])
        .args(goals)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn scratch(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("easync-br-{label}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---------------------------------------------------------------------------------------
// The checkers catch what they claim to: broken samples.
// ---------------------------------------------------------------------------------------

#[test]
fn the_checkers_catch_broken_files() {
    let broken_mk = "###\n#\n# foo\n#\n###\n\nFOO_SITE  = x\nFOO_VERSION = 1.0\n\
                     FOO_LICENSE = MIT\nBAR_OPTS = a\nFOO_SOURCE = foo-$(FOO_VERSION).tar.gz\n\
                     define FOO_X\n    echo ${HOME} \\\n\nendef\n\tFOO_Y = 1\n\
                     FOO_INSTALL_TARGET = YES\nifdef FOO_Z\nendif\nFOO_VERSION = 2 \n";
    let problems = mk_problems("foo.mk", "foo", broken_mk).join("\n");
    for expected in [
        "foo.mk:1: header",
        "foo.mk:7: assignment",
        "not properly prefixed: BAR_OPTS",
        "remove default value of _SOURCE",
        "foo.mk:13: expected indent with tabs",
        "${}",
        "remove trailing backslash",
        "unexpected indent with tabs",
        "useless default value",
        "use ifeq",
        "unconditional override of variable FOO_VERSION",
        "trailing whitespace",
        "FOO_SITE out of order",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in:\n{problems}"
        );
    }

    let broken_config = "config BR2_PACKAGE_FOO\n    bool \"foo\"\n\tselect BR2_X\n\
                         \tdepends on BR2_Y\n\thelp\n\t  fine\n\tnot help text\n\
                         \t  this help text line is far longer than sixty-two characters in all\n\
                         \n  config BR2_PACKAGE_BAR\n\tbool \"bar\"\n\n\n";
    let problems = config_in_problems("Config.in", broken_config).join("\n");
    for expected in [
        "Config.in:2: should be indented with one tab",
        "Config.in:4: attributes order",
        "Config.in:7: help text",
        "Config.in:8: help text",
        "Config.in:10: config should not be indented",
        "Config.in:10: config without help text",
        "consecutive empty lines",
        "empty last line",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in:\n{problems}"
        );
    }

    let broken_hash = "# fine\nsha256 abc  file\nsha256  abcd  file extra\n\
                       sha257  00  file\nsha1  0123456789012345678901234567890123456789 file";
    let problems = hash_problems("foo.hash", broken_hash).join("\n");
    for expected in [
        "foo.hash:2: hash size does not match",
        "foo.hash:2: separation",
        "foo.hash:3: expected three fields",
        "foo.hash:4: unexpected type",
        "foo.hash:5: separation",
        "missing newline",
    ] {
        assert!(
            problems.contains(expected),
            "{expected:?} not in:\n{problems}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The tree.
// ---------------------------------------------------------------------------------------

#[test]
fn the_external_tree_is_named_easync_and_reaches_the_package() {
    let desc = read(&tree("external.desc"));
    assert!(desc.lines().any(|l| l == "name: EASYNC"), "{desc}");
    assert!(desc.lines().any(|l| l.starts_with("desc: ")), "{desc}");

    // external.mk includes every package .mk; the glob must find ours.
    let external_mk = read(&tree("external.mk"));
    assert!(
        external_mk
            .contains("include $(sort $(wildcard $(BR2_EXTERNAL_EASYNC_PATH)/package/*/*.mk))"),
        "{external_mk}"
    );
    assert!(tree(PACKAGE_MK).is_file());

    // Every `source` resolves inside the tree; the top Config.in reaches the package.
    let mut sourced = Vec::new();
    for name in ["Config.in", PACKAGE_CONFIG_IN] {
        let text = read(&tree(name));
        assert_clean(common_problems(name, &text));
        for line in text.lines().filter(|l| l.starts_with("source ")) {
            let quoted = line.trim_start_matches("source ").trim_matches('"');
            let inside = quoted
                .strip_prefix("$BR2_EXTERNAL_EASYNC_PATH/")
                .unwrap_or_else(|| {
                    panic!("{name}: {line} must be below $BR2_EXTERNAL_EASYNC_PATH")
                });
            assert!(tree(inside).is_file(), "{name}: {line}: no such file");
            sourced.push(inside.to_string());
        }
    }
    assert_eq!(sourced, [PACKAGE_CONFIG_IN]);

    // Only the name from external.desc is used, and no data file is executable.
    for name in [
        "external.desc",
        "external.mk",
        "Config.in",
        PACKAGE_CONFIG_IN,
        PACKAGE_MK,
        PACKAGE_HASH,
        DEFCONFIG,
    ] {
        let text = read(&tree(name));
        for (i, _) in text.match_indices("BR2_EXTERNAL_") {
            assert!(
                text[i..].starts_with("BR2_EXTERNAL_EASYNC_PATH"),
                "{name}: another external tree's name"
            );
        }
        assert!(!is_executable(&tree(name)), "{name} must not be executable");
    }
}

#[test]
fn the_package_mk_follows_the_buildroot_coding_style() {
    let mk = read(&tree(PACKAGE_MK));
    assert_clean(mk_problems(PACKAGE_MK, "easync", &mk));
    let last = mk.lines().rev().find(|l| !l.trim().is_empty());
    assert_eq!(last, Some("$(eval $(cargo-package))"));
    // The cargo infrastructure does the build and the install: no own commands.
    for replaced in ["EASYNC_BUILD_CMDS", "EASYNC_INSTALL_TARGET_CMDS"] {
        assert!(
            !mk.contains(replaced),
            "{replaced} replaces the infrastructure"
        );
    }
}

#[test]
fn the_package_builds_the_release_of_this_source_with_the_device_features() {
    let mk = read(&tree(PACKAGE_MK));
    let cargo = cargo_toml();
    let version = cargo["package"]["version"].as_str().unwrap();
    assert_eq!(mk_value(&mk, "EASYNC_VERSION").as_deref(), Some(version));
    assert_eq!(
        mk_value(&mk, "EASYNC_LICENSE").as_deref(),
        cargo["package"]["license"].as_str()
    );
    assert!(
        mk_value(&mk, "EASYNC_SITE").is_some_and(|s| s.contains("$(EASYNC_VERSION)")),
        "the site follows the version"
    );

    // `cargo install` compiles again: both steps need the device features.
    for variable in ["EASYNC_CARGO_BUILD_OPTS", "EASYNC_CARGO_INSTALL_OPTS"] {
        assert_eq!(
            mk_value(&mk, variable).as_deref(),
            Some(DEVICE_FEATURES),
            "{variable}"
        );
    }
    let device = enabled_features(&cargo, &["device"]);
    assert!(device.contains("dbus"), "{device:?}");
    for host_only in ["lab", "xml"] {
        assert!(
            !device.contains(host_only),
            "{host_only} is not for the image"
        );
    }
    // Buildroot strips (or keeps symbols for BR2_STRIP_none), not Cargo.toml's profile.
    assert_eq!(
        mk_value(&mk, "EASYNC_CARGO_ENV").as_deref(),
        Some("CARGO_PROFILE_RELEASE_STRIP=false")
    );
    // A checkout rsynced through EASYNC_OVERRIDE_SRCDIR is vendored before the offline
    // build, and its build products stay out of the copy.
    assert!(mk.contains("EASYNC_PRE_BUILD_HOOKS += EASYNC_VENDOR_CHECKOUT"));
    assert!(mk.contains("cargo vendor --locked VENDOR"));
    let exclusions = mk_value(&mk, "EASYNC_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS").unwrap();
    assert!(exclusions.contains("--exclude=/target"), "{exclusions}");
}

#[test]
fn every_file_the_package_installs_exists_and_lands_where_it_is_expected() {
    let mk = read(&tree(PACKAGE_MK));
    let installs = installs(&mk);
    assert!(installs.len() >= 6, "{installs:?}");
    for install in &installs {
        assert!(
            repo(&install.source).is_file(),
            "{install:?}: no such file in the repo"
        );
        assert!(
            ["0644", "0640", "0755"].contains(&install.mode.as_str()),
            "{install:?}"
        );
    }
    let destination_of = |source: &str| {
        installs
            .iter()
            .find(|i| i.source == source)
            .unwrap_or_else(|| panic!("{source} is not installed"))
    };

    // The unit: where systemd looks, and its daemon and configuration are the installed
    // ones (cargo install --root $(TARGET_DIR)/usr/ puts the binaries in /usr/bin).
    let unit = destination_of("board/systemd/easyncd.service");
    assert_eq!(unit.destination, "/usr/lib/systemd/system/easyncd.service");
    assert!(mk.contains("define EASYNC_INSTALL_INIT_SYSTEMD"));
    let unit_text = read(&repo("board/systemd/easyncd.service"));
    let exec_start = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let mut words = exec_start.split_whitespace();
    let daemon = words.next().unwrap();
    let binary = daemon
        .strip_prefix("/usr/bin/")
        .expect("the daemon is in /usr/bin");
    let cargo = cargo_toml();
    let bin = cargo["bin"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"].as_str() == Some(binary))
        .unwrap_or_else(|| panic!("{binary} is not a [[bin]] of Cargo.toml"));
    assert!(
        bin.get("required-features").is_none(),
        "the device build makes {binary}"
    );
    let config = words.skip_while(|w| *w != "--config").nth(1).unwrap();
    assert_eq!(destination_of("board/easync.toml").destination, config);

    // The bus: the policy in system.d, the activation file named after the bus name.
    assert_eq!(
        destination_of("board/dbus/org.easync.conf").destination,
        "/usr/share/dbus-1/system.d/org.easync.conf"
    );
    assert_eq!(
        destination_of("board/dbus/org.easync.service").destination,
        "/usr/share/dbus-1/system-services/org.easync.service"
    );

    // Every example hook, executable, at the path the example configuration names.
    let example_config = read(&repo("board/easync.toml"));
    let hooks: Vec<_> = std::fs::read_dir(repo("board/hooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| is_executable(p))
        .collect();
    assert!(hooks.len() >= 2, "{hooks:?}");
    for hook in hooks {
        let name = hook.file_name().unwrap().to_str().unwrap();
        let install = destination_of(&format!("board/hooks/{name}"));
        assert_eq!(install.mode, "0755");
        assert_eq!(install.destination, format!("/usr/lib/easync/hooks/{name}"));
        assert!(
            example_config.contains(&format!("\"{}\"", install.destination)),
            "board/easync.toml does not name {}",
            install.destination
        );
    }
}

#[test]
fn the_package_config_in_follows_the_coding_style_and_depends_on_rust() {
    let text = read(&tree(PACKAGE_CONFIG_IN));
    assert_clean(config_in_problems(PACKAGE_CONFIG_IN, &text));
    assert_clean(config_in_problems("Config.in", &read(&tree("Config.in"))));
    let entry: Vec<&str> = text
        .lines()
        .skip_while(|l| *l != "config BR2_PACKAGE_EASYNC")
        .take_while(|l| !l.starts_with("comment"))
        .collect();
    for wanted in [
        "\tbool \"easync\"",
        "\tdepends on BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS",
        "\tselect BR2_PACKAGE_HOST_RUSTC",
        "\thelp",
    ] {
        assert!(entry.contains(&wanted), "{wanted:?} missing in {entry:#?}");
    }
    for wanted in ["BR2_USE_MMU", "BR2_TOOLCHAIN_HAS_THREADS"] {
        assert!(
            entry
                .iter()
                .any(|l| l.starts_with(&format!("\tdepends on {wanted}"))),
            "{wanted}"
        );
    }
    // The Rust floor is told where a user choosing the package reads it.
    assert!(text.contains("1.85") && text.contains("2026.02"), "{text}");
}

#[test]
fn kconfiglib_parses_the_config_in_and_the_dependencies_hold() {
    if !tool_available("python3", &["-c", "import kconfiglib"]) {
        println!("SKIPPED: kconfiglib is not installed (tests/run.sh installs it from PyPI)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("easync-kconfig-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Buildroot's own symbols the package refers to, as stubs; Buildroot sources the
    // external Config.in exactly so, with BR2_EXTERNAL_EASYNC_PATH in the environment.
    let mut kconfig = String::from("mainmenu \"stub\"\n");
    for symbol in [
        "BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS",
        "BR2_USE_MMU",
        "BR2_TOOLCHAIN_HAS_THREADS",
        "BR2_PACKAGE_HOST_RUSTC",
        "BR2_PACKAGE_CA_CERTIFICATES",
        "BR2_PACKAGE_DBUS",
        "BR2_PACKAGE_DBUS_BROKER",
    ] {
        kconfig.push_str(&format!("config {symbol}\n\tbool \"{symbol}\"\n"));
    }
    kconfig.push_str("source \"$BR2_EXTERNAL_EASYNC_PATH/Config.in\"\n");
    std::fs::write(dir.join("Kconfig"), kconfig).unwrap();
    let script = r#"
import kconfiglib
def case(label, on):
    k = kconfiglib.Kconfig("Kconfig", warn_to_stderr=False)
    for name in on:
        k.syms[name].set_value(2)
    easync = k.syms["BR2_PACKAGE_EASYNC"]
    easync.set_value(2)
    comments = [n.prompt[0] for n in k.node_iter() if n.item == kconfiglib.COMMENT and kconfiglib.expr_value(n.dep) == 2]
    print(label, "warnings=%d" % len(k.warnings), "easync=%d" % easync.tri_value,
          "rustc=%d" % k.syms["BR2_PACKAGE_HOST_RUSTC"].tri_value,
          "dbus=%d" % k.syms["BR2_PACKAGE_DBUS"].tri_value,
          "ca=%d" % k.syms["BR2_PACKAGE_CA_CERTIFICATES"].tri_value,
          "help=%d" % len(easync.nodes[0].help or ""),
          "comment=%s" % ("|".join(comments).replace(" ", "_") or "-"))
    for w in k.warnings:
        print("warning", w.replace("\n", " "))
base = ["BR2_PACKAGE_HOST_RUSTC_TARGET_ARCH_SUPPORTS", "BR2_USE_MMU", "BR2_TOOLCHAIN_HAS_THREADS"]
case("full", base)
case("nothreads", base[:2])
case("norust", base[1:])
case("broker", base + ["BR2_PACKAGE_DBUS_BROKER"])
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(script)
        .current_dir(&dir)
        .env("BR2_EXTERNAL_EASYNC_PATH", repo("board/buildroot"))
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = |label: &str| {
        said.lines()
            .find(|l| l.starts_with(&format!("{label} ")))
            .unwrap_or_else(|| panic!("no {label} in {said}"))
            .to_string()
    };
    let full = line("full");
    assert!(full.contains("warnings=0"), "{said}");
    assert!(
        full.contains("easync=2") && full.contains("rustc=2") && full.contains("dbus=2"),
        "{full}"
    );
    assert!(
        full.contains("ca=2") && full.contains("comment=-"),
        "{full}"
    );
    assert!(!full.contains("help=0"), "{full}");
    let no_threads = line("nothreads");
    assert!(no_threads.contains("easync=0"), "{no_threads}");
    assert!(
        no_threads.contains("comment=easync_needs_a_toolchain_w/_threads"),
        "{no_threads}"
    );
    let no_rust = line("norust");
    assert!(
        no_rust.contains("easync=0") && no_rust.contains("comment=-"),
        "{no_rust}"
    );
    let broker = line("broker");
    assert!(
        broker.contains("easync=2") && broker.contains("dbus=0"),
        "{broker}"
    );
}

#[test]
fn the_hash_file_is_well_formed_and_names_the_vendored_tarball() {
    let text = read(&tree(PACKAGE_HASH));
    assert_clean(hash_problems(PACKAGE_HASH, &text));
    let mk = read(&tree(PACKAGE_MK));
    let version = mk_value(&mk, "EASYNC_VERSION").unwrap();

    let lines: Vec<&str> = text.lines().collect();
    let entries: Vec<(usize, Vec<&str>)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(i, l)| (i, l.split_whitespace().collect()))
        .collect();
    // The tarball: easync-VERSION-cargoN.tar.gz, N the archive format of the release.
    let tarball_prefix = format!("easync-{version}-cargo");
    let tarballs: Vec<_> = entries
        .iter()
        .filter(|(_, f)| f[2].starts_with(&tarball_prefix))
        .collect();
    assert_eq!(
        tarballs.len(),
        1,
        "one entry for the vendored tarball: {text}"
    );
    let name = tarballs[0].1[2];
    let format = name[tarball_prefix.len()..]
        .strip_suffix(".tar.gz")
        .unwrap();
    assert!(
        !format.is_empty() && format.chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert!(text.contains("2026.02") && text.contains("BR_FMT_VERSION_cargo"));

    for (index, fields) in &entries {
        let placeholder = fields[1].chars().all(|c| c == '0');
        if placeholder {
            // Only the release tarball may wait for its hash, and says so right above.
            assert!(fields[2].starts_with(&tarball_prefix), "{fields:?}");
            let comment_above: String = lines[..*index]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#'))
                .copied()
                .collect();
            assert!(comment_above.contains("PLACEHOLDER"), "{fields:?}");
        } else if !fields[2].starts_with(&tarball_prefix) {
            // A file of this source tree (a license file): its real hash.
            let bytes = std::fs::read(repo(fields[2])).unwrap();
            let digest = ring::digest::digest(&ring::digest::SHA256, &bytes);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(fields[0], "sha256", "{fields:?}");
            assert_eq!(fields[1], hex, "{} changed: update its hash", fields[2]);
        }
    }
    // Buildroot checks the license files against the hash file: each needs a line.
    if let Some(files) = mk_value(&mk, "EASYNC_LICENSE_FILES") {
        for file in files.split_whitespace() {
            assert!(
                entries.iter().any(|(_, f)| f[2] == file),
                "{file} has no hash"
            );
        }
    }
}

#[test]
fn the_defconfig_selects_the_package_with_systemd_and_dbus() {
    let text = read(&tree(DEFCONFIG));
    assert_clean(common_problems(DEFCONFIG, &text));
    let mut seen = BTreeSet::new();
    let mut values = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# ") && line.ends_with(" is not set") {
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (symbol, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("{DEFCONFIG}: not SYMBOL=value: {line}"));
        assert!(symbol.starts_with("BR2_"), "{line}");
        assert!(seen.insert(symbol.to_string()), "{symbol} set twice");
        values.push((symbol.to_string(), value.to_string()));
    }
    let value = |symbol: &str| {
        values
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|(_, v)| v.as_str())
    };
    for symbol in [
        "BR2_aarch64",
        "BR2_TOOLCHAIN_BUILDROOT_GLIBC",
        "BR2_INIT_SYSTEMD",
        "BR2_PACKAGE_DBUS",
        "BR2_PACKAGE_EASYNC",
        "BR2_LINUX_KERNEL",
        "BR2_TARGET_ROOTFS_EXT2_4",
        "BR2_DOWNLOAD_FORCE_CHECK_HASHES",
    ] {
        assert_eq!(value(symbol), Some("y"), "{symbol}");
    }
    let script = value("BR2_ROOTFS_POST_BUILD_SCRIPT")
        .unwrap()
        .trim_matches('"');
    let inside = script
        .strip_prefix("$(BR2_EXTERNAL_EASYNC_PATH)/")
        .expect("the post-build script is found through the external tree's path");
    assert_eq!(inside, POST_BUILD);
    assert!(is_executable(&tree(inside)));
}

#[test]
fn the_post_build_script_is_executable_and_clean_shell() {
    let script = tree(POST_BUILD);
    assert!(is_executable(&script), "{POST_BUILD} must be executable");
    let text = read(&script);
    assert_clean(common_problems(POST_BUILD, &text));
    assert!(text.starts_with("#!/bin/sh\n"));
    let syntax = Command::new("sh").arg("-n").arg(&script).output().unwrap();
    assert!(
        syntax.status.success(),
        "sh -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );
    if !tool_available("shellcheck", &["--version"]) {
        println!("SKIPPED: shellcheck is not installed (tests/run.sh installs it)");
        return;
    }
    let lint = Command::new("shellcheck")
        .arg("--shell=sh")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "shellcheck: {}",
        String::from_utf8_lossy(&lint.stdout)
    );
}

#[test]
fn the_post_build_script_enables_the_unit_and_prepares_the_data_partition() {
    let target = std::env::temp_dir().join(format!("easync-br-target-{}", std::process::id()));
    std::fs::create_dir_all(&target).unwrap();
    let run = || {
        Command::new(tree(POST_BUILD))
            .arg(&target)
            .output()
            .unwrap()
    };

    // Without the package's unit it stops, naming what to enable.
    let refused = run();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("BR2_PACKAGE_EASYNC"));

    // As after the package's install (the unit where the .mk puts it), twice: each
    // Buildroot build runs it again.
    let unit = "usr/lib/systemd/system/easyncd.service";
    std::fs::create_dir_all(target.join("usr/lib/systemd/system")).unwrap();
    std::fs::copy(repo("board/systemd/easyncd.service"), target.join(unit)).unwrap();
    std::fs::create_dir_all(target.join("etc")).unwrap();
    std::fs::write(target.join("etc/fstab"), "/dev/root / auto rw 0 1\n").unwrap();
    for _ in 0..2 {
        let done = run();
        assert!(
            done.status.success(),
            "{}",
            String::from_utf8_lossy(&done.stderr)
        );
    }

    let wants = target.join("etc/systemd/system/multi-user.target.wants/easyncd.service");
    assert_eq!(
        std::fs::read_link(&wants).unwrap(),
        Path::new("/").join(unit)
    );
    let preset = read(&target.join("usr/lib/systemd/system-preset/80-easync.preset"));
    assert_eq!(preset, "enable easyncd.service\n");

    // The data partition is where the unit may write.
    let unit_text = read(&repo("board/systemd/easyncd.service"));
    let writable = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ReadWritePaths="))
        .unwrap();
    for path in writable.split_whitespace() {
        assert!(target.join(path.trim_start_matches('/')).is_dir(), "{path}");
    }
    let fstab = read(&target.join("etc/fstab"));
    assert!(fstab.starts_with("/dev/root / auto rw 0 1\n"), "{fstab}");
    let data: Vec<&str> = fstab
        .lines()
        .filter(|l| l.starts_with("/dev/vdb "))
        .collect();
    assert_eq!(data.len(), 1, "{fstab}");
    let fields: Vec<&str> = data[0].split_whitespace().collect();
    assert_eq!(fields[1], writable.split_whitespace().next().unwrap());
    assert_eq!(fields[2], "ext4");
    assert!(
        fields[3].contains("nofail"),
        "booting without the disk still works"
    );

    std::fs::remove_dir_all(&target).unwrap();
}

#[test]
fn make_runs_the_install_steps_of_the_mk_into_a_target_directory() {
    if !tool_available("make", &["--version"]) {
        println!("SKIPPED: GNU make is not installed (tests/run.sh installs it)");
        return;
    }
    // The hooks run as Buildroot runs them: $(@D) the source tree (this repository),
    // each hook expanded in turn, into a scratch $(TARGET_DIR).
    let dir = scratch("install");
    let target = dir.join("target");
    let marker = repo("buildroot-install-check");
    let rules = format!(
        ".PHONY: install-check FORCE\n\
         install-check: {marker}\n\
         {marker}: FORCE\n\
         \t$(EASYNC_INSTALL_INIT_SYSTEMD)\n\
         \t$(foreach hook,$(EASYNC_POST_INSTALL_TARGET_HOOKS),$(call $(hook))$(sep))\n",
        marker = marker.display()
    );
    let vars = format!("TARGET_DIR := {}", target.display());
    let output = make_with_mk(&dir, &vars, &rules, &["print-EASYNC_SITE", "install-check"]);
    let said = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!marker.exists(), "nothing is written into the repository");
    assert!(
        said.contains("EASYNC_SITE=https://github.com/easync/easync/archive/v0.1.0"),
        "{said}"
    );

    let mode = |path: &str| {
        std::fs::metadata(target.join(path))
            .unwrap_or_else(|e| panic!("{path}: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    for (path, expected) in [
        ("usr/lib/systemd/system/easyncd.service", 0o644),
        ("usr/share/dbus-1/system.d/org.easync.conf", 0o644),
        ("usr/share/dbus-1/system-services/org.easync.service", 0o644),
        ("etc/easync", 0o750),
        ("etc/easync/easync.toml", 0o640),
        ("usr/lib/easync/hooks/device-lock-pwquality", 0o755),
        ("usr/lib/easync/hooks/storage-encryption-luks", 0o755),
    ] {
        assert_eq!(mode(path), expected, "{path}");
    }
    assert_eq!(
        std::fs::read(target.join("etc/easync/easync.toml")).unwrap(),
        std::fs::read(repo("board/easync.toml")).unwrap()
    );

    // The board's post-build script then finishes this very target.
    let post_build = Command::new(tree(POST_BUILD))
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        post_build.status.success(),
        "{}",
        String::from_utf8_lossy(&post_build.stderr)
    );
    assert!(
        target
            .join("etc/systemd/system/multi-user.target.wants/easyncd.service")
            .symlink_metadata()
            .is_ok()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_vendoring_hook_vendors_only_a_tree_without_vendored_crates() {
    if !tool_available("make", &["--version"]) {
        println!("SKIPPED: GNU make is not installed (tests/run.sh installs it)");
        return;
    }
    // A stand-in cargo on the hook's PATH records where and how it is called.
    let dir = scratch("vendor");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("cargo.log");
    std::fs::write(
        bin.join("cargo"),
        format!(
            "#!/bin/sh\necho \"$PWD|$CARGO_HOME|$*\" >>'{}'\necho '[source.crates-io]'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(bin.join("cargo"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let source = dir.join("src");
    std::fs::create_dir_all(&source).unwrap();
    let vars = format!(
        "HOST_MAKE_ENV := PATH={}:$(PATH)\nPKG_COMMON_CARGO_ENV := CARGO_HOME={}",
        bin.display(),
        dir.join("cargo-home").display()
    );
    let rules = format!(
        ".PHONY: build-check FORCE\n\
         build-check: {stamp}\n\
         {stamp}: FORCE\n\
         \t$(foreach hook,$(EASYNC_PRE_BUILD_HOOKS),$(call $(hook))$(sep))\n",
        stamp = source.join("build-check").display()
    );

    // A checkout rsynced in: vendored, with the config that points cargo at VENDOR.
    let first = make_with_mk(&dir, &vars, &rules, &["build-check"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let calls = read(&log);
    assert_eq!(
        calls,
        format!(
            "{}|{}|vendor --locked VENDOR\n",
            source.display(),
            dir.join("cargo-home").display()
        )
    );
    assert_eq!(
        read(&source.join(".cargo/config.toml")),
        "[source.crates-io]\n"
    );

    // The release tarball (or a second build) already has VENDOR: cargo is not called.
    std::fs::create_dir_all(source.join("VENDOR")).unwrap();
    let second = make_with_mk(&dir, &vars, &rules, &["build-check"]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(read(&log), calls);
    std::fs::remove_dir_all(&dir).unwrap();
}
