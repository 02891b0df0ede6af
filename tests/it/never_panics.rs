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
                hire: None,
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
                hire: None,
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
