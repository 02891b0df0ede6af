//! Whatever the bytes, loading a playbook ends in a plan or in located errors, never a panic.
//! Deterministic mutations of the shipped playbook: byte flips, truncations, spliced lines.

use onboard::diag::SourceMap;
use onboard::load::Request;
use onboard::plan::{Outputs, load_and_plan};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: reproducible without a dependency.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"{{",
    b"}}",
    b"{%",
    b"%}",
    b":",
    b"- ",
    b"\n",
    b"\t",
    b"'",
    b"\"",
    b"&a",
    b"*a",
    b"!!binary",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\xff",
    b"\0",
    b"<<: *a",
    b"~",
    b"yes",
    b"1e999",
    b"\r\n",
    b"#",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => {
                let i = rng.below(out.len() + 1);
                out.truncate(i);
            }
            2 => {
                let i = rng.below(out.len() + 1);
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(i..i, ins.iter().copied());
            }
            _ if !out.is_empty() => {
                let a = rng.below(out.len());
                let b = (a + rng.below(200)).min(out.len());
                let c = rng.below(out.len() + 1);
                let chunk = out[a..b].to_vec();
                out.splice(c..c, chunk);
            }
            _ => {}
        }
    }
    out
}

#[test]
fn mutated_playbooks_never_panic() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let original = std::fs::read(repo.join("playbooks/new-hire.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The templates folder is found next to the playbook's folder, as in the repo.
    std::os::unix::fs::symlink(repo.join("templates"), dir.path().join("templates")).unwrap();
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    let path = dir.path().join("playbooks/case.yaml");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let cases = 1500;
    let mut failed_cleanly = 0;
    for case in 0..cases {
        let input = mutate(&mut rng, &original);
        std::fs::write(&path, &input).unwrap();
        let result = std::panic::catch_unwind(|| {
            let mut sources = SourceMap::default();
            let req = Request {
                playbook: path.clone(),
                ..Request::default()
            };
            match load_and_plan(&req, &mut sources, &Outputs::new()) {
                Ok(_) => true,
                Err(diags) => {
                    assert!(!diags.is_empty());
                    assert_located(diags, &sources);
                    false
                }
            }
        });
        match result {
            Ok(ok) => failed_cleanly += usize::from(!ok),
            Err(_) => {
                std::fs::write(std::env::temp_dir().join("onboard-panic-case.yaml"), &input)
                    .unwrap();
                panic!(
                    "case {case} panicked; input saved to onboard-panic-case.yaml in the temp dir"
                );
            }
        }
    }
    assert!(
        failed_cleanly > cases / 2,
        "most mutations are invalid: {failed_cleanly}"
    );
}

/// HR's export with what real exports carry: quoted commas and line breaks, doubled quotes,
/// non-ASCII names, an empty cell, a byte-order mark.
const CSV: &str = "\u{feff}id,given_name,family_name,work_email,manager_email,start_date,custom.laptop_serial\n\
E1,Zoë,\"O'Brien, Jr.\",zoe@example.org,mia@example.org,2026-12-07,SN-1\n\
E2,\"Ana\nMaria\",Lima,ana@example.org,mia@example.org,2026-12-07,\n\
E3,李,\"雷 \"\"Lei\"\"\",li@example.org,mia@example.org,2026-02-30,SN-3\n";

#[test]
fn mutated_hire_csvs_never_panic_and_every_error_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hires.csv");
    let mut rng = Rng(0x5eed_c5f0_0000_0002);
    let cases = 3000;
    for case in 0..cases {
        let input = mutate(&mut rng, CSV.as_bytes());
        std::fs::write(&path, &input).unwrap();
        let result = std::panic::catch_unwind(|| {
            let mut sources = SourceMap::default();
            let (_rows, diags) = onboard::hires::read(&path, &[], &mut sources);
            assert_located(diags, &sources);
        });
        if result.is_err() {
            std::fs::write(std::env::temp_dir().join("onboard-panic-case.csv"), &input).unwrap();
            panic!("case {case} failed; input saved to onboard-panic-case.csv in the temp dir");
        }
    }
}

