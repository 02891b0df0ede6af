#!/usr/bin/env bash
# Onboarding N hires (account + 2 groups + welcome, journaled and verified) against the raw
# baseline: one ldapmodify of an equivalent LDIF plus one SMTP connection sending N messages.
# Both run against fresh slapd and SMTP servers on loopback, in one run; prints both times
# and the ratio onboard/baseline.   Usage: bench/cohort.sh [N] [JOBS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
JOBS=${2:-8}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
python=/usr/bin/python3; [ -x "$python" ] || python=python3
cargo build --release --quiet
bin=target/release/onboard
ADMIN="cn=admin,dc=example,dc=org"; PW=bench-secret

free_port() { $python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_slapd() { # dir -> sets LDAP_URL
  local d=$1; mkdir -p "$d/db"
  cat > "$d/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 1073741824
suffix "dc=example,dc=org"
rootdn "$ADMIN"
rootpw $PW
directory $d/db
index objectClass,uid,uidNumber,cn,member,memberUid eq
CONF
  slapadd -f "$d/slapd.conf" -l src/backend/directory/example-directory.ldif 2>/dev/null
  local port; port=$(free_port)
  slapd -f "$d/slapd.conf" -h "ldap://127.0.0.1:$port/" -d 0 2>"$d/slapd.log" & pids+=($!)
  LDAP_URL="ldap://127.0.0.1:$port"
  for _ in $(seq 100); do ldapsearch -x -H "$LDAP_URL" -b "" -s base >/dev/null 2>&1 && return; sleep 0.05; done
  echo "slapd did not start" >&2; exit 1
}

start_smtp() { # dir -> sets SMTP_PORT
  local d=$1; mkdir -p "$d"
  SMTP_PORT=$(free_port)
  $python tests/smtp_server.py --eml-only --port "$SMTP_PORT" --dir "$d" 2>/dev/null & pids+=($!)
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$SMTP_PORT") 2>/dev/null && return; sleep 0.05; done
  echo "SMTP server did not start" >&2; exit 1
}

count_entries() { ldapsearch -x -LLL -H "$1" -D "$ADMIN" -w "$PW" -b ou=people,dc=example,dc=org "(objectClass=inetOrgPerson)" dn | grep -c '^dn:' || true; }
count_members() { ldapsearch -x -LLL -o ldif-wrap=no -H "$1" -D "$ADMIN" -w "$PW" -b "cn=$2,ou=groups,dc=example,dc=org" -s base member | grep -c '^member: .*ou=people' || true; }

$python bench/gen_hires.py "$N" "$work/hires.csv"

# (a) onboard
start_slapd "$work/ldap-a"; start_smtp "$work/mail-a"
t0=$(date +%s.%N)
ONBOARD_STATE_DIR="$work/state" ONBOARD_LDAP_URL=$LDAP_URL ONBOARD_LDAP_BIND_DN=$ADMIN \
ONBOARD_LDAP_PASSWORD=$PW ONBOARD_SMTP_URL="smtp://127.0.0.1:$SMTP_PORT" \
  bash -c 'TIMEFORMAT="%U %S"; time "$@" > "$0" 2>/dev/null' "$work/onboard.out" \
  $bin bench/checklist.yaml --hires "$work/hires.csv" --jobs "$JOBS" 2> "$work/onboard.cpu" || true
t1=$(date +%s.%N)
a_entries=$(count_entries "$LDAP_URL"); a_staff=$(count_members "$LDAP_URL" staff); a_research=$(count_members "$LDAP_URL" research)
a_mail=$(ls "$work/mail-a"/*.eml 2>/dev/null | wc -l)
a_ok=$(grep -c ': complete' "$work/onboard.out" || true)
# Hires whose address is the To: of exactly one message (their welcome, received once).
a_once=$($python - "$work/hires.csv" "$work/mail-a" <<'PY'
import collections, csv, email.parser, email.policy, glob, sys
to = collections.Counter()
parser = email.parser.BytesHeaderParser(policy=email.policy.default)
for path in glob.glob(sys.argv[2] + "/*.eml"):
    with open(path, "rb") as f:
        to.update(a.addr_spec for a in parser.parse(f)["To"].addresses)
print(sum(to[r["work_email"]] == 1 for r in csv.DictReader(open(sys.argv[1], encoding="utf-8"))))
PY
)

# (b) the raw baseline: one ldapmodify of an equivalent LDIF, one SMTP connection for N messages
start_slapd "$work/ldap-b"; start_smtp "$work/mail-b"
$python - "$work/hires.csv" "$work/bulk.ldif" "$work/mails.txt" <<'PY'
import csv, sys, base64
rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
def attr(k, v):
    return f"{k}:: {base64.b64encode(v.encode()).decode()}" if not v.isascii() else f"{k}: {v}"
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i, r in enumerate(rows):
        uid = r["id"].lower()
        f.write("\n".join([f"dn: uid={uid},ou=people,dc=example,dc=org", "changetype: add",
            "objectClass: inetOrgPerson", "objectClass: posixAccount", f"uid: {uid}",
            attr("cn", f'{r["given_name"]} {r["family_name"]}'), attr("sn", r["family_name"]),
            f'mail: {r["work_email"]}', f"uidNumber: {100000 + i}", "gidNumber: 10000",
            f"homeDirectory: /home/{uid}", "userPassword: {SSHA}placeholder"]) + "\n\n")
    for g in ("staff", "research"):
        f.write(f"dn: cn={g},ou=groups,dc=example,dc=org\nchangetype: modify\nadd: member\n")
        f.write("".join(f'member: uid={r["id"].lower()},ou=people,dc=example,dc=org\n' for r in rows) + "-\n\n")
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for r in rows:
        f.write("\t".join([r["work_email"], r["given_name"], r["manager_email"]]) + "\n")
PY
t2=$(date +%s.%N)
ldapmodify -x -H "$LDAP_URL" -D "$ADMIN" -w "$PW" -f "$work/bulk.ldif" > /dev/null
t2m=$(date +%s.%N)
$python - "$SMTP_PORT" "$work/mails.txt" <<'PY'
# The same messages onboard sends per hire: the initial password to the manager, and a welcome
# to the hire (manager in cc) with text and HTML parts of the welcome templates' size.
import smtplib, sys
from email.message import EmailMessage
text = open("templates/welcome.txt.tera", encoding="utf-8").read()
html = open("templates/welcome.html.tera", encoding="utf-8").read()
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
for line in open(sys.argv[2], encoding="utf-8"):
    to, name, manager = line.rstrip("\n").split("\t")
    p = EmailMessage(); p["From"] = "it@example.org"; p["To"] = manager
    p["Subject"] = f"Initial password for {name}"; p.set_content(f"The initial password for {to}: x")
    s.send_message(p)
    m = EmailMessage(); m["From"] = "it@example.org"; m["To"] = to; m["Cc"] = manager
    m["Subject"] = f"Welcome, {name}"
    m.set_content(text.replace("{{ hire.given_name }}", name))
    m.add_alternative(html.replace("{{ hire.given_name }}", name), subtype="html")
    s.send_message(m)
s.quit()
PY
t3=$(date +%s.%N)
b_entries=$(count_entries "$LDAP_URL"); b_staff=$(count_members "$LDAP_URL" staff); b_mail=$(ls "$work/mail-b"/*.eml 2>/dev/null | wc -l)

onboard_s=$(echo "$t1 - $t0" | bc -l); baseline_s=$(echo "$t3 - $t2" | bc -l)
printf 'hires: %d, jobs: %d\n' "$N" "$JOBS"
read -r a_user a_sys < "$work/onboard.cpu"
printf 'onboard : %8.2f s  (CPU: %.2f s user, %.2f s system; %d complete, %d entries, %d staff and %d research members, %d messages: passwords + welcomes, %d hires welcomed exactly once)\n' \
  "$onboard_s" "$a_user" "$a_sys" "$a_ok" "$a_entries" "$a_staff" "$a_research" "$a_mail" "$a_once"
printf 'baseline: %8.2f s  (%d entries, %d staff members, %d messages; ldapmodify %.2f s, SMTP %.2f s)\n' \
  "$baseline_s" "$b_entries" "$b_staff" "$b_mail" "$(echo "$t2m - $t2" | bc -l)" "$(echo "$t3 - $t2m" | bc -l)"
printf 'ratio onboard/baseline: %.2f\n' "$(echo "$onboard_s / $baseline_s" | bc -l)"
[ "$a_ok" -eq "$N" ] && [ "$a_entries" -eq "$N" ] && [ "$a_staff" -eq "$N" ] && [ "$a_mail" -eq $((2 * N)) ] \
  && [ "$a_once" -eq "$N" ] && [ "$b_entries" -eq "$N" ] && [ "$b_mail" -eq $((2 * N)) ] \
  || { echo "a count is wrong: see above" >&2; exit 1; }