/// Pieces templates are made of, to be put together at random.
const TEMPLATE_PIECES: &[&str] = &[
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " hire.given_name ",
    " hire.custom.x ",
    " vars.a ",
    " steps.account.dn ",
    "| login",
    "| lower",
    "| default(value='x')",
    "| dn_escape",
    "| filter_escape",
    "| ascii",
    "| nosuchfilter",
    " if ",
    " else ",
    " endif ",
    " for x in ",
    " endfor ",
    " set y = 1 ",
    "(",
    ")",
    "~",
    "'",
    "\"",
    "[0]",
    ".",
    "7*7",
    " raw ",
    " endraw ",
    "\\",
    "\u{202e}",
    "é",
    "\0",
    " include 'welcome.txt.tera' ",
    " macro m() ",
    " for i in range(end=100000) ",
    "range(end=99999999999)",
    "=?utf-8?q?Bcc:_x@evil?=",
    "\u{1b}]0;title\u{7}",
    "\r",
];

#[test]
fn random_templates_never_panic_and_every_error_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.yaml");
    let mut rng = Rng(0x5eed_7e41_0000_0003);
    let cases = 2000;
    for case in 0..cases {
        let template: String = (0..1 + rng.below(8))
            .map(|_| TEMPLATE_PIECES[rng.below(TEMPLATE_PIECES.len())])
            .collect();
        let quoted = serde_json::to_string(&template).unwrap();
        let playbook = format!(
            "name: T\nhire: {{id: E1, given_name: Zoë, family_name: Lee}}\nvars:\n  a: {quoted}\n\
             steps:\n  - id: account\n    ldap_account:\n      base: ou=people,dc=x\n      \
             attributes: {{uid: {quoted}, cn: a}}\n"
        );
        std::fs::write(&path, &playbook).unwrap();
        let result = std::panic::catch_unwind(|| {
            let mut sources = SourceMap::default();
            let req = Request {
                playbook: path.clone(),
                ..Request::default()
            };
            if let Err(diags) = load_and_plan(&req, &mut sources, &Outputs::new()) {
                assert_located(diags, &sources);
            }
        });
        if result.is_err() {
            std::fs::write(
                std::env::temp_dir().join("onboard-panic-case.yaml"),
                &playbook,
            )
            .unwrap();
            panic!("case {case} ({template:?}) failed; saved to onboard-panic-case.yaml");
        }
    }
}

/// Every error has a location, and rendering it does not panic, wherever the span points.
fn assert_located(diags: onboard::diag::Diagnostics, sources: &SourceMap) {
    for d in diags.sorted() {
        assert!(
            d.span.is_some(),
            "an error without a location: {}",
            d.message
        );
        let _ = d.render(sources);
    }
}

/// A generous bound: a hang detector, not a speed test.
const BOUND: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads `path` on a thread and waits at most `bound`: a hang or a blow-up is a failure.
/// Returns the problems' messages (every one located), or nothing when it plans.
fn load_within(path: &std::path::Path, bound: std::time::Duration) -> Result<(), Vec<String>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut sources = SourceMap::default();
        let req = Request {
            playbook: path,
            ..Request::default()
        };
        let result = load_and_plan(&req, &mut sources, &Outputs::new()).map_err(|diags| {
            let messages = diags.0.iter().map(|d| d.message.clone()).collect();
            assert_located(diags, &sources);
            messages
        });
        let _ = tx.send(result.map(|_| ()));
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|e| panic!("loading did not finish within {bound:?}: {e}"))
}

/// Small inputs that once took minutes or all memory: each ends, in a plan or located
/// errors, well within a generous bound (a hang detector, not a speed test: see bench/).
#[test]
fn scaling_inputs_end_within_a_time_bound() {
    let dir = tempfile::tempdir().unwrap();
    let hire = "hire: {id: E1, given_name: A, family_name: B, start_date: \"2026-12-07\"}\n";
    let step = |i: usize, extra: &str| {
        format!("  - id: s{i}\n    sign_off: {{role: it, items: [x]}}\n{extra}")
    };
    let chain = |n: usize| {
        let mut s = format!("name: chain\n{hire}steps:\n");
        for i in 0..n {
            let needs = if i > 0 {
                format!("    needs: [s{}]\n", i - 1)
            } else {
                String::new()
            };
            s.push_str(&step(i, &needs));
        }
        s
    };
    let many = |n: usize, key: &dyn Fn(usize) -> String| {
        let mut s = format!("name: keys\n{hire}vars:\n");
        for i in 0..n {
            s.push_str(&format!("  {}: x\n", key(i)));
        }
        s + "steps:\n" + &step(0, "")
    };
    let cases: Vec<(&str, String)> = vec![
        ("a chain of 4,000 needs", chain(4000)),
        ("a chain of 1,000 needs", chain(1000)),
        (
            "20,000 duplicate keys",
            many(20_000, &|i| format!("v{}", i % 2)),
        ),
        ("20,000 vars", many(20_000, &|i| format!("v{i}"))),
        (
            "10^9 working days",
            format!(
                "name: d\n{hire}steps:\n  - id: s\n    deadline: 1000000000 working days before start\n    \
                 sign_off: {{role: it, items: [x]}}\n"
            ),
        ),
        (
            "nested range loops",
            format!(
                "name: r\n{hire}vars:\n  a: \"{{% for i in range(end=100000) %}}{{% for j in \
                 range(end=100000) %}}x{{% endfor %}}{{% endfor %}}\"\nsteps:\n{}",
                step(0, "")
            ),
        ),
        (
            "a 3 MB scalar",
            format!(
                "name: big\n{hire}vars:\n  a: {}\nsteps:\n{}",
                "x".repeat(3 << 20),
                step(0, "")
            ),
        ),
        (
            "a 5 MB scalar",
            format!(
                "name: big\n{hire}vars:\n  a: {}\nsteps:\n{}",
                "x".repeat(5 << 20),
                step(0, "")
            ),
        ),
    ];
    for (name, text) in cases {
        let path = dir.path().join("case.yaml");
        std::fs::write(&path, text).unwrap();
        let started = std::time::Instant::now();
        let _ = load_within(&path, BOUND);
        eprintln!("{name}: {:?}", started.elapsed());
    }
}

/// Files that are not what they claim: a template symlinked out of its folder, a FIFO, a
/// device, a folder. Each is a located error, at once.
#[test]
fn templates_that_are_links_fifos_or_devices_are_located_errors() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    for entry in std::fs::read_dir(repo.join("templates")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), templates.join(entry.file_name())).unwrap();
    }
    std::fs::create_dir(dir.path().join("playbooks")).unwrap();
    let playbook = dir.path().join("playbooks/new-hire.yaml");
    std::fs::copy(repo.join("playbooks/new-hire.yaml"), &playbook).unwrap();
    let policy = templates.join("it-policies.md");
    let outside = dir.path().join("secret");
    std::fs::write(&outside, "secret").unwrap();
    let fifo = dir.path().join("fifo");
    crate::common::mkfifo(&fifo);
    for (target, expected) in [
        (outside.as_path(), "leads outside"),
        (std::path::Path::new("/dev/zero"), "leads outside"),
        (fifo.as_path(), "leads outside"),
    ] {
        let _ = std::fs::remove_file(&policy);
        std::os::unix::fs::symlink(target, &policy).unwrap();
        let refused = load_within(&playbook, BOUND).expect_err("refused");
        assert!(
            refused.iter().any(|m| m.contains(expected)),
            "{expected}: {refused:?}"
        );
    }
    // Inside the folder, but not a regular file.
    let _ = std::fs::remove_file(&policy);
    crate::common::mkfifo(&policy);
    let refused = load_within(&playbook, BOUND).expect_err("refused");
    assert!(
        refused
            .iter()
            .any(|m| m.contains("is a FIFO, not a regular file")),
        "{refused:?}"
    );
}
